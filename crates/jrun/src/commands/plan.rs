//! `jrun plan <config> [name…]`: what `jrun up` would do, and why, changing nothing.
//!
//! It reads the state without taking the lock (writes are atomic renames, so it sees a
//! whole state) and plans with an empty probe: addresses taken by things jrun does not
//! manage are only seen by `jrun up`, which probes the running instance.

use std::io::{ErrorKind, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use jrun_core::config::{self, ConfigErrors, JailName};
use jrun_core::plan::{self, Options, Plan, Probe, Summary};
use jrun_core::state::StateStore;
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

/// Width of diagnostics written to a pipe or a file.
const PLAIN_WIDTH: usize = 100;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status:
  0  the plan was printed (\"Nothing to do\" when the state already matches)
  1  the config, the state file or the settings are invalid, or no plan is possible
     (a dependency cycle, a port claimed twice, no free address)")]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Only these jails (and what they depend on); all of the file's jails when none is named.
    pub names: Vec<String>,
    /// Plan as if every jail were redeployed.
    #[arg(long)]
    pub provision: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--json` output: the counts, whether anything would change, and the whole plan.
#[derive(Serialize)]
struct JsonPlan<'a> {
    empty: bool,
    summary: Summary,
    plan: &'a Plan,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = crate::runtimes::settings()?;
    let loaded = match config::load_with_warnings(&args.config, settings.ssh_port) {
        Ok(loaded) => loaded,
        Err(errors) => {
            print_diagnostics(&errors);
            return Ok(ExitCode::FAILURE);
        }
    };
    if !loaded.warnings.is_empty() {
        print_diagnostics(&loaded.warnings);
    }
    let config = loaded.config;
    let only = args
        .names
        .iter()
        .map(|n| {
            let name = JailName::new(n.as_str())
                .map_err(|e| miette!("{n:?} is not a jail name: it {e}"))?;
            match config.jail(name.as_str()) {
                Some(_) => Ok(name),
                None => Err(miette!("{} has no jail named {n}", args.config.display())),
            }
        })
        .collect::<miette::Result<Vec<_>>>()?;
    let mut state = StateStore::new(&settings.home).read().into_diagnostic()?;
    // The same look at the machine `up` takes: a jail recorded deployed whose network is
    // gone (the instance restarted) is planned as `up` will rebuild it, so `plan` never
    // says "Nothing to do" when `up` would act.
    if let Ok(selected) = crate::runtimes::select(&settings) {
        if selected.runtime().instance().is_ok_and(|i| i.running) {
            selected.reconcile(&mut state)?;
        }
    }
    let options = Options {
        only,
        provision: args.provision,
        ssh_port: settings.ssh_port,
        file: Some(super::config_file(&args.config)?),
    };
    let probe = Probe {
        missing_files: state.missing_files(),
        ..Probe::default()
    };
    let plan = plan::plan(&config, &state, &probe, &options)
        .map_err(|e| miette!("cannot plan {}: {e}", args.config.display()))?;
    let text = if args.json {
        let out = JsonPlan {
            empty: plan.is_empty(),
            summary: plan.summary(),
            plan: &plan,
        };
        serde_json::to_string_pretty(&out).into_diagnostic()? + "\n"
    } else {
        plan.render_text()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`jrun plan … | head`) is not an error.
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(miette!("cannot write the plan to stdout: {e}"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Colours on a terminal; plain, fixed-width text otherwise (as `jrun validate`).
fn print_diagnostics(diags: &ConfigErrors) {
    if std::io::stderr().is_terminal() {
        eprintln!("{:?}", miette::Report::new(diags.clone()));
    } else {
        eprint!("{}", diags.render_plain(PLAIN_WIDTH));
    }
}
