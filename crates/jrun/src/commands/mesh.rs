use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the Yggdrasil address of a PEM private key file.
    Address {
        /// A PEM `PRIVATE KEY` (PKCS#8 ed25519) file.
        keyfile: PathBuf,
    },
    /// Write a new ed25519 key as PEM (mode 0600); refuses to overwrite.
    Keygen {
        /// Where to write the key.
        file: PathBuf,
    },
}

pub fn run(_cmd: Command) -> miette::Result<ExitCode> {
    super::not_implemented("mesh")
}
