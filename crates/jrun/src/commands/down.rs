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
    let rt = runtimes::native(&settings, "down")?;
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
