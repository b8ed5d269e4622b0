//! The instance's own daemons (unbound, Yggdrasil nodes): each a [`Group`] like a service
//! (own process group, dies with the supervisor, rotated log at `logs/<name>.log`),
//! restarted with the same backoff when it exits, stopped with SIGTERM then SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::control::Failure;
use super::group::{self, spawn_logged, Group, MIN_BACKOFF, STOP_GRACE};
use super::service_spec::DEFAULT_LOG_MAX_BYTES;
use super::spec::ChildSpec;

struct Running {
    spec: ChildSpec,
    child: Option<Group>,
    started: Instant,
    restarts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
}

pub use jrun_core::services::ChildStatus;

/// Every child the supervisor owns, by name.
pub struct Children {
    log_dir: PathBuf,
    running: BTreeMap<String, Running>,
    /// Children told to stop (SIGTERM, or SIGKILL when dropped from the spec), killed if
    /// still there at the deadline. Stopping does not block a reload: the caller's next
    /// step (e.g. deleting the namespace) goes on.
    stopping: Vec<(Group, Instant)>,
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
                // A child dropped from the spec is killed at once: only a removed jail's
                // Yggdrasil node is ever dropped, it keeps no state of its own (its key is
                // in the key store), and its namespace is deleted right after. A graceful
                // stop of 20 nodes costs a `down` tens of milliseconds of CPU they spend
                // shutting down. A child whose command changed is restarted, gracefully.
                let sig = if keep.contains_key(name.as_str()) {
                    Signal::SIGTERM
                } else {
                    Signal::SIGKILL
                };
                child.signal(sig);
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
            if child.reap_if_exited().is_some() {
                return false;
            }
            if *deadline <= now {
                child.kill_and_reap();
                return false;
            }
            true
        });
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let mut r = self.running.remove(&name).expect("name from keys");
            if let Some(child) = r.child.as_mut() {
                if let Some(status) = child.reap_if_exited() {
                    tracing::warn!(child = %name, %status, "child exited; restarting");
                    r.child = None;
                    let delay = group::restart_delay(&mut r.backoff, r.started.elapsed());
                    r.restart_at = Some(now + delay);
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
                pid: r.child.as_ref().map(|c| c.child.id()),
                restarts: r.restarts,
            })
            .collect()
    }

    /// Stops every child.
    pub fn stop_all(&mut self) {
        // Signal everyone first so they stop in parallel, then wait for each.
        let mut groups: Vec<Group> = std::mem::take(&mut self.running)
            .into_values()
            .filter_map(|r| r.child)
            .collect();
        groups.extend(
            std::mem::take(&mut self.stopping)
                .into_iter()
                .map(|(g, _)| g),
        );
        group::stop_groups(groups);
    }

    fn spawn(&self, r: &mut Running) -> Result<(), String> {
        let log = self.log_dir.join(format!("{}.log", r.spec.name));
        // The supervisor's own environment: these are jrun's daemons, not a jail's processes.
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let child = spawn_logged(&r.spec.argv, &env, &log, DEFAULT_LOG_MAX_BYTES, None)
            .map_err(|e| format!("child {}: {e}", r.spec.name))?;
        tracing::info!(child = %r.spec.name, pid = child.child.id(), "started");
        r.child = Some(child);
        r.started = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (state, pgrp) of `pid`.
    fn stat(pid: i32) -> Option<(String, i32)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<String> = s
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Some((f[0].clone(), f[2].parse().ok()?))
    }

    #[test]
    fn a_child_leads_its_own_group_logs_and_takes_its_group_along_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "sleep 300 & echo $! > {}; echo up; exec sleep 300",
            pids.display()
        );
        let mut c = Children::new(dir.path());
        let spec = ChildSpec {
            name: "daemon".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script],
        };
        assert!(c.converge(&[spec]).is_empty());
        let pid = c.status()[0].pid.unwrap() as i32;
        assert_eq!(stat(pid).unwrap().1, pid, "the child leads its own group");
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let bg: i32 = loop {
            if let Some(p) = std::fs::read_to_string(&pids)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let log = dir.path().join("daemon.log");
        while std::fs::read_to_string(&log).unwrap_or_default() != "up\n" {
            assert!(Instant::now() < deadline, "nothing logged");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        c.stop_all();
        let gone = |p: i32| stat(p).is_none_or(|(state, _)| state == "Z");
        while !gone(bg) {
            assert!(
                Instant::now() < deadline,
                "the background sleep outlived its child"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(gone(pid));
    }
}
