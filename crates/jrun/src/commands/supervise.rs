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

pub fn run(args: Args) -> miette::Result<ExitCode> {
    // Whatever the caller's umask: the control socket, run/ and logs/ are root's alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let home = match args.home {
        Some(home) => home,
        None => runtimes::settings()?.home,
    };
    runtimes::trusted_home(&home)?;
    runtimes::supervise(&home)?;
    Ok(ExitCode::SUCCESS)
}
