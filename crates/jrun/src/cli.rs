use clap::{Parser, Subcommand};

use crate::commands;

/// Describe services in a UCL file; jrun runs each in its own jail with its own network
/// stack, a DNS name (`<jail>.local.jrun`), a default-deny firewall and port forwards from
/// the host — and pairs jails across machines over an encrypted Yggdrasil mesh.
///
/// Typical use:
///   jrun start                 # boot the VM (or the native instance)
///   jrun up stack.ucl          # bring every jail of stack.ucl to life
///   jrun status                # what runs where
///   jrun pair                  # share your jails with a peer
///
/// Settings come from JRUN_* environment variables (and ./.env): JRUN_HOME, JRUN_RUNTIME
/// (vm|native), JRUN_SSH_PORT, JRUN_QEMU_MEMORY, JRUN_QEMU_CPUS, JRUN_QEMU_DISK_SIZE,
/// JRUN_BSD_VERSION, JRUN_MESH_NETWORK, JRUN_RELAY, JRUN_RELAY_PEER.
#[derive(Debug, Parser)]
#[command(name = "jrun", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Which runtime to drive (overrides JRUN_RUNTIME).
    #[arg(long, global = true, value_enum)]
    pub runtime: Option<RuntimeArg>,

    #[command(subcommand)]
    pub command: Command,
}

/// `--runtime`: where jails live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeArg {
    /// FreeBSD in QEMU.
    Vm,
    /// Linux network namespaces, as root.
    Native,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the VM (vm runtime) or the instance's namespaces and supervisor (native).
    Start(commands::start::Args),
    /// Stop the instance gracefully; jails and their state are kept for the next start.
    Stop(commands::stop::Args),
    /// Stop and delete everything of this instance: disks, state, logs (keys are kept).
    Purge(commands::purge::Args),
    /// Bring jails to what a config file describes: create, change, remove.
    Up(commands::up::Args),
    /// Remove jails (all of them when none is named) and everything they had.
    Down(commands::down::Args),
    /// Show the instance and its jails: state, IPs, forwards, services, mesh addresses.
    Status(commands::status::Args),
    /// Open a shell in the VM, or in a jail when one is named.
    Ssh(commands::ssh::Args),
    /// Run a command inside a jail; its exit code is passed through.
    Cmd(commands::cmd::Args),
    /// Show a jail's service logs: the last lines, or one followed as it grows (-f).
    Logs(commands::logs::Args),
    /// ZFS snapshots of a jail: create, list, roll back to, delete (vm runtime).
    Snapshot(commands::snapshot::Args),
    /// Pair with another jrun instance through the relay, list or drop pairings.
    Pair(commands::pair::Args),
    /// Run a pairing relay (HTTP API and, optionally, its Yggdrasil node).
    Relay(Box<commands::relay::Args>),
    /// Check a config file and summarise it, without touching anything.
    Validate(commands::validate::Args),
    /// Show what `jrun up` would do, and why, without touching anything.
    Plan(commands::plan::Args),
    /// Mesh identity tools: derive a Yggdrasil address, generate a key.
    #[command(subcommand)]
    Mesh(commands::mesh::Command),
    /// Write every file the FreeBSD guest would receive for a config (vm runtime).
    Render(commands::render::Args),
    /// The native instance's supervisor daemon (started by `jrun start`).
    #[command(hide = true)]
    Supervise(commands::supervise::Args),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
