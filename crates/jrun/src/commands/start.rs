use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// No window; the VM runs in the background.
    Headless,
    /// Open a QEMU window with the VM's console.
    Graphic,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A config file whose `base { }` block sets up the VM itself.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Run the base setup steps again even if they ran before.
    #[arg(long)]
    pub provision: bool,
    /// How the VM is shown (vm runtime).
    #[arg(long, value_enum, default_value = "headless")]
    pub mode: Mode,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("start")
}
