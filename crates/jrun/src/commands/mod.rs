//! One file per subcommand. Each exposes `Args` (clap) and `run`.

pub mod cmd;
pub mod down;
pub mod logs;
pub mod mesh;
pub mod pair;
pub mod plan;
pub mod purge;
pub mod relay;
pub mod render;
pub mod snapshot;
pub mod ssh;
pub mod start;
pub mod status;
pub mod stop;
pub mod supervise;
pub mod up;
pub mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> miette::Result<ExitCode> {
    match cli.command {
        Command::Start(a) => start::run(a),
        Command::Stop(a) => stop::run(a),
        Command::Purge(a) => purge::run(a),
        Command::Up(a) => up::run(a),
        Command::Down(a) => down::run(a),
        Command::Status(a) => status::run(a),
        Command::Ssh(a) => ssh::run(a),
        Command::Cmd(a) => cmd::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Pair(a) => pair::run(a),
        Command::Relay(a) => relay::run(*a),
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Mesh(c) => mesh::run(c),
        Command::Render(a) => render::run(a),
        Command::Supervise(a) => supervise::run(a),
    }
}

/// The config file as state records it: canonical (absolute, symlinks resolved), so one
/// file reached by two paths is one file. The file was just read, so it exists.
pub fn config_file(path: &std::path::Path) -> miette::Result<std::path::PathBuf> {
    std::fs::canonicalize(path)
        .map_err(|e| miette::miette!("cannot resolve the path of {}: {e}", path.display()))
}
