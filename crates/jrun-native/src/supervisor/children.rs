//! Supervised processes: started, restarted with a backoff when they exit, stopped with
//! SIGTERM then SIGKILL. Output goes to `logs/<name>.log`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use super::control::Failure;
use super::spec::ChildSpec;

/// How long a stopping child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Restart delays grow from this, doubling per quick exit, up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A child that ran this long before exiting restarts without delay growth.
const STABLE_AFTER: Duration = Duration::from_secs(10);

struct Running {
    spec: ChildSpec,
    child: Option<Child>,
    started: Instant,
    restarts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// What `status` reports per child.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ChildStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub restarts: u32,
}

/// Every child the supervisor owns, by name.
pub struct Children {
    log_dir: PathBuf,
    running: BTreeMap<String, Running>,
    /// Children told to stop (SIGTERM), killed if still there at the deadline. Stopping
    /// does not block a reload: the caller's next step (e.g. deleting the namespace) goes on.
    stopping: Vec<(Child, Instant)>,
}

impl Children {
    pub fn new(log_dir: &Path) -> Self {
        Children {
            log_dir: log_dir.to_path_buf(),
            running: BTreeMap::new(),
            stopping: Vec::new(),
        }
    }

    /// Converges to `wanted`: stops children no longer wanted or whose argv changed,
    /// starts the new ones. Returns start failures (the child is retried later).
    pub fn converge(&mut self, wanted: &[ChildSpec]) -> Vec<Failure> {
        let keep: BTreeMap<&str, &ChildSpec> =
            wanted.iter().map(|c| (c.name.as_str(), c)).collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| keep.get(name.as_str()) != Some(&&r.spec))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(child) = self.running.remove(&name).and_then(|mut r| r.child.take()) {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
                self.stopping.push((child, Instant::now() + STOP_GRACE));
            }
        }
        let mut errors = Vec::new();
        for spec in wanted {
            if self.running.contains_key(&spec.name) {
                continue;
            }
            let mut r = Running {
                spec: spec.clone(),
                child: None,
                started: Instant::now(),
                restarts: 0,
                backoff: MIN_BACKOFF,
                restart_at: None,
            };
            if let Err(e) = self.spawn(&mut r) {
                errors.push(Failure {
                    key: spec.name.clone(),
                    error: e,
                });
                r.restart_at = Some(Instant::now() + r.backoff);
            }
            self.running.insert(spec.name.clone(), r);
        }
        errors
    }

    /// Reaps exited children and restarts those whose backoff has passed.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.stopping.retain_mut(|(child, deadline)| {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if *deadline <= now {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            true
        });
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let mut r = self.running.remove(&name).expect("name from keys");
            if let Some(child) = r.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::warn!(child = %name, %status, "child exited; restarting");
                    r.child = None;
                    r.backoff = if r.started.elapsed() > STABLE_AFTER {
                        MIN_BACKOFF
                    } else {
                        (r.backoff * 2).min(MAX_BACKOFF)
                    };
                    r.restart_at = Some(now + r.backoff);
                }
            }
            if r.child.is_none() && r.restart_at.is_some_and(|t| t <= now) {
                r.restarts += 1;
                match self.spawn(&mut r) {
                    Ok(()) => r.restart_at = None,
                    Err(e) => {
                        tracing::error!(child = %name, error = %e, "restart failed");
                        r.restart_at = Some(now + r.backoff);
                    }
                }
            }
            self.running.insert(name, r);
        }
    }

    pub fn status(&self) -> Vec<ChildStatus> {
        self.running
            .values()
            .map(|r| ChildStatus {
                name: r.spec.name.clone(),
                pid: r.child.as_ref().map(|c| c.id()),
                restarts: r.restarts,
            })
            .collect()
    }

    /// Stops every child.
    pub fn stop_all(&mut self) {
        // Signal everyone first so they stop in parallel, then wait for each.
        for r in self.running.values() {
            if let Some(c) = &r.child {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            }
        }
        for (_, mut r) in std::mem::take(&mut self.running) {
            stop_child(&mut r);
        }
        for (mut child, _) in std::mem::take(&mut self.stopping) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&self, r: &mut Running) -> Result<(), String> {
        let (program, args) = r
            .spec
            .argv
            .split_first()
            .ok_or_else(|| format!("child {}: empty argv", r.spec.name))?;
        let log_path = self.log_dir.join(format!("{}.log", r.spec.name));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start {} ({program}): {e}", r.spec.name))?;
        tracing::info!(child = %r.spec.name, pid = child.id(), "started");
        r.child = Some(child);
        r.started = Instant::now();
        Ok(())
    }
}

fn stop_child(r: &mut Running) {
    let Some(mut child) = r.child.take() else {
        return;
    };
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
