use std::process::ExitCode;

/// Without arguments: create a pairing, print its code and wait for the peer.
/// With a code: join the peer's pairing.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A code from the peer's `jrun pair` (e.g. 81-zephyr-night-climb).
    #[arg(conflicts_with_all = ["list", "drop"])]
    pub code: Option<String>,
    /// List the remote jails of every pairing.
    #[arg(long, conflicts_with = "drop")]
    pub list: bool,
    /// Revoke a pairing: its firewall allowances and DNS names.
    #[arg(long, value_name = "CODE")]
    pub drop: Option<String>,
    /// How long to wait for the peer to join.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub timeout: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_implemented("pair")
}
