use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Show {
    /// Addresses: jail IP and mesh address.
    Ip,
    /// Services: state, pid, restarts, last health check.
    Services,
    /// Everything.
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show one jail in full.
    pub jail: Option<String>,
    /// Extra columns to show.
    #[arg(long, value_enum)]
    pub show: Option<Show>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("status")
}
