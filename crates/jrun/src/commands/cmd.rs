use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jail to run in.
    pub jail: String,
    /// The command and its arguments (passed as argv, not through a shell).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("cmd")
}
