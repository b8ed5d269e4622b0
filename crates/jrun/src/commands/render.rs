//! `jrun render <config> [--out DIR]`: every file the FreeBSD guest would receive for this
//! config and the current state, so a user can review what jrun will do to the VM.
//!
//! With `--out`, the files are written under DIR (`vm/…`, `jails/<name>/…`) together with
//! `provision.sh`, the one script `jrun up` sends; key material is written 0600. Without
//! it, the reviewable files are printed, each after a `==> path <==` header; the script
//! and keys are not printed, since the script carries the keys.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jrun_core::config;
use jrun_core::plan::{self, Options, Probe};
use jrun_core::state::StateStore;
use miette::{miette, IntoDiagnostic, WrapErr};

use crate::runtimes::{self, GuestFiles as Rendered};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file describing the jails.
    pub config: PathBuf,
    /// Folder to write the files into (printed to stdout when omitted).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Render as `jrun up --provision` would (every setup step runs again).
    #[arg(long)]
    pub provision: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = crate::runtimes::settings()?;
    let config = match config::load(&args.config, settings.ssh_port) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{}", errors.render_plain(100));
            return Ok(ExitCode::FAILURE);
        }
    };
    let state = StateStore::new(&settings.home).read().into_diagnostic()?;
    let options = Options {
        only: vec![],
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
    crate::playbooks::prepare_for_plan(&config, &plan, &settings, &mut |line| eprintln!("{line}"))?;
    let rendered =
        runtimes::render_guest(&plan, &settings, args.provision).wrap_err_with(|| {
            format!(
                "cannot render the guest files for {}",
                args.config.display()
            )
        })?;
    match &args.out {
        Some(dir) => write_out(dir, &rendered)?,
        None => print(&rendered)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(dir: &Path, r: &Rendered) -> miette::Result<()> {
    let write = |rel: &str, content: &str, secret: bool| -> miette::Result<()> {
        let path = dir.join(rel);
        let parent = path.parent().expect("a file under DIR");
        std::fs::create_dir_all(parent)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot create {}", parent.display()))?;
        let mode = if secret { 0o600 } else { 0o644 };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map(|()| f)
            })
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
        f.write_all(content.as_bytes())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))
    };
    for f in &r.files {
        write(&f.review_path, &f.content, f.secret)?;
    }
    let secret_script = r.files.iter().any(|f| f.secret);
    write("provision.sh", &r.script.text, secret_script)?;
    let steps: String = r
        .script
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {s}\n", i + 1))
        .collect();
    write("provision-steps.txt", &steps, false)?;
    println!("{}", dir.display());
    eprintln!(
        "wrote {} files and provision.sh ({} steps) to {}",
        r.files.len(),
        r.script.steps.len(),
        dir.display()
    );
    Ok(())
}

fn print(r: &Rendered) -> miette::Result<()> {
    let mut out = String::new();
    for f in r.files.iter().filter(|f| !f.secret) {
        out.push_str(&format!(
            "==> {} ({}) <==\n{}\n",
            f.review_path, f.guest_path, f.content
        ));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(miette!("cannot write to stdout: {e}"))
        }
        _ => {
            eprintln!("provision.sh and key files are written only with --out DIR (they hold private keys)");
            Ok(())
        }
    }
}
