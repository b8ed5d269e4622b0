use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Only these jails (and what they depend on).
    pub names: Vec<String>,
    /// Plan as if every jail were redeployed.
    #[arg(long)]
    pub provision: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("plan")
}
