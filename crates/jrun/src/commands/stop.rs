//! `jrun stop`: stop every child, remove every namespace, veth, nft table and file the
//! instance created. Jails stay recorded; the next `up` after `start` rebuilds them at
//! their addresses.

use std::process::ExitCode;

use jrun_core::state::{LockWait, StateStore};
use miette::IntoDiagnostic;

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted as Jailrun's `stop -y` is: `jrun stop` keeps jails and state, and never asks.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    // Held from before the teardown to the end, so a concurrent `up` or `pair` never has
    // its namespaces deleted under it.
    let store = StateStore::new(&settings.home);
    // `stop` tears down by name: it works whatever the state file holds. One it cannot read
    // is left as it is (and named), and the instance stops anyway.
    let lock = match store.lock(LockWait::No) {
        Ok(lock) => Ok(lock),
        Err(e @ jrun_core::state::StateError::Locked { .. }) => return Err(e).into_diagnostic(),
        Err(e) => {
            eprintln!("jrun: {e}; stopping the instance anyway, the state file is left as it is");
            Err(store.lock_only(LockWait::No).into_diagnostic()?)
        }
    };
    let was_running = rt.instance().into_diagnostic()?.running;
    rt.stop().into_diagnostic()?;
    // The wiring is gone with the instance.
    if let Ok(mut lock) = lock {
        if lock.state.vm.take().is_some() {
            lock.save().into_diagnostic()?;
        }
    }
    if was_running {
        println!("jrun: instance stopped; nothing of it is left on this machine.");
    } else {
        println!("jrun: the instance was not running; cleaned up anything left behind.");
    }
    Ok(ExitCode::SUCCESS)
}
