//! `jrun ssh [jail]`: a shell in a jail (native: its namespace, with its resolver), or in
//! the instance itself when no jail is named.

use std::process::ExitCode;

use jrun_core::config::JailName;
use miette::IntoDiagnostic;

use crate::runtimes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jail to open a shell in; the VM itself when omitted.
    pub jail: Option<String>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    let rt = selected.runtime();
    let code = match args.jail {
        Some(j) => {
            let jail = JailName::new(j.as_str()).into_diagnostic()?;
            rt.exec_in_jail(&jail, &rt.shell(Some(&jail)))
                .into_diagnostic()?
        }
        None => rt.exec_in_instance(&rt.shell(None)).into_diagnostic()?,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
