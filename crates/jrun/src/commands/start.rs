//! `jrun start`: bring the instance up (native: the VM namespace, resolver, VM node and
//! supervisor). A running instance is left alone.

use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(target_os = "linux")]
use jrun_core::runtime::{Runtime, StartOutcome};
#[cfg(target_os = "linux")]
use jrun_core::state::{LockWait, StateStore};
#[cfg(target_os = "linux")]
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
    match runtimes::select(&settings)? {
        #[cfg(target_os = "linux")]
        runtimes::Selected::Native(rt) => start_native(&rt, &settings, &args),
        runtimes::Selected::Vm(_) => Err(miette::Report::new(runtimes::Unavailable {
            what: "`jrun start` is not wired to the vm runtime yet".into(),
            help: "run it with JRUN_RUNTIME=native (or --runtime native) on Linux, as root".into(),
        })),
    }
}

#[cfg(target_os = "linux")]
fn start_native(
    rt: &jrun_native::NativeRuntime,
    settings: &jrun_core::settings::Settings,
    args: &Args,
) -> miette::Result<ExitCode> {
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
