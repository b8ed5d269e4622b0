use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Only these jails (and what they depend on); all of the file's jails when none is named.
    pub names: Vec<String>,
    /// Redeploy and run setup steps again even where nothing changed.
    #[arg(long)]
    pub provision: bool,
    /// Print only the result, as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("up")
}
