//! `jrun cmd <jail> <cmd…>`: run a command inside a jail's network namespace, with its
//! resolver; its exit code is passed through.

use std::process::ExitCode;

use jrun_core::config::JailName;
use miette::IntoDiagnostic;

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jail to run in.
    pub jail: String,
    /// The command and its arguments (passed as argv, not through a shell).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    let jail = JailName::new(args.jail.as_str()).into_diagnostic()?;
    let code = rt.exec_in_jail(&jail, &args.command).into_diagnostic()?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
