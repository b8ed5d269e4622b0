//! Starting QEMU detached and stopping it gracefully: ACPI power-down through QMP, a wait
//! with a deadline, then `quit`, then SIGKILL.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::QemuSpec;
use crate::qmp::{Qmp, QmpError};

/// How long QEMU gets to exit once told to quit. It flushes its disk images on the way out
/// (a kill in the middle can leave one torn), and on a busy machine (the full test suite)
/// its exit once took longer than the 5 s this was.
const QUIT_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("could not run {binary}: {source}; install QEMU (Debian: qemu-system-x86 / qemu-system-arm, macOS: brew install qemu)")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{binary} failed to start the VM ({status}): {stderr}")]
    Failed {
        binary: String,
        status: String,
        stderr: String,
    },
    #[error("QEMU's pid file {path} is missing or unreadable: {cause}")]
    PidFile { path: PathBuf, cause: String },
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("the VM (pid {pid}) did not exit after SIGKILL")]
    Unkillable { pid: i32 },
}

/// Runs QEMU.
pub struct Qemu;

/// A running (detached) VM: its pid and its QMP socket are the instance's "running" signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmProcess {
    pub pid: i32,
    pub qmp_socket: PathBuf,
    pub pidfile: PathBuf,
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The guest powered itself off after the ACPI request.
    PoweredDown,
    /// The guest did not react in time; QEMU was told to quit (over QMP, or by SIGTERM when
    /// its monitor did not answer) and did.
    Quit,
    /// QEMU did not quit either; it was killed.
    Killed,
    /// It was not running.
    NotRunning,
}

impl Qemu {
    /// Starts `spec` with `binary` (default: the arch's `qemu-system-*`). Returns once QEMU
    /// has daemonized, so a failure to start is an error here, with QEMU's stderr.
    pub fn launch(spec: &QemuSpec, binary: Option<&Path>) -> Result<VmProcess, QemuError> {
        let binary =
            binary.map_or_else(|| PathBuf::from(spec.arch.qemu_binary()), Path::to_path_buf);
        let name = binary.display().to_string();
        let _ = std::fs::remove_file(&spec.qmp_socket);
        let _ = std::fs::remove_file(&spec.pidfile);
        tracing::debug!(binary = %name, argv = ?spec.argv(), "starting QEMU");
        let out = Command::new(&binary)
            .args(spec.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| QemuError::Spawn {
                binary: name.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(QemuError::Failed {
                binary: name,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let pid = read_pidfile(&spec.pidfile)?;
        Ok(VmProcess {
            pid,
            qmp_socket: spec.qmp_socket.clone(),
            pidfile: spec.pidfile.clone(),
        })
    }
}

fn read_pidfile(path: &Path) -> Result<i32, QemuError> {
    let bad = |cause: String| QemuError::PidFile {
        path: path.into(),
        cause,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| bad(format!("{:?} is not a pid", text.trim())))
}

impl VmProcess {
    /// The VM recorded by `pidfile`, if that process is alive.
    pub fn from_pidfile(pidfile: &Path, qmp_socket: &Path) -> Option<Self> {
        let pid = read_pidfile(pidfile).ok()?;
        let vm = VmProcess {
            pid,
            qmp_socket: qmp_socket.into(),
            pidfile: pidfile.into(),
        };
        vm.is_alive().then_some(vm)
    }

    pub fn is_alive(&self) -> bool {
        // Signal 0 checks that the process exists without touching it.
        self.pid > 0 && kill(Pid::from_raw(self.pid), None).is_ok()
    }

    /// A QMP session with this VM.
    pub fn qmp(&self) -> Result<Qmp, QmpError> {
        Qmp::connect(&self.qmp_socket, Duration::from_secs(10))
    }

    /// ACPI power-down, then waits up to `deadline` (calling `tick` while it waits), then
    /// `quit`, then SIGKILL.
    pub fn stop(
        &self,
        deadline: Duration,
        mut tick: impl FnMut(Duration),
    ) -> Result<StopOutcome, QemuError> {
        if !self.is_alive() {
            return Ok(StopOutcome::NotRunning);
        }
        let start = Instant::now();
        let asked = self.qmp().and_then(|mut q| q.system_powerdown());
        if let Err(e) = &asked {
            tracing::warn!(error = %e, "could not ask the guest to power down");
        }
        while asked.is_ok() && start.elapsed() < deadline {
            if !self.is_alive() {
                self.cleanup();
                return Ok(StopOutcome::PoweredDown);
            }
            tick(start.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(
            pid = self.pid,
            "the guest did not power down in {deadline:?}; quitting QEMU"
        );
        match self.qmp().and_then(|mut q| q.quit()) {
            Ok(_) if self.wait_gone(QUIT_GRACE) => {
                self.cleanup();
                return Ok(StopOutcome::Quit);
            }
            Ok(_) => {}
            // Its monitor did not answer. QEMU may have been on its way out already (a guest
            // that powered off at the deadline): then it is gone by now. Otherwise SIGTERM is
            // QEMU's own orderly quit, disk images flushed, before anything harsher.
            Err(e) => {
                if !self.is_alive() {
                    self.cleanup();
                    return Ok(StopOutcome::PoweredDown);
                }
                tracing::warn!(pid = self.pid, error = %e, "QEMU did not answer quit; sending SIGTERM");
                let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
                if self.wait_gone(QUIT_GRACE) {
                    self.cleanup();
                    return Ok(StopOutcome::Quit);
                }
            }
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        if self.wait_gone(Duration::from_secs(5)) {
            self.cleanup();
            Ok(StopOutcome::Killed)
        } else {
            Err(QemuError::Unkillable { pid: self.pid })
        }
    }

    fn wait_gone(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.is_alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.pidfile);
        let _ = std::fs::remove_file(&self.qmp_socket);
    }
}

/// The first port from `start` on that nobody listens on at 127.0.0.1 (the SSH port moves
/// to it when the configured one is taken).
pub fn free_port_from(start: u16) -> Option<u16> {
    (start..=u16::MAX).find(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_ports_are_skipped() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = l.local_addr().unwrap().port();
        let got = free_port_from(taken).unwrap();
        assert!(got > taken);
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::qemu::argv::tests_support::spec_in(dir.path());
        let err = Qemu::launch(&spec, Some(Path::new("/nonexistent/qemu"))).unwrap_err();
        assert!(err.to_string().contains("install QEMU"), "{err}");
    }

    #[test]
    fn a_vm_whose_monitor_does_not_answer_is_told_to_quit_by_sigterm_not_killed() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        // Stands in for a QEMU whose QMP socket cannot be reached; a thread reaps it as
        // init reaps the daemonized QEMU.
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let vm = VmProcess {
            pid: child.id() as i32,
            qmp_socket: dir.path().join("qmp"),
            pidfile: dir.path().join("pid"),
        };
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let outcome = vm.stop(Duration::from_secs(1), |_| {}).unwrap();
        assert_eq!(outcome, StopOutcome::Quit);
        assert_eq!(
            reaper.join().unwrap().signal(),
            Some(Signal::SIGTERM as i32)
        );
        assert!(!vm.is_alive());
    }

    #[test]
    fn dead_pidfiles_are_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("pid");
        std::fs::write(&pf, "999999999\n").unwrap();
        assert!(VmProcess::from_pidfile(&pf, &dir.path().join("q")).is_none());
    }
}
