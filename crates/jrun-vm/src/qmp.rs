//! A QMP client: the QEMU Machine Protocol over the VM's unix socket. jrun uses it to add
//! and remove port forwards live and to ask the guest to power down.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::qemu::argv::NETDEV_ID;
use crate::qemu::HostFwd;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot reach QEMU's QMP socket {path}: {source}; is the VM running (`jrun start`)?")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {path}: QEMU closed the connection")]
    Closed { path: PathBuf },
    #[error("QMP socket {path}: unexpected message {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("QEMU refused `{command}`: {desc}")]
    Refused { command: String, desc: String },
}

/// One QMP session, in command mode (after `qmp_capabilities`).
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and enters command mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.into(),
            source,
        })?;
        let io = |source| QmpError::Io {
            path: path.into(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp {
            path: path.into(),
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.protocol(&greeting));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn protocol(&self, v: &Value) -> QmpError {
        QmpError::Protocol {
            path: self.path.clone(),
            message: v.to_string(),
        }
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(QmpError::Closed {
                path: self.path.clone(),
            });
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol {
            path: self.path.clone(),
            message: line.trim().into(),
        })
    }

    /// Runs one command and returns its `return` value; asynchronous events are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON of a command");
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(QmpError::Refused {
                    command: command.into(),
                    desc: err
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                        .into(),
                });
            }
            return Err(self.protocol(&reply));
        }
    }

    /// A human monitor command that prints nothing on success (most do). HMP reports
    /// failure as text, not as a QMP error.
    pub fn hmp(&mut self, command_line: &str) -> Result<String, QmpError> {
        self.hmp_checked(command_line, str::is_empty)
    }

    fn hmp_checked(
        &mut self,
        command_line: &str,
        ok: fn(&str) -> bool,
    ) -> Result<String, QmpError> {
        let out = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )?;
        let text = out.as_str().unwrap_or_default().trim().to_string();
        if !ok(&text) {
            return Err(QmpError::Refused {
                command: command_line.into(),
                desc: text,
            });
        }
        Ok(text)
    }

    /// Adds a port forward to the running VM's user network.
    pub fn hostfwd_add(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.hmp(&format!("hostfwd_add {NETDEV_ID} {f}")).map(drop)
    }

    /// Removes a port forward from the running VM's user network.
    pub fn hostfwd_remove(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.hmp_checked(
            &format!("hostfwd_remove {NETDEV_ID} {}", f.remove_spec()),
            hostfwd_removed,
        )
        .map(drop)
    }

    /// Presses the ACPI power button.
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Ends QEMU at once (the guest is not asked).
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the guest is running (`query-status`).
    pub fn running(&mut self) -> Result<bool, QmpError> {
        let s = self.execute("query-status", None)?;
        Ok(s.get("running").and_then(Value::as_bool).unwrap_or(false))
    }
}

/// The one place that reads HMP's text: `hostfwd_remove` answers "host forwarding rule for
/// … removed" on success and "… not found" otherwise.
fn hostfwd_removed(text: &str) -> bool {
    text.ends_with("removed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QEMU: greets, then answers each command line from a script.
    fn fake(
        answers: Vec<&'static str>,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        std::thread::JoinHandle<Vec<Value>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut got = vec![];
            for a in answers {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                got.push(serde_json::from_str(&line).unwrap());
                w.write_all(a.as_bytes()).unwrap();
            }
            got
        });
        (dir, path, h)
    }

    #[test]
    fn forwards_and_powerdown_speak_qmp() {
        let (_d, path, h) = fake(vec![
            "{\"return\": {}}\r\n",
            "{\"event\": \"NIC_RX_FILTER_CHANGED\"}\r\n{\"return\": \"\"}\r\n",
            "{\"return\": \"host forwarding rule for tcp:127.0.0.1:8080 removed\\r\\n\"}\r\n",
            "{\"return\": \"host forwarding rule for tcp:127.0.0.1:8080 not found\\r\\n\"}\r\n",
            "{\"return\": {}}\r\n",
        ]);
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        let f = HostFwd {
            proto: jrun_core::config::Proto::Tcp,
            host_port: 8080,
            guest_port: 80,
        };
        q.hostfwd_add(&f).unwrap();
        q.hostfwd_remove(&f).unwrap();
        let err = q.hostfwd_remove(&f).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        q.system_powerdown().unwrap();
        let got = h.join().unwrap();
        assert_eq!(got[0], json!({"execute": "qmp_capabilities"}));
        assert_eq!(
            got[1]["arguments"]["command-line"],
            "hostfwd_add net0 tcp:127.0.0.1:8080-:80"
        );
        assert_eq!(
            got[2]["arguments"]["command-line"],
            "hostfwd_remove net0 tcp:127.0.0.1:8080"
        );
        assert_eq!(
            got[3]["arguments"]["command-line"],
            "hostfwd_remove net0 tcp:127.0.0.1:8080"
        );
        assert_eq!(got[4], json!({"execute": "system_powerdown"}));
    }

    #[test]
    fn errors_name_the_command() {
        let (_d, path, _h) = fake(vec![
            "{\"return\": {}}\r\n",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\r\n",
        ]);
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        let err = q.execute("bogus", None).unwrap_err();
        assert_eq!(err.to_string(), "QEMU refused `bogus`: nope");
    }
}
