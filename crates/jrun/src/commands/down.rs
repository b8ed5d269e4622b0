//! `jrun down [name…]`: remove jails and everything they had (forwards, DNS records,
//! namespace, veth, rules); their keys stay, so a redeploy keeps its mesh address.

use std::process::ExitCode;

use jrun_core::config::JailName;
use jrun_core::state::{LockWait, StateStore};
use miette::{miette, IntoDiagnostic};

use crate::runtimes;

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
    let backend = runtimes::select(&settings)?;
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
    backend.remove(&settings, &mut lock, &names)?;
    for name in &names {
        println!("{name:<20} removed");
    }
    Ok(ExitCode::SUCCESS)
}
