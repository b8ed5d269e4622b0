//! `jrun supervise` (hidden): the instance's supervisor daemon, started by `jrun start`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The instance's home (canonical), as `jrun start` passes it; it also marks this
    /// process as that instance's supervisor, so `stop` never signals another one.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> miette::Result<ExitCode> {
    use jrun_native::names::Layout;
    let home = match args.home {
        Some(home) => home,
        None => runtimes::settings()?.home,
    };
    jrun_native::supervisor::run(&Layout::new(&home)).map_err(|e| miette::miette!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The supervisor belongs to the native runtime, which is Linux's alone.
#[cfg(not(target_os = "linux"))]
pub fn run(_args: Args) -> miette::Result<ExitCode> {
    Err(runtimes::native_unavailable())
}
