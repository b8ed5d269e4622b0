//! Host → guest over the system `ssh` client. A change is applied as one generated script
//! over one connection (`doas sh -c UPLOAD_AND_RUN`, the script on stdin, saved, then run with
//! stdin from /dev/null); its `jrun-step N` lines stream
//! back as progress, and a failure maps to the step (jail and name) that failed.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::render::{Script, StepInfo};

/// How to reach the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: PathBuf,
    /// jrun's own known-hosts file (the VM's key is learned on first connection).
    pub known_hosts: PathBuf,
    /// A ControlMaster socket so that `jrun ssh`, `cmd` and `up` share one connection.
    pub control_path: Option<PathBuf>,
}

impl SshTarget {
    /// `ssh` and its options, up to and including the destination.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["ssh".into(), "-p".into(), self.port.to_string()];
        let mut opt = |k: &str, v: &str| {
            a.push("-o".into());
            a.push(format!("{k}={v}"));
        };
        opt("BatchMode", "yes");
        opt("IdentitiesOnly", "yes");
        opt("IdentityFile", &self.identity.to_string_lossy());
        opt("UserKnownHostsFile", &self.known_hosts.to_string_lossy());
        opt("StrictHostKeyChecking", "accept-new");
        opt("ConnectTimeout", "10");
        opt("LogLevel", "ERROR");
        if let Some(cp) = &self.control_path {
            opt("ControlMaster", "auto");
            opt("ControlPath", &cp.to_string_lossy());
            opt("ControlPersist", "60");
        }
        a.push(format!("{}@{}", self.user, self.host));
        a
    }

    /// `ssh … -- <remote>` running `argv` in the guest. The remote side joins arguments
    /// into one shell line, so each is quoted: `argv` arrives exactly as given.
    pub fn command_argv(&self, argv: &[String], tty: bool) -> Vec<String> {
        let mut a = self.argv();
        if tty {
            a.insert(1, "-t".into());
        }
        a.push("--".into());
        a.extend(argv.iter().map(|s| crate::quote::sh_quote(s)));
        a
    }

    /// `jrun cmd <jail> <argv…>`: `argv` as root inside the jail (`doas jexec -l`).
    pub fn jail_command_argv(
        &self,
        jail: &jrun_core::config::JailName,
        argv: &[String],
        tty: bool,
    ) -> Vec<String> {
        let mut inner: Vec<String> =
            vec!["doas".into(), "jexec".into(), "-l".into(), jail.to_string()];
        inner.extend(argv.iter().cloned());
        self.command_argv(&inner, tty)
    }
}

/// What a running script reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A step started.
    Step {
        number: usize,
        of: usize,
        info: &'a StepInfo,
    },
    /// A line the script printed.
    Output(&'a str),
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("could not run ssh: {0}; install the OpenSSH client")]
    Spawn(std::io::Error),
    #[error("cannot reach the VM over SSH ({status}): {stderr}; is it running (`jrun start`)?")]
    Connect { status: String, stderr: String },
    #[error("{step} failed (exit {code}): {stderr}")]
    StepFailed {
        step: StepInfo,
        code: i32,
        stderr: String,
    },
    #[error("the provisioning script failed ({status}) before its first step: {stderr}")]
    Failed { status: String, stderr: String },
}

/// Runs scripts on the VM. One call is one SSH connection.
pub trait RemoteExec: Send + Sync {
    fn run_script(
        &self,
        script: &Script,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ScriptError>;
}

/// The real one: the system `ssh` client.
#[derive(Debug, Clone)]
pub struct SshExecutor {
    pub target: SshTarget,
    /// Run as root through this (`doas` in the FreeBSD guest); `None` runs as the SSH user.
    pub privilege: Option<String>,
}

/// The guest side of one script run: the script arrives on stdin and is saved to a file,
/// which runs with stdin from /dev/null. Run as `sh -s`, every command of the script
/// (a setup step, `pkg`, a service) would inherit the script itself as its stdin, and one
/// that reads stdin would swallow the rest of it.
pub const UPLOAD_AND_RUN: &str = "f=$(mktemp /tmp/jrun-script.XXXXXX) || exit 1; cat >\"$f\" || { rm -f \"$f\"; exit 1; }; sh \"$f\" </dev/null; rc=$?; rm -f \"$f\"; exit \"$rc\"";

/// How long ssh may linger after the script said `jrun-done`: a background process the
/// script started may still hold the channel open; the script itself has finished.
const AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(10);

impl SshExecutor {
    /// The whole command line for one script run.
    pub fn script_argv(&self) -> Vec<String> {
        let mut a = self.target.argv();
        a.push("--".into());
        a.extend(self.privilege.iter().cloned());
        a.extend([
            "sh".into(),
            "-c".into(),
            crate::quote::sh_quote(UPLOAD_AND_RUN),
        ]);
        a
    }
}

impl RemoteExec for SshExecutor {
    fn run_script(
        &self,
        script: &Script,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ScriptError> {
        let argv = self.script_argv();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ScriptError::Spawn)?;
        let mut stdin = child.stdin.take().expect("piped");
        let text = script.text.clone();
        // Feed stdin from a thread so a chatty script cannot deadlock against us.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
        let stderr = child.stderr.take().expect("piped");
        let err_lines = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let of = script.steps.len();
        let mut done = false;
        for line in stdout.lines().map_while(Result::ok) {
            if line == "jrun-done" {
                done = true;
                break;
            }
            match parse_step(&line).and_then(|n| Some((n, script.steps.get(n.checked_sub(1)?)?))) {
                Some((number, info)) => progress(Progress::Step { number, of, info }),
                None => progress(Progress::Output(&line)),
            }
        }
        let _ = feeder.join();
        let status = if done {
            let deadline = std::time::Instant::now() + AFTER_DONE;
            loop {
                if let Some(st) = child.try_wait().map_err(ScriptError::Spawn)? {
                    break Some(st);
                }
                if std::time::Instant::now() >= deadline {
                    tracing::warn!("the script finished but something it started still holds the SSH channel; closing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        } else {
            Some(child.wait().map_err(ScriptError::Spawn)?)
        };
        let err = err_lines.join().unwrap_or_default();
        match status {
            Some(status) => interpret(status.code(), &status.to_string(), &err, script),
            // It printed its last line: every step succeeded.
            None => Ok(()),
        }
    }
}

fn parse_step(line: &str) -> Option<usize> {
    line.strip_prefix("jrun-step ")?.trim().parse().ok()
}

/// Maps an exit to an outcome: the script's `jrun-failed N rc` line names the step.
fn interpret(
    code: Option<i32>,
    status: &str,
    stderr: &[String],
    script: &Script,
) -> Result<(), ScriptError> {
    if code == Some(0) {
        return Ok(());
    }
    let failed = stderr.iter().rev().find_map(|l| {
        let mut w = l.strip_prefix("jrun-failed ")?.split_whitespace();
        Some((
            w.next()?.parse::<usize>().ok()?,
            w.next()?.parse::<i32>().ok()?,
        ))
    });
    let kept: Vec<&str> = stderr
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("jrun-failed "))
        .collect();
    let tail = kept[kept.len().saturating_sub(5)..].join("\n");
    match failed {
        Some((n, rc)) if n >= 1 && n <= script.steps.len() => Err(ScriptError::StepFailed {
            step: script.steps[n - 1].clone(),
            code: rc,
            stderr: tail,
        }),
        _ if code == Some(255) => Err(ScriptError::Connect {
            status: status.into(),
            stderr: tail,
        }),
        _ => Err(ScriptError::Failed {
            status: status.into(),
            stderr: tail,
        }),
    }
}

/// Records scripts instead of running them: for tests and the connection-count benchmark.
#[derive(Debug, Default)]
pub struct RecordingRemote {
    scripts: Mutex<Vec<String>>,
}

impl RecordingRemote {
    /// Every script sent, one per connection.
    pub fn scripts(&self) -> Vec<String> {
        self.scripts.lock().unwrap().clone()
    }

    /// How many SSH connections were opened.
    pub fn connections(&self) -> usize {
        self.scripts.lock().unwrap().len()
    }
}

impl RemoteExec for RecordingRemote {
    fn run_script(
        &self,
        script: &Script,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ScriptError> {
        self.scripts.lock().unwrap().push(script.text.clone());
        for (i, info) in script.steps.iter().enumerate() {
            progress(Progress::Step {
                number: i + 1,
                of: script.steps.len(),
                info,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Script {
        Script {
            text: String::new(),
            steps: vec![
                StepInfo {
                    jail: None,
                    name: "network".into(),
                },
                StepInfo {
                    jail: Some(jrun_core::config::JailName::new("web").unwrap()),
                    name: "start".into(),
                },
            ],
        }
    }

    #[test]
    fn failures_map_to_their_step() {
        let err = interpret(
            Some(3),
            "exit status: 3",
            &["boom".into(), "jrun-failed 2 3".into()],
            &script(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "jail web: start failed (exit 3): boom");
        let err = interpret(
            Some(255),
            "exit status: 255",
            &["Connection refused".into()],
            &script(),
        )
        .unwrap_err();
        assert!(matches!(err, ScriptError::Connect { .. }));
        // A step number the script does not have is not trusted.
        let err = interpret(
            Some(1),
            "exit status: 1",
            &["jrun-failed 9 1".into()],
            &script(),
        )
        .unwrap_err();
        assert!(matches!(err, ScriptError::Failed { .. }));
        assert!(interpret(Some(0), "", &[], &script()).is_ok());
    }

    #[test]
    fn remote_commands_arrive_as_given() {
        let t = SshTarget {
            host: "127.0.0.1".into(),
            port: 2222,
            user: "admin".into(),
            identity: "/k".into(),
            known_hosts: "/kh".into(),
            control_path: None,
        };
        let jail = jrun_core::config::JailName::new("web").unwrap();
        let a = t.jail_command_argv(&jail, &["echo".into(), "a b; $(id)".into()], true);
        assert_eq!(a[1], "-t");
        let remote = &a[a.iter().position(|x| x == "--").unwrap() + 1..];
        assert_eq!(
            remote,
            [
                "'doas'",
                "'jexec'",
                "'-l'",
                "'web'",
                "'echo'",
                "'a b; $(id)'"
            ]
        );
        // What the remote shell makes of the joined line is the original argv.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s|' {}", remote[4..].join(" ")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "echo|a b; $(id)|");
    }

    #[test]
    fn command_line() {
        let ex = SshExecutor {
            target: SshTarget {
                host: "127.0.0.1".into(),
                port: 2222,
                user: "admin".into(),
                identity: "/h/.jrun/id_ed25519".into(),
                known_hosts: "/h/.jrun/known_hosts".into(),
                control_path: Some("/h/.jrun/ssh.sock".into()),
            },
            privilege: Some("doas".into()),
        };
        let a = ex.script_argv();
        assert_eq!(a[..3], ["ssh", "-p", "2222"]);
        assert!(a.contains(&"ControlMaster=auto".to_string()));
        let upload = crate::quote::sh_quote(UPLOAD_AND_RUN);
        assert_eq!(
            a[a.len() - 6..],
            ["admin@127.0.0.1", "--", "doas", "sh", "-c", upload.as_str()]
        );
    }
}
