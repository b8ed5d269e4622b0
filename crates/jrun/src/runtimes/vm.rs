//! The vm runtime behind the commands: `start` (download, boot, SSH, base block) and
//! `up` (the whole plan in one guest script, which also waits for the services).

use jrun_core::config;
use jrun_core::plan::{self, Options, Plan, Probe};
use jrun_core::runtime::StartOutcome;
use jrun_core::settings::Settings;
use jrun_core::state::{LockWait, StateLock, StateStore};
use jrun_mesh::KeyStore;
use jrun_vm::runtime::VmRuntime;
use miette::IntoDiagnostic;

use jrun_vm::runtime::{UpOptions, VmEvent};
use jrun_vm::ssh::Progress as ScriptProgress;

use super::apply::{reason_word, ApplyOptions, Deployed, Outcome};
use super::StartOptions;
use crate::progress::Progress;

/// The vm runtime applies the whole plan in one script; jails are recorded deployed
/// only when it succeeded. The script itself waits for the services it (re)started and
/// reports their readiness; a service not ready fails `up` after the jails are recorded.
pub(super) fn execute_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    plan: &Plan,
    args: &ApplyOptions,
    home: &std::path::Path,
    lock: &mut StateLock,
    progress: &mut Progress,
) -> Outcome {
    let mut outcome = Outcome::default();
    if plan.is_empty() {
        outcome.unchanged = plan.jails.iter().map(|j| j.name().to_string()).collect();
        return outcome;
    }
    for jp in plan.jails.iter().filter(|j| !j.actions.is_empty()) {
        lock.state.begin_jail(jp);
    }
    if let Err(e) = lock.save() {
        outcome.error = Some(e.to_string());
        return outcome;
    }
    let opts = UpOptions {
        provision: args.provision,
        wait: args.wait,
    };
    // What the script prints (a setup step's or ansible's output) shows under its step,
    // as the native runtime shows it.
    let mut current: Option<(String, String)> = None;
    let applied = vm.up(
        plan,
        &opts,
        &jrun_mesh::KeyStore::open(home),
        &mut |event| match event {
            VmEvent::Restarting(why) => progress.step("vm", &format!("restarting: {why}")),
            VmEvent::Script(ScriptProgress::Step { info, .. }) => {
                let who = info.jail.as_ref().map_or("vm", |j| j.as_str());
                progress.step(who, &info.name);
                current = Some((who.to_string(), info.name.clone()));
            }
            VmEvent::Script(ScriptProgress::Output(line)) => {
                if let Some((who, step)) = &current {
                    if !line.trim().is_empty() {
                        progress.step(who, &format!("{step}: {line}"));
                    }
                }
            }
            _ => {}
        },
    );
    match applied {
        Ok(rows) => {
            if let Some(e) = jrun_vm::ready::ReadyLines::failure(&rows) {
                outcome.error = Some(format!(
                    "{e}\nThe jails are up; `jrun status <jail>` shows them. Fix the service and run `jrun up` again, or pass a longer --wait-timeout."
                ));
            }
            outcome.services = rows;
            plan.apply_to(&mut lock.state);
            outcome.removed = plan.removals.iter().map(|r| r.name.to_string()).collect();
            for jp in &plan.jails {
                if jp.actions.is_empty() {
                    outcome.unchanged.push(jp.name().to_string());
                } else {
                    outcome.deployed.push(Deployed {
                        name: jp.name().to_string(),
                        ip: jp.ip,
                        reasons: jp.actions.iter().map(|a| reason_word(&a.reason)).collect(),
                    });
                }
            }
        }
        Err(e) => outcome.error = Some(e.to_string()),
    }
    if let Err(e) = lock.save() {
        outcome.error.get_or_insert(e.to_string());
    }
    outcome.changed = !outcome.deployed.is_empty() || !outcome.removed.is_empty();
    outcome
}

/// Boots the VM (downloading and preparing its image the first time), waits for its SSH,
/// then, with `--base FILE`, brings the VM to that file's `base { }` block.
pub(super) fn start_vm(
    vm: &VmRuntime,
    settings: &Settings,
    args: &StartOptions,
) -> miette::Result<StartOutcome> {
    // Held until the VM is up, so `stop`/`purge` cannot tear it down half-built.
    let mut lock = StateStore::new(&settings.home)
        .lock(LockWait::No)
        .into_diagnostic()?;
    let mut progress = Progress::new(false);
    let outcome = vm
        .start_reporting(&mut |e| match e {
            VmEvent::Download(p) => {
                let mb = |b: u64| b / (1024 * 1024);
                let text = match p.total {
                    Some(t) => format!(
                        "downloading the FreeBSD image: {} of {} MB",
                        mb(p.done),
                        mb(t)
                    ),
                    None => format!("downloading the FreeBSD image: {} MB", mb(p.done)),
                };
                progress.step("vm", &text);
            }
            VmEvent::Booting { ssh_port } => {
                progress.step("vm", &format!("booting (SSH on 127.0.0.1:{ssh_port})"))
            }
            VmEvent::WaitingForSsh => progress.step("vm", "waiting for SSH"),
            _ => {}
        })
        .into_diagnostic();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            progress.done("vm", "failed");
            return Err(e);
        }
    };
    progress.done("vm", "running");
    if outcome == StartOutcome::Started && vm.opts_display() == jrun_vm::qemu::DisplayMode::Tty {
        eprintln!("jrun: the VM's console; Ctrl-] leaves it (the VM keeps running)");
        vm.attach_console().into_diagnostic()?;
        eprintln!("\njrun: left the console");
    }
    // The VM's own setup (pf with a rule that keeps this session, loader tunables, sysctls,
    // the bridge, the resolver, the mesh node, shares) right after a boot, and for
    // `--base`: the recorded jails as they are, with the file's base block when one is given.
    // With `--mode tty` the console was the user's; the next `up` does it.
    let tty = vm.opts_display() == jrun_vm::qemu::DisplayMode::Tty;
    let booted = outcome == StartOutcome::Started && !tty;
    if booted || args.base.is_some() {
        let mut wanted = lock.state.as_config(settings.home.join("state.json"));
        if let Some(file) = &args.base {
            let config = config::load(file, settings.ssh_port).map_err(miette::Report::new)?;
            wanted.base = config.base;
        }
        let options = Options {
            ssh_port: settings.ssh_port,
            provision: args.provision,
            ..Options::default()
        };
        let mut plan =
            plan::plan(&wanted, &lock.state, &Probe::default(), &options).into_diagnostic()?;
        if let Some(file) = &args.base {
            // `--base FILE` applies FILE's base block: recorded as that file's.
            plan.base_file = Some(crate::commands::config_file(file)?);
        }
        crate::playbooks::prepare_for_plan(&wanted, &plan, settings, &mut |line| {
            eprintln!("{line}")
        })?;
        let opts = UpOptions {
            provision: args.provision,
            wait: None,
        };
        vm.up(&plan, &opts, &KeyStore::open(&settings.home), &mut |e| {
            if let VmEvent::Script(ScriptProgress::Step { info, .. }) = e {
                progress.step("base", &info.name);
            }
        })
        .into_diagnostic()?;
        progress.done("base", "VM set up");
        plan.apply_to(&mut lock.state);
        lock.save().into_diagnostic()?;
    }
    Ok(outcome)
}

/// Every file the FreeBSD guest would receive for `plan`, and the script (`jrun render`).
pub fn render_guest(
    plan: &Plan,
    settings: &Settings,
    provision: bool,
) -> miette::Result<jrun_vm::render::Rendered> {
    let mesh = if settings.mesh_network {
        let store = KeyStore::open(&settings.home);
        Some(
            jrun_vm::build::mesh_from_store(plan, &store, settings.relay_peer.as_deref())
                .into_diagnostic()?,
        )
    } else {
        None
    };
    let mut spec = jrun_vm::build::from_plan(plan, &settings.bsd_version, mesh, provision)
        .into_diagnostic()?;
    spec.bsd_mirror = settings.bsd_mirror.clone();
    // As `jrun up` sends it: waiting for the services, for its default time.
    spec.ready_timeout_secs = Some(60);
    let sources = jrun_vm::render::load_setup_sources(&spec, &settings.home).into_diagnostic()?;
    jrun_vm::render::render_all(&spec, &sources).into_diagnostic()
}

/// The plan that brings the recorded jails about again, as they are: refused when a jail
/// has changes pending (its last `up` did not finish), which `snapshot rollback` must not
/// carry out behind the user's back.
pub(super) fn recorded_plan(
    settings: &Settings,
    state: &jrun_core::state::State,
) -> miette::Result<Plan> {
    let wanted = state.as_config(settings.home.join("state.json"));
    let options = Options {
        ssh_port: settings.ssh_port,
        ..Options::default()
    };
    let plan = plan::plan(&wanted, state, &Probe::default(), &options).into_diagnostic()?;
    let pending: Vec<&str> = plan
        .jails
        .iter()
        .filter(|j| !j.actions.is_empty())
        .map(|j| j.name().as_str())
        .chain(plan.removals.iter().map(|r| r.name.as_str()))
        .collect();
    if !pending.is_empty() {
        return Err(miette::miette!(
            help = "run `jrun up <config>` first, then roll back",
            "jail(s) {} have changes pending (their last `jrun up` did not finish); a rollback brings the jail back as the recorded jails are, and would carry those out too",
            pending.join(", ")
        ));
    }
    Ok(plan)
}

/// `jrun snapshot rollback` on the VM: stops the jail, returns its dataset to `snap`
/// (destroying later snapshots), then brings the jail back with one `up` script of the
/// recorded jails: jrun's own files in it (services, firewall, addresses) are written
/// again as the current config has them, mount folders made, the jail started and its
/// services waited for. Whatever the rollback did, the jail is brought back.
pub(super) fn rollback_vm(
    vm: &VmRuntime,
    settings: &Settings,
    lock: &mut StateLock,
    jail: &config::JailName,
    snap: &jrun_vm::snapshot::SnapshotName,
    progress: &mut Progress,
) -> miette::Result<Vec<jrun_core::services::ServiceReady>> {
    let plan = recorded_plan(settings, &lock.state)?;
    progress.step(jail.as_str(), &format!("stopping, rolling back to {snap}"));
    let rolled = vm.stop_and_roll_back(jail, snap);
    progress.step(jail.as_str(), "starting");
    let opts = UpOptions {
        provision: false,
        wait: Some(std::time::Duration::from_secs(60)),
    };
    let back = vm.up(&plan, &opts, &KeyStore::open(&settings.home), &mut |e| {
        if let VmEvent::Script(ScriptProgress::Step { info, .. }) = e {
            let who = info.jail.as_ref().map_or("vm", |j| j.as_str());
            progress.step(who, &info.name);
        }
    });
    if back.is_ok() {
        // As `start` does after its script: the recorded VM wiring follows what was applied.
        plan.apply_to(&mut lock.state);
        lock.save().into_diagnostic()?;
    }
    let outcome = match (&rolled, &back) {
        (Ok(()), Ok(_)) => "rolled back",
        _ => "failed",
    };
    progress.done(jail.as_str(), outcome);
    match (rolled, back) {
        (Ok(()), Ok(rows)) => match jrun_vm::ready::ReadyLines::failure(&rows) {
            Some(e) => Err(miette::miette!(
                help = format!("`jrun logs {jail}` shows its services' output"),
                "jail `{jail}` is back at snapshot `{snap}`, but a service is not ready:\n{e}"
            )),
            None => Ok(rows),
        },
        (Ok(()), Err(e)) => Err(miette::miette!(
            help = "`jrun up <config>` tries again",
            "jail `{jail}` was rolled back to `{snap}`, but bringing it back up failed: {e}"
        )),
        (Err(e), Ok(_)) => Err(miette::miette!(
            "rolling back jail `{jail}` to `{snap}` failed: {e}\nNothing was rolled back; the jail runs again as it was."
        )),
        (Err(e), Err(again)) => Err(miette::miette!(
            help = "`jrun up <config>` tries again",
            "rolling back jail `{jail}` to `{snap}` failed: {e}\nBringing the jail back up failed too: {again}"
        )),
    }
}
