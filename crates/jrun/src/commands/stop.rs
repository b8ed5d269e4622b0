use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("stop")
}
