//! `jrun up <config> [name…]`: plan, then execute the plan through the runtime. A jail is
//! recorded deployed only after its network, the resolver's records and the forwards are
//! in place; a failure stops the run, undoes that jail's partial work and names the step.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use jrun_core::config::{self, JailName};
use jrun_core::plan::{self, Options, Plan, Probe};
use jrun_core::runtime::{JailNetwork, Runtime, Step};
use jrun_core::state::{LockWait, State, StateLock, StateStore};
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

use crate::progress::Progress;
use crate::{runtimes, wiring};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Only these jails (and what they depend on); all of the file's jails when none is named.
    pub names: Vec<String>,
    /// Redeploy and run setup steps again even where nothing changed.
    #[arg(long)]
    pub provision: bool,
    /// Print only the result, as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `up` did, for `--json` and the closing summary.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    changed: bool,
    deployed: Vec<Deployed>,
    removed: Vec<String>,
    unchanged: Vec<String>,
    /// Failed services (`<jail>/<exec>`) started again by this `up`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    revived: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Deployed {
    name: String,
    ip: std::net::Ipv4Addr,
    reasons: Vec<String>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    if let runtimes::Selected::Native(native) = &selected {
        native.require_root("jrun up").into_diagnostic()?;
    }
    if !rt.instance().into_diagnostic()?.running {
        return Err(miette!(
            help = "run `jrun start` first",
            "the instance is not running"
        ));
    }
    let config = config::load(&args.config, settings.ssh_port).map_err(miette::Report::new)?;
    let only = args
        .names
        .iter()
        .map(|n| {
            if config.jail(n).is_none() {
                return Err(miette!("{} has no jail named {n:?}", args.config.display()));
            }
            JailName::new(n.as_str()).into_diagnostic()
        })
        .collect::<miette::Result<Vec<_>>>()?;
    let options = Options {
        only,
        provision: args.provision,
        ssh_port: settings.ssh_port,
    };

    let store = StateStore::new(&settings.home);
    let mut lock = store.lock(LockWait::No).into_diagnostic()?;
    // Native: jails recorded as deployed whose network is gone (the instance was
    // restarted) are planned like an interrupted deployment: rebuilt at their address.
    if let runtimes::Selected::Native(native) = &selected {
        let present = native.jails_present().into_diagnostic()?;
        for jail in lock.state.jails.values_mut() {
            if jail.deployed && !present.contains(&jail.name) {
                jail.deployed = false;
            }
        }
    }
    let probe = if needs_probe(&config, &lock.state, &options) {
        Probe {
            in_use: rt.probe_in_use().into_diagnostic()?,
        }
    } else {
        Probe::default()
    };
    let plan = plan::plan(&config, &lock.state, &probe, &options).into_diagnostic()?;
    // A busy host port is refused before anything changes.
    rt.check_host_ports(&plan.vm_firewall.redirects)
        .into_diagnostic()?;
    // So is a mount whose host folder is missing (a config error, named).
    if let runtimes::Selected::Native(_) = &selected {
        jrun_native::jailns::check_host_folders(&plan).map_err(|e| {
            miette!(
                help = "create the folder or fix `host` in the config",
                "{e}"
            )
        })?;
    }

    let mut progress = Progress::new(args.json);
    let outcome = match &selected {
        runtimes::Selected::Native(native) => {
            execute(native, &plan, &mut progress, settings.ssh_port, &mut lock)
        }
        runtimes::Selected::Vm(vm) => execute_vm(vm, &plan, &args, &settings.home, &mut lock),
    };
    print_outcome(&outcome, args.json);
    match outcome.error {
        Some(e) => Err(miette!("{e}")),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Whether some jail in scope takes an address nobody in state holds: it needs a new one
/// from the pool (no static `ip`, none recorded) or its static `ip` is new. Only then is
/// the bridge probed (a foreign answer refuses a static address, DESIGN §2), which keeps a
/// no-op `up` fast.
fn needs_probe(config: &config::Config, state: &State, options: &Options) -> bool {
    let scope: BTreeSet<&JailName> = options.only.iter().collect();
    let held: BTreeSet<std::net::Ipv4Addr> = state.jails.values().map(|j| j.ip).collect();
    config
        .jails
        .iter()
        .filter(|j| scope.is_empty() || scope.contains(&j.name))
        .any(|j| match j.ip {
            Some(ip) => !held.contains(&ip),
            None => !state.jails.contains_key(&j.name),
        })
}

fn execute(
    native: &jrun_native::NativeRuntime,
    plan: &Plan,
    progress: &mut Progress,
    ssh_port: u16,
    lock: &mut StateLock,
) -> Outcome {
    let rt: &dyn Runtime = native;
    let mut outcome = Outcome::default();
    let mut error: Option<String> = None;
    let save = |lock: &mut StateLock| lock.save().into_diagnostic();

    for removal in &plan.removals {
        progress.step(removal.name.as_str(), Step::Remove.as_str());
        if let Err(e) = rt.remove_jail(&removal.name) {
            error = Some(e.to_string());
            progress.done(removal.name.as_str(), "removal failed");
            break;
        }
        lock.state.forget_jail(&removal.name);
        if let Err(e) = save(lock) {
            error = Some(format!("{e:?}"));
            break;
        }
        progress.done(removal.name.as_str(), "removed");
        outcome.removed.push(removal.name.to_string());
    }

    let mut deployed_now = Vec::new();
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
        for jp in &plan.jails {
            let name = jp.name().as_str();
            if jp.actions.is_empty() {
                outcome.unchanged.push(name.to_string());
                continue;
            }
            let net = JailNetwork {
                name: jp.name().clone(),
                ip: jp.ip,
                redirects: jp.redirects.clone(),
                firewall: jp.firewall.clone(),
            };
            // Only a jail this run builds is undone on failure; one that was already
            // running stays as it was (recorded not deployed, so the next up retries it).
            let fresh = !native.jail_built(jp.name(), jp.ip);
            // The runtime undoes a fresh jail's failed network itself (and says so in its
            // error when that fails too); a failed workload is undone here.
            let mut undo_error = None;
            match rt
                .deploy_jail(&net, &mut |j, step| {
                    progress.step(j.as_str(), step.as_str())
                })
                .and_then(|()| {
                    // Mounts, setup steps and services.
                    native
                        .deploy_workload(jp, &mut |what| progress.step(name, what))
                        .inspect_err(|_| {
                            if fresh {
                                undo_error = rt.remove_jail(jp.name()).err();
                            }
                        })
                }) {
                Ok(()) => deployed_now.push(jp),
                Err(e) => {
                    progress.done(name, "failed");
                    let what = match undo_error {
                        Some(undo) => format!(
                            "rolling back jail `{name}` failed too ({undo}); `jrun down {name}` clears what is left, or"
                        ),
                        None if fresh && native.jail_namespace_exists(jp.name()) => format!(
                            "jail `{name}` was not fully rolled back (its namespace is still there); `jrun down {name}` clears it, or"
                        ),
                        None if fresh => "the jail was rolled back and".to_string(),
                        None => "the jail was left running as it was and".to_string(),
                    };
                    error = Some(format!("{e}; {what} the next `jrun up` retries it"));
                    break;
                }
            }
        }
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

/// The vm runtime applies the whole plan in one script; jails are recorded deployed
/// only when it succeeded.
fn execute_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    plan: &Plan,
    args: &Args,
    home: &std::path::Path,
    lock: &mut StateLock,
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
    let json = args.json;
    let applied = vm.up(
        plan,
        args.provision,
        &jrun_mesh::KeyStore::open(home),
        &mut |event| {
            if let jrun_vm::runtime::VmEvent::Restarting(why) = event {
                if !json {
                    eprintln!("restarting the VM: {why}");
                }
            }
        },
    );
    match applied {
        Ok(()) => {
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

fn print_outcome(outcome: &Outcome, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(outcome).expect("plain data serialises")
        );
        return;
    }
    for r in &outcome.revived {
        println!("{r:<20} restarted (it had failed)");
    }
    if !outcome.changed && outcome.error.is_none() {
        println!(
            "Nothing to change: {} jail(s) already as described.",
            outcome.unchanged.len()
        );
        return;
    }
    for d in &outcome.deployed {
        println!("{:<20} up  {}  ({})", d.name, d.ip, d.reasons.join(", "));
    }
    for r in &outcome.removed {
        println!("{r:<20} removed");
    }
    if !outcome.unchanged.is_empty() {
        println!("{} jail(s) unchanged.", outcome.unchanged.len());
    }
}

/// The reason's tag (`new_jail`, `forward_changed`…), as `jrun plan --json` names it.
fn reason_word(reason: &jrun_core::plan::Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("why").and_then(|w| w.as_str()).map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::state::JailState;

    fn setup(src: &str, recorded: &[(&str, [u8; 4])]) -> (config::Config, State) {
        let config = config::load_str(std::path::Path::new("t.ucl"), src, 2222)
            .unwrap()
            .config;
        let mut state = State::default();
        for (name, ip) in recorded {
            let jail = config.jail(name).unwrap();
            let ip = std::net::Ipv4Addr::from(*ip);
            state
                .jails
                .insert(jail.name.clone(), JailState::from_jail(jail, ip, true));
        }
        (config, state)
    }

    fn probes(src: &str, recorded: &[(&str, [u8; 4])]) -> bool {
        let (config, state) = setup(src, recorded);
        let options = Options {
            only: Vec::new(),
            provision: false,
            ssh_port: 2222,
        };
        needs_probe(&config, &state, &options)
    }

    #[test]
    fn the_bridge_is_probed_for_new_addresses_static_or_not() {
        let a10 = ("a", [10, 17, 89, 10]);
        // Everything recorded where the config wants it: no probe.
        assert!(!probes("jail \"a\" { }\n", &[a10]));
        assert!(!probes("jail \"a\" { ip = \"10.17.89.10\"; }\n", &[a10]));
        // A new jail from the pool.
        assert!(probes("jail \"a\" { }\njail \"b\" { }\n", &[a10]));
        // A static address nobody in state holds: new jail, or a changed one.
        assert!(probes(
            "jail \"a\" { }\njail \"s\" { ip = \"10.17.89.60\"; }\n",
            &[a10]
        ));
        assert!(probes("jail \"a\" { ip = \"10.17.89.60\"; }\n", &[a10]));
    }
}
