//! The native runtime behind the commands. `up`: each jail's network, then its workload,
//! the jails of a dependency level side by side; then the Yggdrasil nodes of every
//! deployed jail, together; then the resolver's records and the forwards for every
//! deployed jail; then the wait for the services it started.

use jrun_core::config::JailName;
use jrun_core::plan::{JailPlan, Plan};
use jrun_core::runtime::{JailNetwork, Runtime, Step};
use jrun_core::state::StateLock;
use miette::IntoDiagnostic;

use super::apply::{reason_word, Deployed, Outcome};
use super::wait::ServiceWatch;
use crate::progress::Progress;
use crate::wiring;

pub(super) fn execute(
    native: &jrun_native::NativeRuntime,
    plan: &Plan,
    progress: &mut Progress,
    ssh_port: u16,
    lock: &mut StateLock,
) -> Outcome {
    let rt: &dyn Runtime = native;
    let mut outcome = Outcome::default();
    let mut error: Option<String> = None;
    // What the state file holds: `up` saves the state just before it calls this when the
    // plan changes anything (otherwise `up` saves afterwards if the state differs from its
    // file). A save that would write the same again is skipped (each is two fsyncs).
    let mut on_disk = lock.state.clone();
    let mut save = |lock: &mut StateLock| {
        if lock.state == on_disk {
            return Ok(());
        }
        lock.save().into_diagnostic()?;
        on_disk = lock.state.clone();
        Ok::<(), miette::Report>(())
    };

    // The removals together (one supervisor reload for all); a removal is safe to run
    // again, so a crash before the save below only means the next `up` removes them again.
    let removing: Vec<JailName> = plan.removals.iter().map(|r| r.name.clone()).collect();
    for name in &removing {
        progress.step(name.as_str(), Step::Remove.as_str());
    }
    let results = if removing.is_empty() {
        Vec::new()
    } else {
        rt.remove_jails(&removing)
    };
    let mut removed = Vec::new();
    for (name, result) in removing.iter().zip(results) {
        match result {
            Ok(()) => {
                lock.state.forget_jail(name);
                removed.push(name);
            }
            Err(e) => {
                error.get_or_insert(e.to_string());
                progress.done(name.as_str(), "removal failed");
            }
        }
    }
    if let Err(e) = save(lock) {
        error.get_or_insert(format!("{e:?}"));
        removed.clear();
    }
    for name in removed {
        progress.done(name.as_str(), "removed");
        outcome.removed.push(name.to_string());
    }

    let mut deployed_now = Vec::new();
    // The jails this run builds from nothing: undone when they fail.
    let mut fresh_jails = std::collections::BTreeSet::new();
    // What was deployed before this run: a jail this run fails on (or never reaches) but
    // whose network is still built at that address keeps its names and forwards.
    let before = lock.state.clone();
    // Every jail about to change is recorded as not deployed (at its planned address)
    // before any of them is touched: one durable write instead of one per jail.
    if error.is_none() {
        for jp in plan.jails.iter().filter(|j| !j.actions.is_empty()) {
            lock.state.begin_jail(jp);
        }
        if let Err(e) = save(lock) {
            error = Some(format!("{e:?}"));
        }
    }
    if error.is_none() {
        // A level's jails side by side: each deploy mostly waits on the kernel and on the
        // processes it runs. A level starts once the one before it is up; after a level
        // in which a jail failed, none starts (a jail whose dependency failed is not
        // deployed).
        for level in jrun_core::plan::levels(&plan.jails, |jp| &jp.jail) {
            let changing: Vec<&JailPlan> = level
                .into_iter()
                .filter(|jp| {
                    let unchanged = jp.actions.is_empty();
                    if unchanged {
                        outcome.unchanged.push(jp.name().to_string());
                    }
                    !unchanged
                })
                .collect();
            let shared = std::sync::Mutex::new(&mut *progress);
            let results: Vec<(bool, Result<(), String>)> = std::thread::scope(|scope| {
                let deploys: Vec<_> = changing
                    .iter()
                    .map(|jp| {
                        let shared = &shared;
                        scope.spawn(move || deploy_one(native, jp, shared))
                    })
                    .collect();
                deploys
                    .into_iter()
                    .map(|d| {
                        d.join()
                            .unwrap_or_else(|_| (false, Err("its deploy panicked".to_string())))
                    })
                    .collect()
            });
            for (jp, (fresh, result)) in changing.into_iter().zip(results) {
                if fresh {
                    fresh_jails.insert(jp.name().clone());
                }
                match result {
                    Ok(()) => deployed_now.push(jp),
                    Err(e) => {
                        progress.done(jp.name().as_str(), "failed");
                        error.get_or_insert(e);
                    }
                }
            }
            if error.is_some() {
                break;
            }
        }
    }
    // The Yggdrasil nodes of the jails deployed above, started together; a jail whose
    // node cannot start failed like at any other step.
    for (jail, result) in native.start_mesh_nodes() {
        let (Err(e), Some(at)) = (
            result,
            deployed_now.iter().position(|jp| *jp.name() == jail),
        ) else {
            continue;
        };
        deployed_now.remove(at);
        progress.done(jail.as_str(), "failed");
        let fresh = fresh_jails.contains(&jail);
        let undo_error = if fresh {
            rt.remove_jail(&jail).err()
        } else {
            None
        };
        error.get_or_insert(failure(native, &jail, &e, fresh, undo_error));
    }

    // The resolver and the forwards describe every jail that is (or is now) deployed.
    let mut wanted = lock.state.clone();
    for jp in &deployed_now {
        wanted.mark_deployed(jp);
    }
    for jp in plan.jails.iter().filter(|j| !j.actions.is_empty()) {
        let was = before.jails.get(jp.name()).filter(|j| j.deployed);
        if let Some(was) = was {
            if !deployed_now.contains(&jp) && native.jail_built(&was.name, was.ip) {
                wanted.jails.insert(was.name.clone(), was.clone());
            }
        }
    }
    for jp in &deployed_now {
        progress.step(jp.name().as_str(), Step::Records.as_str());
    }
    let wired = rt
        .set_records(&wiring::records(&wanted))
        .map(|()| jrun_native::fault_point(Step::Records))
        .and_then(|()| {
            for jp in &deployed_now {
                progress.step(jp.name().as_str(), Step::Forwards.as_str());
            }
            rt.set_forwards(&wiring::redirects(&wanted, ssh_port))
        })
        .map(|()| jrun_native::fault_point(Step::Forwards));
    match wired {
        Ok(()) => {
            for jp in &deployed_now {
                lock.state.mark_deployed(jp);
                progress.done(jp.name().as_str(), &format!("up ({})", jp.ip));
                outcome.deployed.push(Deployed {
                    name: jp.name().to_string(),
                    ip: jp.ip,
                    reasons: jp.actions.iter().map(|a| reason_word(&a.reason)).collect(),
                });
            }
            if error.is_none() {
                let mut recorded = plan.clone();
                recorded.vm_firewall.redirects = wiring::redirects(&lock.state, ssh_port);
                lock.state.record_vm(&recorded);
                // `up` is how a failed service is started again once its cause is fixed
                // (its error says so), even when nothing in the config changed.
                let jails: Vec<JailName> = plan.jails.iter().map(|j| j.name().clone()).collect();
                match native.revive_failed_services(&jails) {
                    Ok(revived) => outcome.revived = revived,
                    Err(e) => error = Some(e.to_string()),
                }
            }
        }
        Err(e) => {
            for jp in &deployed_now {
                progress.done(jp.name().as_str(), "failed");
            }
            error.get_or_insert(e.to_string());
        }
    }
    if let Err(e) = save(lock) {
        error.get_or_insert(format!("{e:?}"));
    }
    outcome.changed = !outcome.deployed.is_empty() || !outcome.removed.is_empty();
    outcome.error = error;
    outcome
}

/// Deploys one jail's network and workload, undoing a jail this run built when either
/// fails. Whether it was built by this run (`fresh`), and its error, saying what became of
/// the jail.
fn deploy_one(
    native: &jrun_native::NativeRuntime,
    jp: &JailPlan,
    progress: &std::sync::Mutex<&mut Progress>,
) -> (bool, Result<(), String>) {
    let name = jp.name().as_str();
    let step = |jail: &str, what: &str| {
        progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .step(jail, what)
    };
    let net = JailNetwork {
        name: jp.name().clone(),
        ip: jp.ip,
        redirects: jp.redirects.clone(),
        firewall: jp.firewall.clone(),
    };
    // Only a jail this run builds is undone on failure; one that was already running
    // stays as it was (recorded not deployed, so the next up retries it).
    let fresh = !native.jail_built(jp.name(), jp.ip);
    // The runtime undoes a fresh jail's failed network itself (and says so in its error
    // when that fails too); a failed workload is undone here.
    let mut undo_error = None;
    let result = native
        .deploy_jail(&net, &mut |j, s| step(j.as_str(), s.as_str()))
        .and_then(|()| {
            // Mounts, setup steps and services.
            native
                .deploy_workload(jp, &mut |what| step(name, what))
                .inspect_err(|_| {
                    if fresh {
                        undo_error = native.remove_jail(jp.name()).err();
                    }
                })
        });
    let result = result.map_err(|e| failure(native, jp.name(), &e, fresh, undo_error));
    (fresh, result)
}

/// The error of a jail whose deploy failed, saying what became of it (`fresh`: this run
/// built it, and tried to undo it; `undo_error`: why that failed).
fn failure(
    native: &jrun_native::NativeRuntime,
    jail: &JailName,
    e: &jrun_core::runtime::RuntimeError,
    fresh: bool,
    undo_error: Option<jrun_core::runtime::RuntimeError>,
) -> String {
    let what = match undo_error {
        Some(undo) => format!(
            "rolling back jail `{jail}` failed too ({undo}); `jrun down {jail}` clears what is left, or"
        ),
        None if fresh && native.jail_namespace_exists(jail) => format!(
            "jail `{jail}` was not fully rolled back (its namespace is still there); `jrun down {jail}` clears it, or"
        ),
        None if fresh => "the jail was rolled back and".to_string(),
        None => "the jail was left running as it was and".to_string(),
    };
    format!("{e}; {what} the next `jrun up` retries it")
}

/// The native runtime's answers while `up` waits: the supervisor's service status, and
/// the planned jails' forwards tried as the host's forward connects.
pub(super) struct Watch<'a> {
    pub native: &'a jrun_native::NativeRuntime,
    pub plan: &'a Plan,
}

impl ServiceWatch for Watch<'_> {
    fn services(&self) -> Result<Vec<jrun_core::services::ServiceStatus>, String> {
        self.native.services()
    }

    fn forwards_open(&self, jail: &str) -> Option<bool> {
        let jp = self.plan.jails.iter().find(|j| j.name().as_str() == jail)?;
        self.native.forwards_accept(&jp.redirects)
    }
}

pub(super) fn start_native(
    rt: &jrun_native::NativeRuntime,
    settings: &jrun_core::settings::Settings,
    args: &super::StartOptions,
) -> miette::Result<jrun_core::runtime::StartOutcome> {
    // Held until the instance is up, so `stop`/`purge` cannot tear it down half-built.
    let _lock = jrun_core::state::StateStore::new(&settings.home)
        .lock(jrun_core::state::LockWait::No)
        .into_diagnostic()?;
    if args.base.is_some() {
        eprintln!("note: --base (base setup) is not supported by the native runtime yet; ignored");
    }
    rt.start().into_diagnostic()
}
