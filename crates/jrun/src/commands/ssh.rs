use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jail to open a shell in; the VM itself when omitted.
    pub jail: Option<String>,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("ssh")
}
