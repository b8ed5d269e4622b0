//! `jrun logs <jail> [exec] [-f] [-n N]`: the output of a jail's services (`exec`), the last
//! lines of each, or one followed as it grows.

use std::process::ExitCode;

use jrun_core::config::JailName;
use jrun_core::state::StateStore;
use miette::{miette, IntoDiagnostic};

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jail whose services to show.
    pub jail: String,
    /// Only this service (`exec` item); all of the jail's when omitted.
    pub exec: Option<String>,
    /// Keep printing what the service writes (Ctrl-C stops); needs one service.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many of the last lines to print.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    pub lines: usize,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let state = StateStore::new(&settings.home).read().into_diagnostic()?;
    let name = JailName::new(args.jail.as_str()).into_diagnostic()?;
    let jail = state.jails.get(&name).ok_or_else(|| {
        miette!(
            help = "`jrun status` lists the jails",
            "there is no jail named {:?}",
            args.jail
        )
    })?;
    let execs: Vec<&str> = match &args.exec {
        Some(e) => {
            if !jail.execs.iter().any(|x| &x.name == e) {
                let known: Vec<&str> = jail.execs.iter().map(|x| x.name.as_str()).collect();
                return Err(miette!(
                    help = format!("jail `{name}` runs: {}", known.join(", ")),
                    "jail `{name}` has no service named {e:?}"
                ));
            }
            vec![e.as_str()]
        }
        None => jail.execs.iter().map(|x| x.name.as_str()).collect(),
    };
    if execs.is_empty() {
        println!("jrun: jail `{name}` runs no services.");
        return Ok(ExitCode::SUCCESS);
    }
    if args.follow && execs.len() != 1 {
        return Err(miette!(
            help = format!("name one: jrun logs {name} <exec> -f"),
            "-f follows one service, and jail `{name}` has {}",
            execs.len()
        ));
    }
    let selected = runtimes::select(&settings)?;
    let code = selected.show_logs(&settings, jail, &execs, args.lines, args.follow)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
