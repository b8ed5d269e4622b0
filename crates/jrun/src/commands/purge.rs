//! `jrun purge`: `stop`, then delete the instance's state, runtime files and logs (after a
//! confirmation; `-y` skips it). Yggdrasil keys are kept, so a new deploy keeps addresses.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use jrun_core::state::{LockWait, StateStore};
use miette::{miette, IntoDiagnostic};

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    let home = &settings.home;
    if !args.yes
        && !confirm(&format!(
            "Delete the instance in {} (state, logs; keys are kept)?",
            home.display()
        ))?
    {
        eprintln!("jrun: nothing deleted.");
        return Ok(ExitCode::from(1));
    }
    // Held throughout; `state.lock` itself is never deleted, or a process waiting on it
    // would lock a deleted file while the next one locks a new one.
    let lock = StateStore::new(home).lock(LockWait::No).into_diagnostic()?;
    rt.stop().into_diagnostic()?;
    selected.purge()?;
    for path in [
        lock.path().to_path_buf(),
        home.join("logs"),
        home.join("run"),
    ] {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(miette!("cannot delete {}: {e}", path.display())),
        }
    }
    drop(lock);
    println!("jrun: instance purged ({}).", home.display());
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; without one, refuses (use `-y`).
pub fn confirm(question: &str) -> miette::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            help = "pass -y to confirm without a prompt",
            "{question} — no terminal to confirm on"
        ));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().into_diagnostic()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .into_diagnostic()?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
