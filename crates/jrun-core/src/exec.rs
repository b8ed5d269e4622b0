//! Every host command jrun runs goes through [`Runner`], as argv — never a shell string.
//! [`RecordingRunner`] lets tests assert the exact calls without root.

use std::io::Write;
use std::process::Stdio;
use std::sync::Mutex;

/// One command: a program and its arguments, optionally with bytes for its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command line for messages (not for a shell).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
}

/// Runs commands. Implementations must not involve a shell.
pub trait Runner: Send + Sync {
    /// Runs `cmd` to completion; a non-zero exit is an [`ExecError::Failed`].
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;
}

/// Runs commands on this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let spawn_err = |source| ExecError::Spawn {
            cmd: cmd.display(),
            source,
        };
        let (program, args) = cmd.argv.split_first().ok_or_else(|| {
            spawn_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty argv",
            ))
        })?;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // stdin is fed on its own thread while this one drains stdout and stderr: a child
        // that writes a lot before reading everything would otherwise block both sides.
        let stdin = child.stdin.take();
        let (out, written) = std::thread::scope(|scope| {
            let writer = stdin.zip(cmd.stdin.as_deref()).map(|(mut pipe, bytes)| {
                scope.spawn(move || match pipe.write_all(bytes) {
                    // The child stopped reading (exited early): its exit status and stderr
                    // say why, so they are what gets reported.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                })
            });
            let out = child.wait_with_output();
            let written = writer.map_or(Ok(()), |w| w.join().expect("stdin writer panicked"));
            (out, written)
        });
        let out = out.map_err(spawn_err)?;
        if !out.status.success() {
            return Err(ExecError::Failed {
                cmd: cmd.display(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        written.map_err(spawn_err)?;
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// A canned answer: commands whose argv starts with the prefix get the result.
type Answer = (Vec<String>, Result<Output, String>);

/// Records every command and answers with canned output (empty success by default).
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Cmd>>,
    answers: Mutex<Vec<Answer>>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands whose argv starts with `prefix` answer `stdout`.
    pub fn answer(&self, prefix: &[&str], stdout: &str) {
        self.answers.lock().unwrap().push((
            prefix.iter().map(|s| s.to_string()).collect(),
            Ok(Output {
                stdout: stdout.as_bytes().to_vec(),
                stderr: vec![],
            }),
        ));
    }

    /// Commands whose argv starts with `prefix` fail with `stderr`.
    pub fn fail(&self, prefix: &[&str], stderr: &str) {
        self.answers.lock().unwrap().push((
            prefix.iter().map(|s| s.to_string()).collect(),
            Err(stderr.to_string()),
        ));
    }

    /// The argv of every call so far.
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.argv.clone())
            .collect()
    }

    /// Every call with its stdin.
    pub fn commands(&self) -> Vec<Cmd> {
        self.calls.lock().unwrap().clone()
    }
}

impl Runner for RecordingRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.calls.lock().unwrap().push(cmd.clone());
        let answers = self.answers.lock().unwrap();
        let hit = answers
            .iter()
            .rev()
            .find(|(prefix, _)| cmd.argv.starts_with(prefix));
        match hit {
            None => Ok(Output::default()),
            Some((_, Ok(out))) => Ok(out.clone()),
            Some((_, Err(stderr))) => Err(ExecError::Failed {
                cmd: cmd.display(),
                status: "exit status: 1".into(),
                stderr: stderr.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_answers() {
        let rec = RecordingRunner::new();
        rec.answer(&["ip", "netns", "list"], "a\nb\n");
        rec.fail(&["nft"], "syntax error");
        let out = rec.run(&Cmd::new(["ip", "netns", "list"])).unwrap();
        assert_eq!(out.stdout, b"a\nb\n");
        assert!(rec.run(&Cmd::new(["nft", "-f", "-"]).stdin("x")).is_err());
        assert_eq!(
            rec.calls(),
            [vec!["ip", "netns", "list"], vec!["nft", "-f", "-"]]
        );
    }

    #[test]
    fn system_runner_passes_argv_untouched() {
        let out = SystemRunner
            .run(&Cmd::new(["printf", "%s", "$(id) ; x"]))
            .unwrap();
        assert_eq!(out.stdout, b"$(id) ; x");
        assert!(SystemRunner.run(&Cmd::new(["false"])).is_err());
    }

    /// Runs `cmd` on a thread so a deadlock fails the test instead of hanging it.
    fn run_with_watchdog(cmd: Cmd) -> Result<Output, ExecError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(SystemRunner.run(&cmd)));
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("SystemRunner deadlocked")
    }

    #[test]
    fn system_runner_reads_output_while_writing_stdin() {
        // `cat` echoes a megabyte: far more than a pipe buffer in each direction.
        let input: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let out = run_with_watchdog(Cmd::new(["cat"]).stdin(input.clone())).unwrap();
        assert_eq!(out.stdout.len(), input.len());
        assert!(out.stdout == input);
    }

    #[test]
    fn system_runner_reports_exit_status_when_child_stops_reading() {
        let input = vec![b'x'; 1 << 20];
        let cmd = Cmd::new(["sh", "-c", "echo refused >&2; exit 3"]).stdin(input);
        match run_with_watchdog(cmd) {
            Err(ExecError::Failed { status, stderr, .. }) => {
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "refused");
            }
            other => panic!("expected the exit status and stderr, got {other:?}"),
        }
    }

    #[test]
    fn system_runner_accepts_a_child_that_ignores_stdin() {
        let out = run_with_watchdog(Cmd::new(["true"]).stdin(vec![0u8; 1 << 20])).unwrap();
        assert!(out.stdout.is_empty());
    }
}
