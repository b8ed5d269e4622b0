//! `jrun supervise` (hidden): the instance's supervisor daemon, started by `jrun start`.

use std::process::ExitCode;

use jrun_native::names::Layout;
use miette::miette;

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    jrun_native::supervisor::run(&Layout::new(&settings.home)).map_err(|e| miette!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
