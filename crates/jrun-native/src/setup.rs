//! A jail's `setup` steps, run in order inside the jail when it is created (and again with
//! `up --provision`). Their output is streamed line by line to the caller's progress.
//!
//! - `type = "shell"`: `/bin/sh <file>` in the jail, in the file's folder, with `vars` as
//!   environment variables.
//! - `type = "ansible"`: `ansible-playbook -i localhost, -c local <file> -e @<vars file>`
//!   in the jail when `ansible-playbook` is installed; otherwise a clear error. The vars go
//!   through a 0600 JSON file, never the command line (which every user sees in `ps`).
//! - A `url` step runs the copy `jrun up` fetched into `JRUN_HOME/playbooks/` and checked
//!   against its `jrun.manifest` (`jrun_core::playbook`), from that folder.
//!
//! A step runs in its own process group. When its first process exits, whatever it left in
//! the background is killed (a step must not start daemons: services are `exec`s), so `up`
//! never waits on a pipe a stray background process holds open. A step that runs longer than
//! `JRUN_SETUP_TIMEOUT` seconds (30 minutes by default) is killed and reported.
//!
//! A step never outlives the `jrun` that runs it:
//! - Its group is published in [`RUNNING_STEP`] while it runs; `jrun up`'s SIGINT/SIGTERM
//!   handler calls [`kill_running_step`] before exiting (being its own group, the step does
//!   not get a terminal's Ctrl-C).
//! - Its first process has `PR_SET_PDEATHSIG` = SIGKILL, for when jrun dies of SIGKILL. The
//!   signal is set between fork and exec and survives the execs that follow: `nsenter` (no
//!   `--pid`, so it does not fork), `env` and the step's program are the same process, and
//!   the kernel clears the death signal on exec only for set-user/group-ID or file-capability
//!   binaries (none of these). It fires when the parent *thread* ends: the thread that
//!   spawns the step is the one that waits for it in [`run_streaming`], so it cannot end
//!   first while jrun lives. Children the step forks do not inherit it (fork clears it):
//!   what it left in the background is swept by the next deploy of the jail
//!   ([`crate::sweep`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use jrun_core::config::{JailName, SetupKind, SetupSource, SetupStep};

use crate::jailns;
use crate::names::Layout;
use crate::procgroup;

/// How long one setup step may run when `JRUN_SETUP_TIMEOUT` does not say.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long output a step's processes wrote before they were killed is still read.
const DRAIN: Duration = Duration::from_secs(1);

/// The process group of the setup step running now (0: none). Set once the step is spawned,
/// cleared before its leader is reaped (so the id cannot have been reused by then).
static RUNNING_STEP: AtomicI32 = AtomicI32::new(0);

/// SIGKILLs the process group of the setup step running now, if any. Async-signal-safe
/// (an atomic load and `kill(2)`): meant for a signal handler before the process exits.
pub fn kill_running_step() {
    let pgid = RUNNING_STEP.load(Ordering::SeqCst);
    if pgid > 0 {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// The step timeout: `JRUN_SETUP_TIMEOUT` (whole seconds, at least 1) or 30 minutes.
fn step_timeout() -> Result<Duration, String> {
    match std::env::var("JRUN_SETUP_TIMEOUT") {
        Err(_) => Ok(DEFAULT_STEP_TIMEOUT),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=7 * 24 * 3600).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(format!(
                "JRUN_SETUP_TIMEOUT={v:?} is not a number of seconds between 1 and 604800; fix or unset it"
            )),
        },
    }
}

/// One step, ready to run: its argv entering the jail, its environment and the vars file
/// (ansible) that must live until the step ends.
pub struct StepCommand {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    _vars_file: Option<tempfile::NamedTempFile>,
}

/// The environment every process of a jail starts from (nothing of jrun's own leaks in).
pub fn base_env() -> BTreeMap<String, String> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether `program` is on `path` (a `PATH` value).
fn installed(path: &str, program: &str) -> bool {
    path.split(':')
        .any(|d| Path::new(d).join(program).is_file())
}

/// The argv (already entering the jail) and environment of one step.
pub fn step_command(
    layout: &Layout,
    jail: &JailName,
    step: &SetupStep,
) -> Result<StepCommand, String> {
    let cached;
    let file = match &step.source {
        SetupSource::File(f) => f,
        SetupSource::Url(u) => {
            // `up` fetched and checked it before anything changed; it is read from the cache.
            let source = jrun_core::playbook::RemoteSource::parse(u)
                .map_err(|e| format!("its url {u} {e}"))?;
            cached = jrun_core::playbook::cached(&layout.home, &source)
                .map_err(|e| format!("{e}; run `jrun up` again to fetch it"))?
                .entry();
            &cached
        }
    };
    let dir = file
        .parent()
        .map_or_else(|| "/".to_string(), |d| d.to_string_lossy().into_owned());
    let path = file.to_string_lossy().into_owned();
    let mut env = base_env();
    let mut vars_file = None;
    let argv = match step.kind {
        SetupKind::Shell => {
            env.extend(step.vars.clone());
            vec!["/bin/sh".to_string(), path]
        }
        SetupKind::Ansible => {
            if !installed(&env["PATH"], "ansible-playbook") {
                return Err(
                    "ansible-playbook is not installed on this machine; install ansible (e.g. `apt-get install ansible`) or make it a `type = \"shell\"` step"
                        .into(),
                );
            }
            let file = write_vars_file(layout, &step.vars)?;
            let at = format!("@{}", file.path().display());
            vars_file = Some(file);
            [
                "ansible-playbook",
                "-i",
                "localhost,",
                "-c",
                "local",
                &path,
                "-e",
                &at,
            ]
            .map(str::to_string)
            .to_vec()
        }
    };
    Ok(StepCommand {
        argv: jailns::jail_argv(layout, jail, &dir, &argv),
        env,
        _vars_file: vars_file,
    })
}

/// The vars as JSON in a 0600 file under the instance's run folder (jails share the host's
/// root, so the playbook reads it at the same path).
fn write_vars_file(
    layout: &Layout,
    vars: &BTreeMap<String, String>,
) -> Result<tempfile::NamedTempFile, String> {
    use std::io::Write;
    let dir = layout.run_dir();
    let mut file = tempfile::Builder::new()
        .prefix("setup-vars-")
        .suffix(".json")
        .tempfile_in(&dir)
        .map_err(|e| format!("cannot create a vars file in {}: {e}", dir.display()))?;
    let text = serde_json::to_string(vars).expect("plain data serialises");
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
    Ok(file)
}

/// Runs every step in order; `line` hears each line of output as it comes. The first
/// failing step stops the run; the error names the jail and the step.
pub fn run_steps(
    layout: &Layout,
    jail: &JailName,
    steps: &[SetupStep],
    line: &mut dyn FnMut(&str, &str),
) -> Result<(), String> {
    let timeout = step_timeout()?;
    for step in steps {
        let fail = |why: String| format!("jail `{jail}`, setup step `{}`: {why}", step.name);
        let cmd = step_command(layout, jail, step).map_err(fail)?;
        let argv = &cmd.argv;
        line(&step.name, "starting");
        let status = run_streaming(argv, &cmd.env, timeout, &mut |l| line(&step.name, l))
            .map_err(|e| fail(format!("cannot run {}: {e}", argv[7..].join(" "))))?;
        let Some(status) = status else {
            return Err(fail(format!(
                "it ran longer than {} s and was killed (JRUN_SETUP_TIMEOUT sets the limit); its output is above",
                timeout.as_secs()
            )));
        };
        if !status.success() {
            return Err(fail(format!(
                "it failed ({status}); its output is above. Fix it and run `jrun up` again"
            )));
        }
    }
    Ok(())
}

/// Runs `argv` in a process group of its own, merging stdout and stderr into one stream of
/// lines handed to `line`. When the first process exits (or `timeout` passes: `None`), the
/// rest of its group is killed and what they wrote is read for at most [`DRAIN`].
fn run_streaming(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
    line: &mut dyn FnMut(&str),
) -> std::io::Result<Option<ExitStatus>> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::other("empty command"));
    };
    let (reader, writer) = std::io::pipe()?;
    let err_writer = writer.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(err_writer)
        .process_group(0);
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec this only calls prctl and getppid, both
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // jrun may have died before the line above: then nothing would kill the step.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("jrun is gone"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    RUNNING_STEP.store(child.id() as i32, Ordering::SeqCst);
    // Our copies of the write end must close, or the reader never sees the end.
    drop(cmd);
    let (tx, rx) = mpsc::channel::<String>();
    let reading = std::thread::Builder::new()
        .name("setup-output".into())
        .spawn(move || {
            for l in BufReader::new(reader).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = reading {
        procgroup::signal_group(&child, Signal::SIGKILL);
        RUNNING_STEP.store(0, Ordering::SeqCst);
        let _ = child.wait();
        return Err(e);
    }
    let deadline = Instant::now() + timeout;
    let timed_out = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => line(&l),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The pipe closed; the leader is about to exit or already did.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(20))
            }
        }
        if procgroup::leader_exited(&child) {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
    };
    // The leader is not reaped yet, so its pid still names this group.
    procgroup::signal_group(&child, Signal::SIGKILL);
    RUNNING_STEP.store(0, Ordering::SeqCst);
    let status = child.wait()?;
    // Lines written before the kill; a process that left the group (setsid) may hold the
    // pipe open for ever, so the reader thread is not joined.
    let drain_until = Instant::now() + DRAIN;
    while let Ok(l) = rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        line(&l);
    }
    Ok((!timed_out).then_some(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn step(kind: SetupKind, source: SetupSource) -> SetupStep {
        SetupStep {
            name: "init".into(),
            kind,
            source,
            vars: [("GREETING".to_string(), "hi there".to_string())].into(),
        }
    }

    #[test]
    fn a_shell_step_runs_its_file_in_the_jail_with_vars() {
        let layout = Layout::new(Path::new("/tmp/h"));
        let jail = JailName::new("web").unwrap();
        let s = step(
            SetupKind::Shell,
            SetupSource::File(PathBuf::from("/cfg/setup/init.sh")),
        );
        let StepCommand { argv, env, .. } = step_command(&layout, &jail, &s).unwrap();
        assert_eq!(argv[0], "nsenter");
        assert_eq!(argv[5], "--chdir=/cfg/setup");
        assert_eq!(&argv[6..], ["--", "/bin/sh", "/cfg/setup/init.sh"]);
        assert_eq!(env["GREETING"], "hi there");
        assert!(env["PATH"].contains("/usr/bin"));
    }

    #[test]
    fn a_url_step_runs_the_checked_copy_in_the_cache() {
        use jrun_core::playbook::{cache_root, sha256_hex, RemoteSource, MANIFEST};
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let jail = JailName::new("web").unwrap();
        let url = "https://github.com/acme/infra/blob/main/setup/init.sh";
        let s = step(SetupKind::Shell, SetupSource::Url(url.into()));
        let err = step_command(&layout, &jail, &s).err().unwrap();
        assert!(err.contains("run `jrun up` again"), "{err}");

        let dir = cache_root(home.path()).join(RemoteSource::parse(url).unwrap().cache_key());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("init.sh"), "echo hi\n").unwrap();
        std::fs::write(
            dir.join(MANIFEST),
            format!("{}  init.sh\n", sha256_hex(b"echo hi\n")),
        )
        .unwrap();
        let StepCommand { argv, .. } = step_command(&layout, &jail, &s).unwrap();
        let entry = dir.join("init.sh").display().to_string();
        assert_eq!(argv[5], format!("--chdir={}", dir.display()));
        assert_eq!(&argv[6..], ["--", "/bin/sh", entry.as_str()]);

        // A file changed after it was checked is not run.
        std::fs::write(dir.join("init.sh"), "rm -rf /\n").unwrap();
        let err = step_command(&layout, &jail, &s).err().unwrap();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn installed_looks_only_on_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        assert!(!installed(&d, "ansible-playbook"));
        std::fs::write(dir.path().join("ansible-playbook"), "").unwrap();
        assert!(installed(&format!("/nonexistent:{d}"), "ansible-playbook"));
    }

    #[test]
    fn ansible_vars_go_through_a_private_file_not_the_command_line() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        std::fs::create_dir_all(layout.run_dir()).unwrap();
        let jail = JailName::new("web").unwrap();
        let s = step(
            SetupKind::Ansible,
            SetupSource::File(PathBuf::from("/cfg/site.yml")),
        );
        if !installed(&base_env()["PATH"], "ansible-playbook") {
            let err =
                run_steps(&layout, &jail, std::slice::from_ref(&s), &mut |_, _| {}).unwrap_err();
            assert!(err.contains("jail `web`, setup step `init`"), "{err}");
            assert!(err.contains("ansible-playbook is not installed"), "{err}");
        }
        let file = write_vars_file(&layout, &s.vars).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(file.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            r#"{"GREETING":"hi there"}"#
        );
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists(), "the vars file goes with the step");
    }

    #[test]
    fn output_is_streamed_line_by_line_from_both_streams() {
        let mut lines = Vec::new();
        let status = run_streaming(
            &[
                "/bin/sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 4".into(),
            ],
            &base_env(),
            Duration::from_secs(60),
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(status.code(), Some(4));
        assert_eq!(lines, ["out", "err"]);
    }

    #[test]
    fn a_step_that_backgrounds_a_process_ends_and_takes_it_along() {
        let mut lines = Vec::new();
        let started = Instant::now();
        let status = run_streaming(
            &[
                "/bin/sh".into(),
                "-c".into(),
                "sleep 1000 & echo bg $!; echo done".into(),
            ],
            &base_env(),
            Duration::from_secs(600),
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap()
        .unwrap();
        assert!(status.success());
        assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:?}");
        let pid: i32 = lines[0].strip_prefix("bg ").unwrap().parse().unwrap();
        // Not a wall-clock bound on speed: only that it did not wait for `sleep 1000`.
        assert!(started.elapsed() < Duration::from_secs(500));
        let gone = (0..100).any(|_| {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ");
            if alive {
                std::thread::sleep(Duration::from_millis(50));
            }
            !alive
        });
        assert!(gone, "the backgrounded sleep {pid} is still running");
    }

    #[test]
    fn a_step_past_its_timeout_is_killed() {
        let status = run_streaming(
            &["/bin/sh".into(), "-c".into(), "sleep 1000".into()],
            &base_env(),
            Duration::from_millis(300),
            &mut |_| {},
        )
        .unwrap();
        assert!(status.is_none());
    }
}
