use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve the HTTP API on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("relay")
}
