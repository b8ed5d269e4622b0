//! `jrun start`: bring the instance up (native: the VM namespace, resolver, VM node and
//! supervisor). A running instance is left alone.

use std::path::PathBuf;
use std::process::ExitCode;

use jrun_core::runtime::{Runtime, StartOutcome};
use jrun_core::state::{LockWait, StateStore};
use miette::IntoDiagnostic;

use crate::runtimes;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// No window; the VM runs in the background.
    Headless,
    /// Open a QEMU window with the VM's console.
    Graphic,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A config file whose `base { }` block sets up the VM itself.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Run the base setup steps again even if they ran before.
    #[arg(long)]
    pub provision: bool,
    /// How the VM is shown (vm runtime).
    #[arg(long, value_enum, default_value = "headless")]
    pub mode: Mode,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let rt = runtimes::native(&settings, "start")?;
    // Held until the instance is up, so `stop`/`purge` cannot tear it down half-built.
    let _lock = StateStore::new(&settings.home)
        .lock(LockWait::No)
        .into_diagnostic()?;
    if args.base.is_some() {
        eprintln!("note: --base (base setup) is not supported by the native runtime yet; ignored");
    }
    match rt.start().into_diagnostic()? {
        StartOutcome::AlreadyRunning => {
            println!(
                "jrun: the instance is already running ({}).",
                rt.layout().vm_ns()
            );
        }
        StartOutcome::Started => {
            println!(
                "jrun: instance started (namespace {}); deploy jails with `jrun up <config>`.",
                rt.layout().vm_ns()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
