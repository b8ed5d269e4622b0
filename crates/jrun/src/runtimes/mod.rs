//! The one boundary between the commands and the runtimes: which runtime a command drives
//! (`JRUN_RUNTIME` or `--runtime`) and what each does for `start`, `up`, `down`, `status`,
//! `pair` and `purge`. Commands call [`Driver`]'s methods and never ask which runtime it
//! is; each runtime batches as it must (native: per step; vm: one script over SSH).
// Off Linux only the vm runtime exists: the native arms, and what only they use, go.
#![cfg_attr(not(target_os = "linux"), allow(unused_variables, dead_code))]

mod apply;
#[cfg(target_os = "linux")]
mod native;
mod remove;
mod vm;
mod wait;

pub use apply::{ApplyOptions, Outcome};
pub use jrun_vm::qemu::DisplayMode;
pub use jrun_vm::render::Rendered as GuestFiles;
pub use jrun_vm::snapshot::{
    human_size, Snapshot, SnapshotName, RESERVED_PREFIX as SNAPSHOT_RESERVED_PREFIX,
};
pub use vm::render_guest;

#[cfg(target_os = "linux")]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use jrun_core::config::JailName;
use jrun_core::exec::SystemRunner;
use jrun_core::plan::Plan;
use jrun_core::runtime::{Runtime, StartOutcome};
use jrun_core::services::{ChildStatus, ServiceStatus};
use jrun_core::settings::{RuntimeKind, Settings};
use jrun_core::state::{State, StateLock};
use jrun_mesh::YggAddress;

use crate::progress::Progress;
#[cfg(target_os = "linux")]
use jrun_native::{NativeOptions, NativeRuntime};
use jrun_vm::runtime::{VmOptions, VmRuntime};
#[cfg(target_os = "linux")]
use miette::miette;
use miette::{IntoDiagnostic, WrapErr};

/// The runtime a command drives. The native runtime exists only on Linux (network
/// namespaces, nftables); elsewhere only the vm runtime does.
// One value per process: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Driver {
    #[cfg(target_os = "linux")]
    Native(NativeRuntime),
    Vm(VmRuntime),
}

/// What `jrun start` asks beyond booting.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `--base FILE`: bring the VM to that file's `base { }` block.
    pub base: Option<std::path::PathBuf>,
    /// `--provision`: run the base setup steps again.
    pub provision: bool,
}

impl Driver {
    /// The common primitives.
    pub fn runtime(&self) -> &dyn Runtime {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => rt,
            Driver::Vm(rt) => rt,
        }
    }

    /// Fails when this user cannot do `what` here (the native runtime needs root).
    pub fn require_privileges(&self, what: &str) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => rt.require_root(what).into_diagnostic(),
            Driver::Vm(_) => Ok(()),
        }
    }

    /// Starts the instance; a running one is left alone.
    pub fn start(
        &self,
        settings: &Settings,
        opts: &StartOptions,
    ) -> miette::Result<(StartOutcome, String)> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => {
                let outcome = native::start_native(rt, settings, opts)?;
                let ns = rt.layout().vm_ns();
                Ok((
                    outcome,
                    match outcome {
                        StartOutcome::AlreadyRunning => {
                            format!("the instance is already running ({ns}).")
                        }
                        StartOutcome::Started => format!(
                            "instance started (namespace {ns}); deploy jails with `jrun up <config>`."
                        ),
                    },
                ))
            }
            Driver::Vm(vm) => {
                let outcome = vm::start_vm(vm, settings, opts)?;
                Ok((
                    outcome,
                    match outcome {
                        StartOutcome::AlreadyRunning => "the VM is already running.".into(),
                        StartOutcome::Started => "the VM is running; deploy jails with `jrun up <config>`, open a shell with `jrun ssh`.".into(),
                    },
                ))
            }
        }
    }

    /// Brings the recorded state in line with the machine before planning: natively, a jail
    /// recorded deployed whose network is gone (the instance restarted) is planned like an
    /// interrupted deployment, rebuilt at its address.
    pub fn reconcile(&self, state: &mut State) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => {
                let present = rt.jails_present().into_diagnostic()?;
                for jail in state.jails.values_mut() {
                    if jail.deployed && !present.contains(&jail.name) {
                        jail.deployed = false;
                    }
                }
                // A jail whose firewall table is gone is deployed again (its network and
                // services stay; its rules are loaded again).
                let deployed: Vec<JailName> = state
                    .jails
                    .values()
                    .filter(|j| j.deployed)
                    .map(|j| j.name.clone())
                    .collect();
                for name in rt.jails_without_firewall(&deployed) {
                    if let Some(jail) = state.jails.get_mut(&name) {
                        jail.deployed = false;
                    }
                }
                Ok(())
            }
            Driver::Vm(_) => Ok(()),
        }
    }

    /// Refuses, before anything changes, a plan this runtime cannot carry out: a busy host
    /// port, a mount whose host folder is missing (native), a forward onto a port the VM
    /// serves itself (vm).
    pub fn check_plan(&self, plan: &Plan) -> miette::Result<()> {
        let rt = self.runtime();
        rt.check_host_ports(&plan.vm_firewall.redirects)
            .into_diagnostic()?;
        rt.check_plan(plan).into_diagnostic()?;
        #[cfg(target_os = "linux")]
        if let Driver::Native(_) = self {
            jrun_native::jailns::check_host_folders(plan).map_err(|e| {
                miette!(
                    help = "create the folder or fix `host` in the config",
                    "{e}"
                )
            })?;
        }
        Ok(())
    }

    /// Applies `plan` (the caller holds the state lock), recording each jail deployed
    /// once its work succeeded. The vm runtime's script also waits for the services.
    pub fn apply(
        &self,
        settings: &Settings,
        plan: &Plan,
        opts: &ApplyOptions,
        lock: &mut StateLock,
        progress: &mut Progress,
    ) -> Outcome {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => native::execute(rt, plan, progress, opts.ssh_port, lock),
            Driver::Vm(vm) => vm::execute_vm(vm, plan, opts, &settings.home, lock, progress),
        }
    }

    /// After [`Driver::apply`], with the lock released: waits until the services the run
    /// started or restarted since `since_ms` are ready (natively; the vm runtime's script
    /// already did), filling `outcome` with their readiness and any failure.
    pub fn wait_ready(
        &self,
        plan: &Plan,
        since_ms: u64,
        timeout: std::time::Duration,
        outcome: &mut Outcome,
        progress: &mut Progress,
    ) {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => {
                let watch = native::Watch { native: rt, plan };
                let jails = plan.jails.iter().map(|j| j.name().to_string()).collect();
                let (rows, ready) = wait::wait_ready(&watch, &jails, since_ms, timeout, progress);
                outcome.services = rows;
                if let Err(e) = ready {
                    outcome.error = Some(format!(
                        "{e}\nThe jails are up; `jrun status <jail>` shows their services. Fix the service and run `jrun up` again, or pass a longer --wait-timeout."
                    ));
                }
            }
            Driver::Vm(_) => {
                let _ = (plan, since_ms, timeout, outcome, progress);
            }
        }
    }

    /// `jrun down`: removes `names` (the caller holds the lock and saves nothing itself).
    pub fn remove(
        &self,
        settings: &Settings,
        lock: &mut StateLock,
        names: &[JailName],
    ) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => remove::remove_and_rewire(
                rt,
                lock,
                names,
                settings.ssh_port,
                &mut Progress::new(false),
            ),
            Driver::Vm(vm) => remove::down_vm(vm, settings, lock, names),
        }
    }

    /// The jails' services, as the instance reports them (none where it keeps no such list).
    pub fn services(&self) -> Result<Vec<ServiceStatus>, String> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => rt.services(),
            Driver::Vm(_) => Ok(Vec::new()),
        }
    }

    /// The instance's own long-lived processes (resolver, nodes, forwards).
    pub fn processes(&self) -> Result<Vec<ChildStatus>, String> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => rt.children(),
            Driver::Vm(_) => Ok(Vec::new()),
        }
    }

    /// The instance's vitals for `jrun status` (`since`: when it started).
    pub fn vitals(&self, since: Option<u64>) -> jrun_core::services::Vitals {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => jrun_core::services::Vitals {
                pid: jrun_native::usage::supervisor_pid(rt.layout()),
                uptime_secs: since
                    .map(|s| (jrun_core::services::now_ms() / 1000).saturating_sub(s)),
                ..Default::default()
            },
            Driver::Vm(vm) => vm.vitals(since),
        }
    }

    /// Each running jail's processes, CPU and memory (`jrun status --live`).
    pub fn jail_usage(
        &self,
        jails: &[JailName],
    ) -> Result<Vec<jrun_core::services::JailUsage>, String> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => Ok(jrun_native::usage::jail_usage(rt.layout(), jails)),
            Driver::Vm(vm) => vm.jail_usage().map_err(|e| e.to_string()),
        }
    }

    /// The address the jail's running Yggdrasil node answers with, if it answers.
    pub fn running_mesh_address(&self, jail: &JailName) -> Option<YggAddress> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(rt) => jrun_native::mesh::running_address(rt, jail),
            Driver::Vm(vm) => vm.observe_jail(jail).ok().and_then(|o| o.mesh_address),
        }
    }

    /// `jrun logs`: the last `lines` of each of `execs`' logs, or (`follow`, one exec) its
    /// log as it grows. Returns the exit code of what showed them.
    pub fn show_logs(
        &self,
        settings: &Settings,
        jail: &jrun_core::state::JailState,
        execs: &[&str],
        lines: usize,
        follow: bool,
    ) -> miette::Result<i32> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => {
                let logs = settings.home.join("logs").join(jail.name.as_str());
                let mut argv = vec!["tail".to_string(), "-n".into(), lines.to_string()];
                if follow {
                    // By name: the log is rotated under it.
                    argv.push("-F".into());
                }
                argv.extend(
                    execs
                        .iter()
                        .map(|e| logs.join(format!("{e}.log")).display().to_string()),
                );
                shown(&argv)
            }
            Driver::Vm(vm) => {
                // In the jail, exec i writes /var/log/jrun/exec<i>.log (rc script order).
                let mut argv = vec!["doas".to_string(), "jexec".into(), jail.name.to_string()];
                argv.extend(["tail".into(), "-n".into(), lines.to_string()]);
                if follow {
                    argv.push("-F".into());
                }
                for e in execs {
                    let i = jail.execs.iter().position(|x| x.name == *e).unwrap_or(0);
                    argv.push(format!("/var/log/jrun/exec{i}.log"));
                }
                let ssh = vm
                    .ssh_target()
                    .map_err(|_| miette::miette!("the VM is not running; run `jrun start` first"))?
                    .command_argv(&argv, false);
                shown(&ssh)
            }
        }
    }

    /// Fails (`jrun` exits 3) where jails have no snapshots: natively they share the
    /// host's filesystem.
    pub fn require_snapshots(&self) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(_) => Ok(()),
        }
    }

    /// `jrun snapshot list`: the jail's snapshots, oldest first.
    pub fn snapshots(&self, jail: &JailName) -> miette::Result<Vec<Snapshot>> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(vm) => vm.snapshots(jail).into_diagnostic(),
        }
    }

    /// `jrun snapshot create`: a snapshot of the jail as it is, taken while it runs.
    pub fn create_snapshot(&self, jail: &JailName, name: &SnapshotName) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(vm) => vm.create_snapshot(jail, name).into_diagnostic(),
        }
    }

    /// `jrun snapshot delete`.
    pub fn delete_snapshot(&self, jail: &JailName, name: &SnapshotName) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(vm) => vm.destroy_snapshot(jail, name).into_diagnostic(),
        }
    }

    /// Fails, before anything is asked or changed, when a rollback could not bring the
    /// jail back as recorded (another jail has changes pending).
    pub fn check_rollback(&self, settings: &Settings, state: &State) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(_) => vm::recorded_plan(settings, state).map(drop),
        }
    }

    /// `jrun snapshot rollback` (the caller holds the lock): the jail stopped, returned to
    /// `name` (later snapshots destroyed), and started again with its services, whose
    /// readiness it returns.
    pub fn rollback_snapshot(
        &self,
        settings: &Settings,
        lock: &mut StateLock,
        jail: &JailName,
        name: &SnapshotName,
        progress: &mut Progress,
    ) -> miette::Result<Vec<jrun_core::services::ServiceReady>> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Err(snapshots_unavailable()),
            Driver::Vm(vm) => vm::rollback_vm(vm, settings, lock, jail, name, progress),
        }
    }

    /// `jrun purge`, after `stop`: deletes what only this runtime keeps (the VM's disk).
    pub fn purge(&self) -> miette::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Native(_) => Ok(()),
            Driver::Vm(vm) => vm.purge().into_diagnostic(),
        }
    }
}

/// Runs `argv`, its output to ours. On a terminal each line goes through
/// [`jrun_core::text::printable`]: a service's log is the jail's text, and its escape
/// sequences must not reach the admin's terminal. Returns its exit code.
fn shown(argv: &[String]) -> miette::Result<i32> {
    use std::io::{BufRead, IsTerminal, Write};
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if !std::io::stdout().is_terminal() {
        return Ok(cmd.status().into_diagnostic()?.code().unwrap_or(1));
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .into_diagnostic()?;
    let reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut out = std::io::stdout().lock();
    for line in reader.split(b'\n') {
        let line = line.into_diagnostic()?;
        let text = String::from_utf8_lossy(&line);
        if writeln!(out, "{}", jrun_core::text::printable(&text)).is_err() {
            break;
        }
        let _ = out.flush();
    }
    Ok(child.wait().into_diagnostic()?.code().unwrap_or(1))
}

/// SIGINT, SIGTERM or SIGHUP during `up`: the setup step running now is killed (it is a
/// process group of its own, which a terminal's Ctrl-C does not reach, and without this it
/// would run on in its jail), then jrun exits with 128 + the signal, as the default action
/// would have ended it. The rest converges on the next `up`, as after a `kill -9`: the lock
/// is a file lock the kernel releases, and the jail stays recorded as not deployed.
pub fn kill_steps_on_interrupt() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn on_signal(sig: nix::libc::c_int) {
        #[cfg(target_os = "linux")]
        jrun_native::kill_running_step();
        // SAFETY: `_exit` is async-signal-safe; nothing else runs after it.
        unsafe { nix::libc::_exit(128 + sig) }
    }
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler does only async-signal-safe things (an atomic load, kill(2),
        // _exit(2)) and replaces no handler jrun relies on (none is installed for these).
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// `jrun supervise`: the native instance's supervisor daemon, in the foreground.
#[cfg(target_os = "linux")]
pub fn supervise(home: &std::path::Path) -> miette::Result<()> {
    jrun_native::supervisor::run(&jrun_native::names::Layout::new(home))
        .map_err(|e| miette::miette!("{e}"))
}

/// The supervisor belongs to the native runtime, which is Linux's alone.
#[cfg(not(target_os = "linux"))]
pub fn supervise(_home: &std::path::Path) -> miette::Result<()> {
    Err(native_unavailable())
}

/// A command, or a runtime, that this build or this runtime does not offer: `jrun` exits 3.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{what}")]
#[diagnostic(help("{help}"))]
pub struct Unavailable {
    pub what: String,
    pub help: String,
}

/// Snapshots are ZFS snapshots of a jail's own dataset, which only the vm runtime's jails
/// have.
fn snapshots_unavailable() -> miette::Report {
    miette::Report::new(Unavailable {
        what: "the native runtime has no snapshots: its jails share the host's filesystem, so a jail has no ZFS dataset of its own to snapshot or roll back".into(),
        help: "snapshots are the vm runtime's (JRUN_RUNTIME=vm, or --runtime vm), where every jail is a ZFS dataset".into(),
    })
}

/// The runtime `JRUN_RUNTIME` (or `--runtime`) names.
pub fn select(settings: &Settings) -> miette::Result<Driver> {
    select_with(settings, DisplayMode::Headless)
}

/// [`select`], with the VM shown as `display` (`jrun start --mode`).
pub fn select_with(settings: &Settings, display: DisplayMode) -> miette::Result<Driver> {
    match settings.runtime {
        RuntimeKind::Vm => Ok(Driver::Vm(VmRuntime::new(
            settings,
            Arc::new(SystemRunner),
            VmOptions {
                display,
                mirror: format!("{}/releases/VM-IMAGES", settings.bsd_mirror),
                ssh_deadline: std::time::Duration::from_secs(settings.vm_boot_timeout_secs),
                ..VmOptions::default()
            },
        ))),
        #[cfg(target_os = "linux")]
        RuntimeKind::Native => native(settings).map(Driver::Native),
        #[cfg(not(target_os = "linux"))]
        RuntimeKind::Native => Err(native_unavailable()),
    }
}

/// The native runtime is Linux's own (network namespaces, nftables, netlink).
#[cfg(not(target_os = "linux"))]
pub fn native_unavailable() -> miette::Report {
    miette::Report::new(Unavailable {
        what: format!(
            "the native runtime runs only on Linux; this is {}",
            std::env::consts::OS
        ),
        help: "use the vm runtime (JRUN_RUNTIME=vm, the default): jails in a FreeBSD VM".into(),
    })
}

/// Reads the settings (environment and `./.env`).
pub fn settings() -> miette::Result<Settings> {
    let settings = Settings::load()
        .into_diagnostic()
        .wrap_err("cannot read jrun's settings (JRUN_* variables or ./.env)")?;
    trusted_home(&settings.home)?;
    Ok(settings)
}

/// As root, a home someone else owns or can write is refused before anything reads it
/// (`jrun_core::home_trust`).
pub fn trusted_home(home: &std::path::Path) -> miette::Result<()> {
    if nix::unistd::geteuid().is_root() {
        jrun_core::home_trust::check(home).map_err(|e| miette::miette!("{e}"))?;
    }
    Ok(())
}

/// The native runtime for these settings.
#[cfg(target_os = "linux")]
fn native(settings: &Settings) -> miette::Result<NativeRuntime> {
    let exe = std::env::current_exe()
        .into_diagnostic()
        .wrap_err("cannot find the jrun binary to run the supervisor")?;
    Ok(NativeRuntime::new(
        &settings.home,
        Arc::new(SystemRunner),
        NativeOptions {
            mesh: settings.mesh_network,
            relay_peer: settings.relay_peer.clone(),
            dns_upstream: dns_upstream()?,
            supervisor_argv: vec![exe.display().to_string(), "supervise".into()],
        },
    ))
}

/// `JRUN_DNS_UPSTREAM=<ip>[:port]`: where the resolver forwards names outside `jrun.`.
#[cfg(target_os = "linux")]
fn dns_upstream() -> miette::Result<Option<SocketAddrV4>> {
    let Ok(value) = std::env::var("JRUN_DNS_UPSTREAM") else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    parse_upstream(&value).map(Some).ok_or_else(|| {
        miette!(
            help =
                "write an IPv4 address with an optional port, e.g. 192.168.1.1 or 127.0.0.1:5353",
            "JRUN_DNS_UPSTREAM={value:?} is not valid"
        )
    })
}

#[cfg(target_os = "linux")]
fn parse_upstream(value: &str) -> Option<SocketAddrV4> {
    value.parse::<SocketAddrV4>().ok().or_else(|| {
        value
            .parse::<Ipv4Addr>()
            .ok()
            .map(|ip| SocketAddrV4::new(ip, 53))
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream("1.2.3.4"),
            Some("1.2.3.4:53".parse().unwrap())
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_upstream("dns.example"), None);
    }
}
