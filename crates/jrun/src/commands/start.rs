//! `jrun start`: bring the instance up (native: the VM namespace, resolver, VM node and
//! supervisor). A running instance is left alone.

use std::path::PathBuf;
use std::process::ExitCode;

use jrun_core::config;
use jrun_core::plan::{self, Options, Probe};
use jrun_core::runtime::{Runtime, StartOutcome};
use jrun_core::settings::Settings;
use jrun_core::state::{LockWait, StateStore};
use jrun_mesh::KeyStore;
use jrun_vm::qemu::DisplayMode;
use jrun_vm::runtime::{UpOptions, VmEvent, VmRuntime};
use jrun_vm::ssh::Progress as ScriptProgress;
use miette::IntoDiagnostic;

use crate::progress::Progress;
use crate::runtimes;

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

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let display = match args.mode {
        Mode::Headless => DisplayMode::Headless,
        Mode::Graphic => DisplayMode::Graphic,
    };
    match runtimes::select_with(&settings, display)? {
        #[cfg(target_os = "linux")]
        runtimes::Selected::Native(rt) => start_native(&rt, &settings, &args),
        runtimes::Selected::Vm(vm) => start_vm(&vm, &settings, &args),
    }
}

/// Boots the VM (downloading and preparing its image the first time), waits for its SSH,
/// then, with `--base FILE`, brings the VM to that file's `base { }` block.
fn start_vm(vm: &VmRuntime, settings: &Settings, args: &Args) -> miette::Result<ExitCode> {
    // Held until the VM is up, so `stop`/`purge` cannot tear it down half-built.
    let mut lock = StateStore::new(&settings.home)
        .lock(LockWait::No)
        .into_diagnostic()?;
    let mut progress = Progress::new(false);
    let outcome = vm
        .start_reporting(&mut |e| match e {
            VmEvent::Download(p) => {
                let mb = |b: u64| b / (1024 * 1024);
                let text = match p.total {
                    Some(t) => format!(
                        "downloading the FreeBSD image: {} of {} MB",
                        mb(p.done),
                        mb(t)
                    ),
                    None => format!("downloading the FreeBSD image: {} MB", mb(p.done)),
                };
                progress.step("vm", &text);
            }
            VmEvent::Booting { ssh_port } => {
                progress.step("vm", &format!("booting (SSH on 127.0.0.1:{ssh_port})"))
            }
            VmEvent::WaitingForSsh => progress.step("vm", "waiting for SSH"),
            _ => {}
        })
        .into_diagnostic();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            progress.done("vm", "failed");
            return Err(e);
        }
    };
    progress.done("vm", "running");
    if let Some(file) = &args.base {
        let config = config::load(file, settings.ssh_port).map_err(miette::Report::new)?;
        // The recorded jails as they are, with this file's base: only the VM changes.
        let mut wanted = lock.state.as_config(settings.home.join("state.json"));
        wanted.base = config.base;
        let options = Options {
            ssh_port: settings.ssh_port,
            provision: args.provision,
            ..Options::default()
        };
        let plan =
            plan::plan(&wanted, &lock.state, &Probe::default(), &options).into_diagnostic()?;
        let opts = UpOptions {
            provision: args.provision,
            wait: None,
        };
        vm.up(&plan, &opts, &KeyStore::open(&settings.home), &mut |e| {
            if let VmEvent::Script(ScriptProgress::Step { info, .. }) = e {
                progress.step("base", &info.name);
            }
        })
        .into_diagnostic()?;
        progress.done("base", "set up");
        plan.apply_to(&mut lock.state);
        lock.save().into_diagnostic()?;
    }
    match outcome {
        StartOutcome::AlreadyRunning => println!("jrun: the VM is already running."),
        StartOutcome::Started => println!(
            "jrun: the VM is running; deploy jails with `jrun up <config>`, open a shell with `jrun ssh`."
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn start_native(
    rt: &jrun_native::NativeRuntime,
    settings: &Settings,
    args: &Args,
) -> miette::Result<ExitCode> {
    // Held until the instance is up, so `stop`/`purge` cannot tear it down half-built.
    let _lock = StateStore::new(&settings.home)
        .lock(LockWait::No)
        .into_diagnostic()?;
    if args.base.is_some() {
        eprintln!("note: --base (base setup) is not supported by the native runtime yet; ignored");
    }
    match rt.start().into_diagnostic()? {
        StartOutcome::AlreadyRunning => {
            println!(
                "jrun: the instance is already running ({}).",
                rt.layout().vm_ns()
            );
        }
        StartOutcome::Started => {
            println!(
                "jrun: instance started (namespace {}); deploy jails with `jrun up <config>`.",
                rt.layout().vm_ns()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
