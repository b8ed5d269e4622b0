//! A jail's services (`exec`) as every runtime reports them, and when one counts as ready.
//!
//! `jrun up` returns only once every service it started or restarted is ready; the rule
//! for "ready" lives here so that both runtimes answer it the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a service is doing, as `jrun status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    /// Exited or being restarted; back after its backoff.
    Restarting,
    /// Exited too often; given up on.
    Failed,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceState::Running => "running",
            ServiceState::Restarting => "restarting",
            ServiceState::Failed => "failed",
        })
    }
}

/// One service's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub jail: String,
    pub name: String,
    pub state: ServiceState,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// The last health check: `healthy`, `unhealthy (exit 1)`, `timed out`; none yet: `None`.
    pub health: Option<String>,
    pub log: PathBuf,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the service has a health check.
    #[serde(default)]
    pub checked: bool,
    /// A health check passed since the current process started.
    #[serde(default)]
    pub healthy: bool,
    /// When its process last started (ms since the Unix epoch), even if it has exited since;
    /// `None` before the first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
}

impl ServiceStatus {
    /// `<jail>/<exec>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.jail, self.name)
    }
}

/// What an instance reports per long-lived process of its own (resolver, nodes…).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChildStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub restarts: u32,
}

/// Whether a service `up` started or restarted became ready, and how soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReady {
    pub jail: String,
    pub exec: String,
    pub ready: bool,
    /// From its start to ready (or to giving up), in ms.
    pub waited_ms: u64,
    /// Why it is not ready, with the end of its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long a service without a health check must stay up before it counts as ready: a
/// command that cannot start (a typo, a missing binary) has exited by then.
pub const ALIVE_FOR: Duration = Duration::from_millis(500);

/// Where a service stands on its way to ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; why, for the spinner.
    Waiting(String),
    /// It will not become ready without a change (given up on); why.
    Failed(String),
}

/// Whether `s` is ready. `now_ms` is the current time (ms since the epoch). `forwards_open`
/// says whether the TCP ports forwarded to its jail accept connections (`None`: the jail
/// has none): it matters only for a service without a health check, whose liveness alone
/// says nothing of whether it listens yet.
pub fn readiness(s: &ServiceStatus, now_ms: u64, forwards_open: Option<bool>) -> Readiness {
    match s.state {
        ServiceState::Failed => {
            return Readiness::Failed(s.error.clone().unwrap_or_else(|| "failed".into()))
        }
        ServiceState::Restarting => {
            return Readiness::Waiting(format!("restarting (restarts: {})", s.restarts))
        }
        ServiceState::Running => {}
    }
    if s.checked {
        return if s.healthy {
            Readiness::Ready
        } else {
            Readiness::Waiting(match &s.health {
                Some(last) => format!("health check: {last}"),
                None => "waiting for its first health check".into(),
            })
        };
    }
    let up_for = s
        .started_at_ms
        .map_or(0, |started| now_ms.saturating_sub(started));
    if up_for < ALIVE_FOR.as_millis() as u64 {
        return Readiness::Waiting("starting".into());
    }
    match forwards_open {
        Some(false) => {
            Readiness::Waiting("its forwarded port does not accept connections yet".into())
        }
        _ => Readiness::Ready,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The last `n` lines of a log file; empty when there is none.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ServiceState, checked: bool, healthy: bool, started: u64) -> ServiceStatus {
        ServiceStatus {
            jail: "web".into(),
            name: "http".into(),
            state,
            pid: Some(7),
            restarts: 0,
            health: None,
            log: PathBuf::from("/dev/null"),
            error: None,
            checked,
            healthy,
            started_at_ms: Some(started),
        }
    }

    #[test]
    fn a_checked_service_is_ready_only_once_a_check_passed() {
        let s = status(ServiceState::Running, true, false, 0);
        assert_eq!(
            readiness(&s, 10_000, Some(true)),
            Readiness::Waiting("waiting for its first health check".into())
        );
        let s = ServiceStatus {
            health: Some("unhealthy (exit 1)".into()),
            ..s
        };
        assert_eq!(
            readiness(&s, 10_000, None),
            Readiness::Waiting("health check: unhealthy (exit 1)".into())
        );
        let s = status(ServiceState::Running, true, true, 0);
        // The check is the whole answer: an open port does not replace it, a closed one
        // does not veto it.
        assert_eq!(readiness(&s, 1, Some(false)), Readiness::Ready);
    }

    #[test]
    fn an_unchecked_service_must_stay_up_and_its_forwards_accept() {
        let s = status(ServiceState::Running, false, false, 1_000);
        assert!(matches!(readiness(&s, 1_100, None), Readiness::Waiting(_)));
        assert_eq!(readiness(&s, 1_600, None), Readiness::Ready);
        assert!(matches!(
            readiness(&s, 1_600, Some(false)),
            Readiness::Waiting(w) if w.contains("forwarded port")
        ));
        assert_eq!(readiness(&s, 1_600, Some(true)), Readiness::Ready);
    }

    #[test]
    fn failed_and_restarting_services_are_not_ready() {
        let mut s = status(ServiceState::Failed, false, false, 0);
        s.error = Some("exited 6 times".into());
        assert_eq!(
            readiness(&s, 9_999, None),
            Readiness::Failed("exited 6 times".into())
        );
        let s = status(ServiceState::Restarting, true, true, 0);
        assert!(
            matches!(readiness(&s, 9_999, None), Readiness::Waiting(w) if w.starts_with("restarting"))
        );
    }

    #[test]
    fn the_tail_of_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert!(log_tail(&path, 3).is_empty());
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), ["c", "d"]);
        assert_eq!(log_tail(&path, 9), ["a", "b", "c", "d"]);
    }
}

/// What `jrun status` shows of the instance itself; each runtime fills what it can know
/// (a field it cannot know stays `None`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    /// The VM's QEMU process (vm) or the supervisor (native).
    pub pid: Option<u32>,
    /// Where SSH reaches the VM (`127.0.0.1:2222`).
    pub ssh: Option<String>,
    pub uptime_secs: Option<u64>,
    /// The guest's root filesystem.
    pub disk_used_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    /// The guest's memory: in use (physical minus what is free for programs) and in all.
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
}

/// One jail's processes, summed, for `jrun status --live`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JailUsage {
    pub jail: String,
    pub processes: u32,
    /// CPU time used so far by its live processes (native: the live view turns two samples
    /// into a percentage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// CPU use as the guest's `ps` reports it (vm), in percent of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Resident memory.
    pub rss_bytes: u64,
}
