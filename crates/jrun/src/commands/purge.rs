use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("purge")
}
