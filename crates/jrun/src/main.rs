//! `jrun`: parse the command line, set up logging, dispatch to one command.

mod cli;
mod commands;
mod pairing;
mod playbooks;
mod progress;
mod runtimes;
mod time_fmt;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    if let Some(rt) = cli.runtime {
        // Before any thread exists; every command reads the runtime from Settings.
        std::env::set_var(
            "JRUN_RUNTIME",
            match rt {
                cli::RuntimeArg::Vm => "vm",
                cli::RuntimeArg::Native => "native",
            },
        );
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            if report.downcast_ref::<runtimes::Unavailable>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr so that stdout stays for results; `-v` raises the level, `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
