//! `jrun start`: bring the instance up — the VM (its image downloaded and prepared the first
//! time, then booted, then reachable over SSH), or natively the VM namespace, resolver, VM
//! node and supervisor. A running instance is left alone.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::IntoDiagnostic;

use crate::runtimes::{self, DisplayMode, StartOptions};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// No window; the VM runs in the background.
    Headless,
    /// Open a QEMU window with the VM's console.
    Graphic,
    /// Attach this terminal to the VM's serial console (Ctrl-] leaves it; the VM runs on).
    Tty,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A config file whose `base { }` block sets up the VM itself (vm runtime).
    #[arg(short = 'b', long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Run the base setup steps again even if they ran before.
    #[arg(long)]
    pub provision: bool,
    /// How the VM is shown (vm runtime).
    #[arg(short = 'm', long, value_enum, default_value = "headless")]
    pub mode: Mode,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let display = match args.mode {
        Mode::Headless => DisplayMode::Headless,
        Mode::Graphic => DisplayMode::Graphic,
        Mode::Tty => DisplayMode::Tty,
    };
    let selected = runtimes::select_with(&settings, display)?;
    let opts = StartOptions {
        base: args.base,
        provision: args.provision,
    };
    let (_, said) = selected.start(&settings, &opts)?;
    // A pairing change a crash interrupted is finished now (its journal, `mesh_pending`).
    let store = jrun_core::state::StateStore::new(&settings.home);
    let mut lock = store
        .lock(jrun_core::state::LockWait::Yes)
        .into_diagnostic()?;
    if lock.state.mesh_pending {
        crate::pairing::reconcile(selected.runtime(), &mut lock.state).into_diagnostic()?;
        lock.save().into_diagnostic()?;
        eprintln!(
            "jrun: finished an interrupted pairing change: the mesh matches `jrun pair --list`"
        );
    }
    drop(lock);
    println!("jrun: {said}");
    Ok(ExitCode::SUCCESS)
}
