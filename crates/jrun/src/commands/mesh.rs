use std::path::PathBuf;
use std::process::ExitCode;

use jrun_mesh::Identity;
use miette::IntoDiagnostic;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the Yggdrasil address of a PEM private key file.
    Address {
        /// A PEM `PRIVATE KEY` (PKCS#8 ed25519) file.
        keyfile: PathBuf,
    },
    /// Write a new ed25519 key as PEM (mode 0600) and print its address; refuses to overwrite.
    Keygen {
        /// Where to write the key.
        file: PathBuf,
    },
}

pub fn run(cmd: Command) -> miette::Result<ExitCode> {
    let identity = match cmd {
        Command::Address { keyfile } => Identity::load(&keyfile).into_diagnostic()?,
        Command::Keygen { file } => {
            let identity = Identity::generate().into_diagnostic()?;
            identity.write_new(&file).into_diagnostic()?;
            identity
        }
    };
    println!("{}", identity.address());
    Ok(ExitCode::SUCCESS)
}
