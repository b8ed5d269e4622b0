//! `jrun down [name…]`: remove jails and everything they had (forwards, DNS records,
//! namespace, veth, rules); their keys stay, so a redeploy keeps its mesh address.

use std::process::ExitCode;

use jrun_core::config::JailName;
use jrun_core::runtime::{Runtime, Step};
use jrun_core::state::{LockWait, StateStore};
use miette::{miette, IntoDiagnostic};

use crate::progress::Progress;
use crate::{runtimes, wiring};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jails to remove; all of them (after a confirmation) when none is named.
    pub names: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let mut lock = StateStore::new(&settings.home)
        .lock(LockWait::No)
        .into_diagnostic()?;
    let names: Vec<JailName> = if args.names.is_empty() {
        if lock.state.jails.is_empty() {
            println!("jrun: no jails to remove.");
            return Ok(ExitCode::SUCCESS);
        }
        if !args.yes
            && !super::purge::confirm(&format!("Remove all {} jail(s)?", lock.state.jails.len()))?
        {
            eprintln!("jrun: nothing removed.");
            return Ok(ExitCode::from(1));
        }
        lock.state.jails.keys().cloned().collect()
    } else {
        args.names
            .iter()
            .map(|n| {
                let name = JailName::new(n.as_str()).into_diagnostic()?;
                if lock.state.jails.contains_key(&name) {
                    Ok(name)
                } else {
                    Err(miette!(
                        help = "`jrun status` lists the jails",
                        "there is no jail named {n:?}"
                    ))
                }
            })
            .collect::<miette::Result<_>>()?
    };
    let rt = match &selected {
        runtimes::Selected::Native(native) => native,
        runtimes::Selected::Vm(vm) => return down_vm(vm, &settings, &mut lock, &names),
    };
    let running = rt.instance().into_diagnostic()?.running;
    let mut progress = Progress::new(false);
    for name in &names {
        progress.step(name.as_str(), Step::Remove.as_str());
        let removed = rt.remove_jail(name);
        if removed.is_err() {
            // Keep what was removed so far on record before failing.
            lock.save().into_diagnostic()?;
        }
        removed.into_diagnostic()?;
        lock.state.forget_jail(name);
        progress.done(name.as_str(), "removed");
    }
    lock.save().into_diagnostic()?;
    if running {
        rt.set_records(&wiring::records(&lock.state))
            .into_diagnostic()?;
        let redirects = wiring::redirects(&lock.state, settings.ssh_port);
        rt.set_forwards(&redirects).into_diagnostic()?;
        if let Some(vm) = lock.state.vm.as_mut() {
            vm.redirects = redirects;
        }
        lock.save().into_diagnostic()?;
    }
    for name in &names {
        println!("{name:<20} removed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The vm runtime applies whole plans: plan the state without the named jails (every
/// other jail exactly as recorded), so the plan removes those and changes nothing else.
fn down_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    settings: &jrun_core::settings::Settings,
    lock: &mut jrun_core::state::StateLock,
    names: &[JailName],
) -> miette::Result<ExitCode> {
    let plan = plan_without(&lock.state, names, settings).into_diagnostic()?;
    vm.up(
        &plan,
        false,
        &jrun_mesh::KeyStore::open(&settings.home),
        &mut |_| {},
    )
    .into_diagnostic()?;
    plan.apply_to(&mut lock.state);
    lock.save().into_diagnostic()?;
    for name in names {
        println!("{name:<20} removed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan that removes `names` and keeps every other recorded jail as it is.
fn plan_without(
    state: &jrun_core::state::State,
    names: &[JailName],
    settings: &jrun_core::settings::Settings,
) -> Result<jrun_core::plan::Plan, jrun_core::plan::PlanError> {
    use jrun_core::config::{Config, Jail};
    use jrun_core::plan::{self, Options, Probe};
    let keep = state
        .jails
        .values()
        .filter(|j| !names.contains(&j.name))
        .map(|j| Jail {
            name: j.name.clone(),
            release: j.release.clone(),
            // No static address: the planner keeps the recorded one.
            ip: None,
            base: j.base.clone(),
            depends: j.depends.clone(),
            mounts: j.mounts.clone(),
            forwards: j.forwards.clone(),
            execs: j.execs.clone(),
            setup: j.setup.clone(),
        })
        .collect();
    let config = Config {
        path: settings.home.join("state.json"),
        base: state.base.clone(),
        jails: keep,
    };
    let options = Options {
        ssh_port: settings.ssh_port,
        ..Options::default()
    };
    plan::plan(&config, state, &Probe::default(), &options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::{Forward, Jail, Proto};
    use jrun_core::state::{JailState, State};

    #[test]
    fn vm_down_plans_only_the_removal() {
        let jail = |name: &str, last: u8| {
            let j = Jail {
                name: JailName::new(name).unwrap(),
                release: None,
                ip: None,
                base: None,
                depends: vec![],
                mounts: vec![],
                forwards: vec![Forward {
                    name: "web".into(),
                    proto: Proto::Tcp,
                    host: 8000 + u16::from(last),
                    jail: 80,
                }],
                execs: vec![],
                setup: vec![],
            };
            JailState::from_jail(&j, std::net::Ipv4Addr::new(10, 17, 89, last), true)
        };
        let mut state = State::default();
        for j in [jail("web", 10), jail("db", 11)] {
            state.jails.insert(j.name.clone(), j);
        }
        let settings = jrun_core::settings::Settings::from_vars(
            &[("HOME".to_string(), "/h".to_string())]
                .into_iter()
                .collect(),
        )
        .unwrap();
        let plan = plan_without(&state, &[JailName::new("db").unwrap()], &settings).unwrap();
        assert_eq!(plan.removals.len(), 1);
        assert_eq!(plan.removals[0].name.as_str(), "db");
        let web = plan.jail("web").unwrap();
        assert!(web.actions.is_empty(), "{:?}", web.actions);
        assert_eq!(web.ip, std::net::Ipv4Addr::new(10, 17, 89, 10));
    }
}
