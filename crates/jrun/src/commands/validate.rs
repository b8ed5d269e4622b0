use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file to check.
    pub config: PathBuf,
    /// Print the typed config as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("validate")
}
