//! `jrun up <config> [name…]`: plan, then execute the plan through the runtime. A jail is
//! recorded deployed only after its network, the resolver's records and the forwards are
//! in place; a failure stops the run, undoes that jail's partial work and names the step.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use jrun_core::config::{self, JailName};
use jrun_core::plan::{self, Options, Probe};
use jrun_core::state::{LockWait, State, StateStore};
use miette::{miette, IntoDiagnostic};

use crate::progress::Progress;
use crate::runtimes::{self, ApplyOptions, Outcome};

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
    /// How long to wait for the services this run started or restarted to be ready
    /// (healthy by their check; without one, alive and accepting on their jail's TCP
    /// forwards), e.g. `90s`, `2m`. Past it, `up` fails naming the service.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_wait)]
    pub wait_timeout: Duration,
    /// Return once the jails are up, without waiting for their services to be ready.
    #[arg(long)]
    pub no_wait: bool,
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    jrun_core::config::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (write e.g. 60s, 90, 2m)"))
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    runtimes::kill_steps_on_interrupt();
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    selected.require_privileges("jrun up")?;
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
        file: Some(super::config_file(&args.config)?),
    };

    let store = StateStore::new(&settings.home);
    let mut lock = store.lock(LockWait::No).into_diagnostic()?;
    // What the state file holds; reconciling below may change the copy in memory.
    let mut on_disk = lock.state.clone();
    selected.reconcile(&mut lock.state)?;
    if lock.state.mesh_pending {
        // A pairing change a crash interrupted: finish it before planning.
        crate::pairing::reconcile(rt, &mut lock.state).into_diagnostic()?;
        lock.save().into_diagnostic()?;
        on_disk = lock.state.clone();
        eprintln!(
            "jrun: finished an interrupted pairing change: the mesh matches `jrun pair --list`"
        );
    }
    adopt_unrecorded(rt, &config, &options, &mut lock.state);
    let probe = if needs_probe(&config, &lock.state, &options) {
        Probe {
            in_use: rt.probe_in_use().into_diagnostic()?,
            missing_files: lock.state.missing_files(),
        }
    } else {
        Probe {
            missing_files: lock.state.missing_files(),
            ..Probe::default()
        }
    };
    let plan = plan::plan(&config, &lock.state, &probe, &options).into_diagnostic()?;
    // What cannot work is refused before anything changes.
    selected.check_plan(&plan)?;
    // Remote steps are fetched and checked before anything changes.
    crate::playbooks::prepare_for_plan(&config, &plan, &settings, &mut |line| eprintln!("{line}"))?;

    let mut progress = Progress::new(args.json);
    let since_ms = jrun_core::services::now_ms();
    let opts = ApplyOptions {
        provision: args.provision,
        wait: (!args.no_wait).then_some(args.wait_timeout),
        ssh_port: settings.ssh_port,
    };
    // `status` shows this run's jails as deploying while it works. A plan that changes no
    // jail needs no marker: every jail in it is recorded deployed (one that is not is
    // planned again), so `status` would show none as deploying, and a crash leaves
    // nothing half-made to flag. Its run then writes the state only if it changed (each
    // save is two fsyncs, most of a no-op `up`).
    let changes_nothing =
        plan.removals.is_empty() && plan.jails.iter().all(|j| j.actions.is_empty());
    if !changes_nothing {
        lock.state.deploying = Some(std::process::id());
        lock.save().into_diagnostic()?;
    }
    let mut outcome = selected.apply(&settings, &plan, &opts, &mut lock, &mut progress);
    lock.state.deploying = None;
    if !changes_nothing || lock.state != on_disk {
        if let Err(e) = lock.save() {
            outcome.error.get_or_insert(e.to_string());
        }
    }
    // Everything is recorded: other commands need not wait for the services.
    drop(lock);
    // A run that deployed, removed and revived nothing started no service: nothing to
    // wait for (and no round trip to ask).
    let started_some = outcome.changed || !outcome.revived.is_empty();
    if outcome.error.is_none() && !args.no_wait && started_some {
        selected.wait_ready(
            &plan,
            since_ms,
            args.wait_timeout,
            &mut outcome,
            &mut progress,
        );
    }
    print_outcome(&outcome, args.json);
    match outcome.error {
        Some(e) => Err(miette!("{e}")),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// A jail of this file that the state does not record (a lost or replaced state file) but
/// whose network still exists is adopted at the address it holds, as an interrupted
/// deployment: `up` rebuilds it there instead of giving it a new address (and leaving the
/// old network behind).
fn adopt_unrecorded(
    rt: &dyn jrun_core::runtime::Runtime,
    config: &config::Config,
    options: &Options,
    state: &mut State,
) {
    // Only a jail the state lacks is looked for (on the vm runtime, a look costs an SSH
    // round trip).
    if config
        .jails
        .iter()
        .all(|j| state.jails.contains_key(&j.name))
    {
        return;
    }
    let Ok(present) = rt.jails_present() else {
        return;
    };
    for jail in &config.jails {
        if state.jails.contains_key(&jail.name) || !present.contains(&jail.name) {
            continue;
        }
        let Some(ip) = rt.observe_jail(&jail.name).ok().and_then(|o| o.ip) else {
            continue;
        };
        let held = state.jails.values().any(|j| j.ip == ip);
        if held || !jrun_core::net::is_assignable(ip) {
            continue;
        }
        eprintln!(
            "jrun: jail {} runs at {ip} but was not recorded; adopting it there",
            jail.name
        );
        let mut record = jrun_core::state::JailState::from_jail(jail, ip, false);
        record.file = options.file.clone();
        state.jails.insert(jail.name.clone(), record);
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
    for s in outcome.services.iter().filter(|s| s.ready) {
        let key = format!("{}/{}", s.jail, s.exec);
        println!("{key:<20} ready in {:.1}s", s.waited_ms as f64 / 1000.0);
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
            file: None,
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
