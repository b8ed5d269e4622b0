use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Folder to write the files into (printed to stdout when omitted).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("render")
}
