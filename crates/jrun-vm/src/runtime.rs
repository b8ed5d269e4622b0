//! The vm runtime: one FreeBSD VM per `JRUN_HOME`, started from the release image,
//! reached over SSH, changed by one script per `jrun up`.
//!
//! Files live in `$JRUN_HOME/vm/` (0700): the disk, the seed, jrun's SSH key, the QMP
//! socket and pid file (the "running" signal), and `wiring.json` — the SSH port and
//! the forwards and shares the running QEMU has.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jrun_core::config::Proto;
use jrun_core::exec::Runner;
use jrun_core::plan::Plan;
use jrun_core::settings::Settings;
use jrun_mesh::KeyStore;
use serde::{Deserialize, Serialize};

use crate::image::{self, ImageSource};
use crate::qemu::launch::StopOutcome;
use crate::qemu::{
    firmware, free_port_from, Accel, Arch, Boot, DisplayMode, HostFwd, Qemu, QemuSpec, VmProcess,
};
use crate::ready::ReadyLines;
use crate::render::{load_setup_sources, render_all, shares, Share};
use crate::spec::{GuestSpec, Release};
use crate::ssh::{Progress, RemoteExec, SshExecutor, SshTarget};
use crate::up::{
    apply, hostfwds, jail_hostfwds, restart_reason, ForwardControl, HostFwdChanges, GUEST_SSH_PORT,
};
use crate::{build, seed};
use jrun_core::services::ServiceReady;

/// Where the vm runtime keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPaths {
    pub dir: PathBuf,
}

impl VmPaths {
    pub fn new(home: &Path) -> Self {
        VmPaths {
            dir: home.join("vm"),
        }
    }
}

/// One getter per file the vm runtime keeps in [`VmPaths::dir`].
macro_rules! vm_files {
    ($($(#[$doc:meta])* $name:ident => $file:literal;)*) => {
        impl VmPaths {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> PathBuf {
                    self.dir.join($file)
                }
            )*
        }
    };
}

vm_files! {
    /// The guest's disk image.
    disk => "disk.raw";
    /// The seed ISO given to the guest.
    seed => "seed.iso";
    /// The UEFI variable store.
    efivars => "efivars.fd";
    /// Where downloaded release images are cached.
    images => "images";
    /// QEMU's QMP socket.
    qmp => "qmp.sock";
    /// QEMU's pidfile.
    pidfile => "qemu.pid";
    /// The guest's serial console.
    serial_log => "serial.log";
    /// The SSH private key for the guest.
    ssh_key => "id_ed25519";
    /// SSH known_hosts for the guest.
    known_hosts => "known_hosts";
    /// The SSH connection-sharing (ControlPath) socket.
    ssh_control => "ssh.sock";
    /// What the running QEMU was given ([`Wiring`]).
    wiring => "wiring.json";
}

/// What the running QEMU was given (or has been changed to through QMP).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Wiring {
    /// The host port that reaches the VM's SSH (moved up from `JRUN_SSH_PORT` if taken).
    pub ssh_port: u16,
    pub hostfwds: Vec<HostFwd>,
    /// Which of `hostfwds` serve jail forwards (the others are SSH and base forwards).
    /// Recorded rather than guessed from the ports, since a base forward may map P to P too;
    /// live forward changes replace only these.
    #[serde(default)]
    pub jail_hostfwds: Vec<HostFwd>,
    pub shares: Vec<Share>,
}

/// How to run the VM beyond `Settings`.
#[derive(Debug, Clone)]
pub struct VmOptions {
    pub display: DisplayMode,
    /// `qemu-system-*` to use (default: found on `PATH`).
    pub qemu_binary: Option<PathBuf>,
    /// `JRUN_QEMU_BIOS`.
    pub firmware: Option<PathBuf>,
    /// The release mirror (default [`image::MIRROR`]).
    pub mirror: String,
    /// How long `stop` waits for the guest after the ACPI request.
    pub stop_deadline: Duration,
    /// How long `start` waits for SSH to answer.
    pub ssh_deadline: Duration,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            display: DisplayMode::Headless,
            qemu_binary: None,
            firmware: std::env::var_os("JRUN_QEMU_BIOS").map(PathBuf::from),
            mirror: image::MIRROR.into(),
            stop_deadline: Duration::from_secs(90),
            ssh_deadline: Duration::from_secs(600),
        }
    }
}

/// A console line without its terminal escapes (the firmware clears the screen and
/// moves the cursor) or other control characters.
fn printable(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final letter.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// How `up` runs on the VM.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--provision`: every setup step runs again.
    pub provision: bool,
    /// How long the script waits for the services it (re)starts; `None`: it does not.
    pub wait: Option<Duration>,
}

/// What happens, for progress bars and spinners.
#[derive(Debug)]
pub enum VmEvent<'a> {
    Download(image::Progress),
    Booting {
        ssh_port: u16,
    },
    /// The VM is booting; jrun waits for its SSH to answer.
    WaitingForSsh,
    /// Said before the VM restarts, with why.
    Restarting(&'a str),
    Forwards(&'a HostFwdChanges),
    Script(Progress<'a>),
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("the VM is not running; run `jrun start` first")]
    NotRunning,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({cause}); run `jrun stop` and `jrun start` again")]
    Wiring { path: PathBuf, cause: String },
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(transparent)]
    Firmware(#[from] firmware::FirmwareError),
    #[error(transparent)]
    Qemu(#[from] crate::qemu::QemuError),
    #[error(transparent)]
    Qmp(#[from] crate::qmp::QmpError),
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error(transparent)]
    Up(#[from] crate::up::UpError),
    #[error("{0}")]
    Spec(#[from] crate::spec::SpecError),
    #[error("`{command}` failed in the VM (exit {code}): {stderr}")]
    Guest {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("no free port from {0} up to reach the VM's SSH")]
    NoPort(u16),
    #[error("the VM did not answer on SSH (127.0.0.1:{port}) within {secs} s; the end of its console ({log}):\n{tail}")]
    SshTimeout {
        port: u16,
        secs: u64,
        log: PathBuf,
        tail: String,
    },
}

/// What `start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Started { ssh_port: u16 },
    AlreadyRunning,
}

pub struct VmRuntime {
    settings: Settings,
    paths: VmPaths,
    runner: Arc<dyn Runner>,
    opts: VmOptions,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    move |source| VmError::Io {
        path: path.into(),
        source,
    }
}

impl VmRuntime {
    pub fn new(settings: &Settings, runner: Arc<dyn Runner>, opts: VmOptions) -> Self {
        VmRuntime {
            settings: settings.clone(),
            paths: VmPaths::new(&settings.home),
            runner,
            opts,
        }
    }

    pub fn paths(&self) -> &VmPaths {
        &self.paths
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The running VM, if its pid is alive.
    pub fn process(&self) -> Option<VmProcess> {
        VmProcess::from_pidfile(&self.paths.pidfile(), &self.paths.qmp())
    }

    pub fn wiring(&self) -> Result<Option<Wiring>, VmError> {
        let p = self.paths.wiring();
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VmError::Wiring {
                    path: p,
                    cause: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VmError::Io { path: p, source }),
        }
    }

    /// Records the wiring the running QEMU has (after a live change).
    pub fn save_wiring(&self, w: &Wiring) -> Result<(), VmError> {
        let p = self.paths.wiring();
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(w).expect("plain data"))
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(io(&p))
    }

    /// SSH to the running VM as `admin`, through one shared ControlMaster connection.
    pub fn ssh_target(&self) -> Result<SshTarget, VmError> {
        let w = self.wiring()?.ok_or(VmError::NotRunning)?;
        Ok(SshTarget {
            host: "127.0.0.1".into(),
            port: w.ssh_port,
            user: seed::ADMIN.into(),
            identity: self.paths.ssh_key(),
            known_hosts: self.paths.known_hosts(),
            control_path: Some(self.paths.ssh_control()),
        })
    }

    /// Runs scripts as root in the guest through `doas`.
    pub fn executor(&self) -> Result<SshExecutor, VmError> {
        Ok(SshExecutor {
            target: self.ssh_target()?,
            privilege: Some("doas".into()),
        })
    }

    /// Downloads and prepares the image on first use, then boots the VM with `forwards`
    /// (besides SSH) and `shares`, detached.
    pub fn start(
        &self,
        forwards: &[HostFwd],
        shares: &[Share],
        events: &mut dyn FnMut(VmEvent),
    ) -> Result<Started, VmError> {
        self.start_wired(forwards, &[], shares, events)
    }

    /// [`Self::start`], recording which of `forwards` serve jail forwards
    /// (`jail_forwards`, a subset) in the wiring.
    pub fn start_wired(
        &self,
        forwards: &[HostFwd],
        jail_forwards: &[HostFwd],
        shares: &[Share],
        events: &mut dyn FnMut(VmEvent),
    ) -> Result<Started, VmError> {
        if self.process().is_some() {
            return Ok(Started::AlreadyRunning);
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.paths.dir)
            .map_err(io(&self.paths.dir))?;
        let arch = Arch::host();
        let size = image::parse_size(&self.settings.qemu_disk_size)?;
        let disk = self.paths.disk();
        if disk.exists() {
            image::grow(&disk, size)?;
        } else {
            let src = ImageSource {
                mirror: self.opts.mirror.clone(),
                release: Release::from_config(&self.settings.bsd_version)?,
                arch,
            };
            let raw = image::fetch(&src, &self.paths.images(), size, &mut |p| {
                events(VmEvent::Download(p))
            })?;
            std::fs::rename(&raw, &disk).map_err(io(&disk))?;
        }
        let key = seed::ensure_ssh_key(self.runner.as_ref(), &self.paths.ssh_key())?;
        if !self.paths.seed().exists() {
            seed::build(self.runner.as_ref(), &key, &self.paths.seed())?;
        }
        let fw = firmware::find(arch, self.opts.firmware.as_deref())?;
        let vars = match firmware::vars_template(&fw) {
            Some(t) if !self.paths.efivars().exists() => {
                std::fs::copy(&t, self.paths.efivars()).map_err(io(&t))?;
                Some(self.paths.efivars())
            }
            Some(_) => Some(self.paths.efivars()),
            None => None,
        };
        let ssh_port = free_port_from(self.settings.ssh_port)
            .ok_or(VmError::NoPort(self.settings.ssh_port))?;
        if ssh_port != self.settings.ssh_port {
            tracing::warn!(
                "port {} is taken; the VM's SSH uses {ssh_port}",
                self.settings.ssh_port
            );
        }
        let mut all = vec![HostFwd {
            proto: Proto::Tcp,
            host_port: ssh_port,
            guest_port: GUEST_SSH_PORT,
        }];
        all.extend(forwards.iter().filter(|f| f.host_port != ssh_port).copied());
        let spec = QemuSpec {
            arch,
            accel: Accel::from_settings(&self.settings),
            memory: self.settings.qemu_memory.clone(),
            cpus: self.settings.qemu_cpus,
            boot: Boot::Disk {
                firmware: fw,
                vars,
                disk,
                seed: Some(self.paths.seed()),
            },
            hostfwds: all.clone(),
            shares: shares.to_vec(),
            qmp_socket: self.paths.qmp(),
            pidfile: self.paths.pidfile(),
            serial_log: self.paths.serial_log(),
            display: self.opts.display,
        };
        events(VmEvent::Booting { ssh_port });
        Qemu::launch(&spec, self.opts.qemu_binary.as_deref())?;
        let jail_hostfwds = jail_forwards
            .iter()
            .filter(|f| all[1..].contains(f))
            .copied()
            .collect();
        self.save_wiring(&Wiring {
            ssh_port,
            hostfwds: all,
            jail_hostfwds,
            shares: shares.to_vec(),
        })?;
        Ok(Started::Started { ssh_port })
    }

    /// Waits until the guest runs a trivial script over SSH.
    pub fn wait_for_ssh(&self) -> Result<(), VmError> {
        let ex = SshExecutor {
            target: self.ssh_target()?,
            privilege: None,
        };
        let probe = crate::render::Script {
            text: "true\n".into(),
            steps: vec![],
        };
        let start = Instant::now();
        loop {
            if ex.run_script(&probe, &mut |_| {}).is_ok() {
                return Ok(());
            }
            if start.elapsed() > self.opts.ssh_deadline {
                let port = self.ssh_target()?.port;
                let log = self.paths.serial_log();
                let tail = jrun_core::services::log_tail(&log, 15)
                    .iter()
                    .map(|l| format!("  {}", printable(l)))
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(VmError::SshTimeout {
                    port,
                    secs: self.opts.ssh_deadline.as_secs(),
                    log,
                    tail,
                });
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// How the VM is shown (`jrun start --mode`).
    pub fn opts_display(&self) -> crate::qemu::DisplayMode {
        self.opts.display
    }

    /// Attaches this terminal to the VM's serial console (`--mode tty`) until Ctrl-].
    pub fn attach_console(&self) -> Result<(), VmError> {
        let socket = crate::qemu::console_socket(&self.paths.serial_log());
        crate::console::attach(&socket).map_err(io(&socket))
    }

    /// ACPI power-down, wait (calling `tick`), then quit, then kill.
    pub fn stop(&self, tick: &mut dyn FnMut(Duration)) -> Result<StopOutcome, VmError> {
        let Some(vm) = self.process() else {
            return Ok(StopOutcome::NotRunning);
        };
        let outcome = vm.stop(self.opts.stop_deadline, tick)?;
        let _ = std::fs::remove_file(self.paths.ssh_control());
        Ok(outcome)
    }

    /// Stops the VM and deletes its disk, seed, key and wiring (the caller confirms first).
    pub fn purge(&self) -> Result<(), VmError> {
        self.stop(&mut |_| {})?;
        match std::fs::remove_dir_all(&self.paths.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VmError::Io {
                path: self.paths.dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// One `jrun up`: forwards through QMP, a restart only for new shares, then the script
    /// over SSH. Returns the readiness of the services the script (re)started, when
    /// `opts.wait` asked for it.
    pub fn up(
        &self,
        plan: &Plan,
        opts: &UpOptions,
        keys: &KeyStore,
        events: &mut dyn FnMut(VmEvent),
    ) -> Result<Vec<ServiceReady>, VmError> {
        let vm = self.process().ok_or(VmError::NotRunning)?;
        let mut qmp = vm.qmp()?;
        let remote = self.executor()?;
        self.up_with(plan, opts, keys, &mut qmp, &remote, events)
    }

    /// [`VmRuntime::up`] with its QMP and SSH sides given (tests, benchmarks).
    pub fn up_with(
        &self,
        plan: &Plan,
        opts: &UpOptions,
        keys: &KeyStore,
        ctl: &mut dyn ForwardControl,
        remote: &dyn RemoteExec,
        events: &mut dyn FnMut(VmEvent),
    ) -> Result<Vec<ServiceReady>, VmError> {
        let mut wiring = self.wiring()?.ok_or(VmError::NotRunning)?;
        let mut spec = self.guest_spec(plan, keys, opts.provision)?;
        spec.ready_timeout_secs = opts.wait.map(|d| d.as_secs().max(1));
        let ready = std::cell::RefCell::new(ReadyLines::default());
        let mut events = |e: VmEvent| {
            if let VmEvent::Script(Progress::Output(line)) = &e {
                if ready.borrow_mut().take(line) {
                    return;
                }
            }
            events(e)
        };
        let events = &mut events;
        let rows = || std::mem::take(&mut ready.borrow_mut().rows);
        let rendered = render_all(&spec, &load_setup_sources(&spec, &self.settings.home)?)?;
        let desired_shares = shares(&spec);
        let desired_fwds = hostfwds(plan, wiring.ssh_port);
        let jail_fwds = jail_hostfwds(plan);
        if let Some(why) = restart_reason(&wiring.shares, &desired_shares) {
            events(VmEvent::Restarting(&why));
            self.stop(&mut |_| {})?;
            self.start_wired(&desired_fwds[1..], &jail_fwds, &desired_shares, events)?;
            self.wait_for_ssh()?;
            // The new VM was launched with every forward; only the script remains.
            let vm = self.process().ok_or(VmError::NotRunning)?;
            let mut qmp = vm.qmp()?;
            let remote = self.executor()?;
            let none = HostFwdChanges::default();
            apply(&rendered, &none, &mut qmp, &remote, &mut |p| {
                events(VmEvent::Script(p))
            })?;
            return Ok(rows());
        }
        let changes = HostFwdChanges::between(&wiring.hostfwds, &desired_fwds);
        if !changes.is_empty() {
            events(VmEvent::Forwards(&changes));
        }
        crate::up::apply_forwards(ctl, &changes).map_err(crate::up::UpError::from)?;
        wiring.hostfwds = desired_fwds;
        wiring.jail_hostfwds = jail_fwds;
        self.save_wiring(&wiring)?;
        remote
            .run_script(&rendered.script, &mut |p| events(VmEvent::Script(p)))
            .map_err(crate::up::UpError::from)?;
        Ok(rows())
    }

    /// What the guest should look like for `plan`, with the jails' mesh keys when the mesh is on.
    fn guest_spec(
        &self,
        plan: &Plan,
        keys: &KeyStore,
        provision: bool,
    ) -> Result<GuestSpec, VmError> {
        let mesh = if self.settings.mesh_network {
            Some(build::mesh_from_store(
                plan,
                keys,
                self.settings.relay_peer.as_deref(),
            )?)
        } else {
            None
        };
        let mut spec = build::from_plan(plan, &self.settings.bsd_version, mesh, provision)?;
        spec.bsd_mirror = self.settings.bsd_mirror.clone();
        Ok(spec)
    }

    /// After a pairing was made or dropped (state updated, `plan` recomputed): rewrites the
    /// resolver's records and each jail's `mesh_peers` table, over one SSH connection.
    pub fn apply_pairing(
        &self,
        plan: &Plan,
        keys: &KeyStore,
        remote: &dyn RemoteExec,
        events: &mut dyn FnMut(VmEvent),
    ) -> Result<(), VmError> {
        let spec = self.guest_spec(plan, keys, false)?;
        let files = crate::render::guest_files(&spec)?;
        let script = crate::render::pairing_script(&spec, &files);
        remote
            .run_script(&script, &mut |p| events(VmEvent::Script(p)))
            .map_err(crate::up::UpError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn console_lines_lose_their_terminal_escapes() {
        assert_eq!(
            printable("\u{1b}[2J\u{1b}[01;01H\u{1b}[=3hBdsDxe: failed to load Boot0001\r"),
            "BdsDxe: failed to load Boot0001"
        );
        assert_eq!(printable("login:\tready"), "login:\tready");
    }
}
