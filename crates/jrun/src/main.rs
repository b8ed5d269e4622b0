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
    let supervisor_log = match &cli.command {
        cli::Command::Supervise(a) => a.home.as_ref().map(|h| h.join("logs/supervisor.log")),
        _ => None,
    };
    init_logging(cli.verbose, supervisor_log);
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

/// Logs go to stderr so that stdout stays for results; `-v` raises the level, `RUST_LOG`
/// overrides. The supervisor logs to its own rotated file. Either way a log line that cannot
/// be written is dropped: tracing would otherwise fall back to `eprintln!`, which panics —
/// and a supervisor that dies of a full disk takes every service down with it.
fn init_logging(verbose: u8, supervisor_log: Option<std::path::PathBuf>) {
    let default = match verbose {
        0 if supervisor_log.is_some() => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    #[cfg(target_os = "linux")]
    if let Some(log) = supervisor_log.and_then(|p| logging::RotatedLog::open(&p)) {
        builder.with_writer(log).with_ansi(false).init();
        return;
    }
    builder
        .with_writer(|| logging::Lossy(std::io::stderr()))
        // Colours only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

mod logging {
    use std::io::{self, Write};

    /// A writer whose errors are dropped with the text that caused them.
    pub struct Lossy<W>(pub W);

    impl<W: Write> Write for Lossy<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.write_all(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let _ = self.0.flush();
            Ok(())
        }
    }

    /// The supervisor's log: rotated like the services' (`JRUN_LOG_MAX_BYTES`), lossy.
    #[cfg(target_os = "linux")]
    #[derive(Clone)]
    pub struct RotatedLog(
        std::sync::Arc<std::sync::Mutex<jrun_native::supervisor::logfile::RotatingLog>>,
    );

    #[cfg(target_os = "linux")]
    impl RotatedLog {
        pub fn open(path: &std::path::Path) -> Option<Self> {
            let max = std::env::var("JRUN_LOG_MAX_BYTES")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1 << 20);
            let log = jrun_native::supervisor::logfile::RotatingLog::open(path, max).ok()?;
            Some(RotatedLog(std::sync::Arc::new(std::sync::Mutex::new(log))))
        }
    }

    #[cfg(target_os = "linux")]
    impl Write for RotatedLog {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut log) = self.0.lock() {
                let _ = log.write(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[cfg(target_os = "linux")]
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatedLog {
        type Writer = RotatedLog;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
}
