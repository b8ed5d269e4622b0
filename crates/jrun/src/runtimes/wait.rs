//! After the jails are up, `up` waits for the services it started or restarted to be ready
//! (healthy by their check; or alive and, when their jail has TCP forwards, accepting on
//! them), so that the first request after `up` returns is served. One rule for both
//! runtimes ([`jrun_core::services::readiness`]); each runtime only answers what its
//! services do and whether a jail's forwards accept.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jrun_core::services::{log_tail, now_ms, readiness, Readiness, ServiceStatus};

use crate::progress::Progress;

/// How often the services are looked at.
const POLL: Duration = Duration::from_millis(100);
/// How many lines of a service's log a timeout or failure shows.
const LOG_LINES: usize = 10;

/// What a runtime answers while `up` waits.
pub trait ServiceWatch {
    /// Every service of the instance.
    fn services(&self) -> Result<Vec<ServiceStatus>, String>;
    /// Whether the TCP forwards to `jail` accept connections (`None`: it has none).
    fn forwards_open(&self, jail: &str) -> Option<bool>;
}

pub use jrun_core::services::ServiceReady;

/// Waits until every service of `jails` that started at or after `since_ms` is ready, or
/// one has failed, or `timeout` has passed. Always returns every watched service's
/// readiness; `Err` carries the message naming those that are not ready (with their logs).
pub fn wait_ready(
    watch: &dyn ServiceWatch,
    jails: &BTreeSet<String>,
    since_ms: u64,
    timeout: Duration,
    progress: &mut Progress,
) -> (Vec<ServiceReady>, Result<(), String>) {
    let deadline = Instant::now() + timeout;
    let mut done: BTreeMap<String, ServiceReady> = BTreeMap::new();
    let mut last: BTreeMap<String, (ServiceStatus, String)> = BTreeMap::new();
    loop {
        let services = match watch.services() {
            Ok(s) => s,
            Err(e) => {
                return (
                    done.into_values().collect(),
                    Err(format!("cannot ask the services how they are: {e}")),
                )
            }
        };
        let now = now_ms();
        let mut ports: BTreeMap<String, Option<bool>> = BTreeMap::new();
        let mut failed = Vec::new();
        for s in services.iter().filter(|s| watched(s, jails, since_ms)) {
            let key = s.key();
            if done.contains_key(&key) {
                continue;
            }
            let open = if s.checked {
                None
            } else {
                *ports
                    .entry(s.jail.clone())
                    .or_insert_with(|| watch.forwards_open(&s.jail))
            };
            let waited = now.saturating_sub(s.started_at_ms.unwrap_or(since_ms));
            match readiness(s, now, open) {
                Readiness::Ready => {
                    progress.done(&key, &format!("ready ({})", seconds(waited)));
                    last.remove(&key);
                    done.insert(key, ready_row(s, true, waited, None));
                }
                Readiness::Waiting(why) => {
                    progress.step(&key, &why);
                    last.insert(key, (s.clone(), why));
                }
                Readiness::Failed(why) => {
                    progress.done(&key, "failed");
                    failed.push(format!("{key} failed: {why}{}", log_of(s)));
                    last.remove(&key);
                    done.insert(key, ready_row(s, false, waited, Some(why)));
                }
            }
        }
        if !failed.is_empty() {
            return (all_rows(done, &last), Err(failed.join("\n")));
        }
        if last.is_empty() {
            return (done.into_values().collect(), Ok(()));
        }
        if Instant::now() >= deadline {
            let msg = last
                .iter()
                .map(|(key, (s, why))| {
                    progress.done(key, "not ready");
                    format!(
                        "{key} was not ready after {} ({why}){}",
                        seconds(timeout.as_millis() as u64),
                        log_of(s)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            return (all_rows(done, &last), Err(msg));
        }
        std::thread::sleep(POLL);
    }
}

/// A service `up` waits for: one of its jails, (re)started by this run.
fn watched(s: &ServiceStatus, jails: &BTreeSet<String>, since_ms: u64) -> bool {
    jails.contains(&s.jail) && s.started_at_ms.is_some_and(|t| t >= since_ms)
}

fn ready_row(
    s: &ServiceStatus,
    ready: bool,
    waited_ms: u64,
    error: Option<String>,
) -> ServiceReady {
    ServiceReady {
        jail: s.jail.clone(),
        exec: s.name.clone(),
        ready,
        waited_ms,
        error,
    }
}

/// The finished rows and, not ready, those still waiting.
fn all_rows(
    done: BTreeMap<String, ServiceReady>,
    waiting: &BTreeMap<String, (ServiceStatus, String)>,
) -> Vec<ServiceReady> {
    let now = now_ms();
    let mut rows: Vec<ServiceReady> = done.into_values().collect();
    rows.extend(waiting.values().map(|(s, why)| {
        let waited = now.saturating_sub(s.started_at_ms.unwrap_or(now));
        ready_row(s, false, waited, Some(why.clone()))
    }));
    rows
}

/// The last lines of a service's log, indented, or nothing when it has none.
fn log_of(s: &ServiceStatus) -> String {
    let lines = log_tail(&s.log, LOG_LINES);
    if lines.is_empty() {
        return format!(" (its log {} is empty)", s.log.display());
    }
    let mut out = format!("\n  last lines of {}:", s.log.display());
    for l in lines {
        out.push_str("\n    ");
        out.push_str(&jrun_core::text::printable(&l));
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::services::ServiceState;
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// Answers a scripted sequence of service lists, then repeats the last.
    struct Script {
        answers: RefCell<Vec<Vec<ServiceStatus>>>,
        open: Option<bool>,
    }

    impl ServiceWatch for Script {
        fn services(&self) -> Result<Vec<ServiceStatus>, String> {
            let mut a = self.answers.borrow_mut();
            Ok(if a.len() > 1 {
                a.remove(0)
            } else {
                a[0].clone()
            })
        }
        fn forwards_open(&self, _jail: &str) -> Option<bool> {
            self.open
        }
    }

    fn svc(jail: &str, state: ServiceState, healthy: bool, started: u64) -> ServiceStatus {
        ServiceStatus {
            jail: jail.into(),
            name: "http".into(),
            state,
            pid: Some(1),
            restarts: 0,
            health: None,
            log: PathBuf::from("/nonexistent/http.log"),
            error: None,
            checked: true,
            healthy,
            started_at_ms: Some(started),
        }
    }

    fn jails(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn waits_for_the_first_passing_check_of_services_started_by_this_run() {
        let since = now_ms();
        let script = Script {
            answers: RefCell::new(vec![
                vec![svc("web", ServiceState::Running, false, since)],
                vec![svc("web", ServiceState::Running, false, since)],
                // An older service of another jail is never waited for, healthy or not.
                vec![
                    svc("web", ServiceState::Running, true, since),
                    svc("db", ServiceState::Running, false, since - 5_000),
                ],
            ]),
            open: None,
        };
        let (rows, result) = wait_ready(
            &script,
            &jails(&["web", "db"]),
            since,
            Duration::from_secs(5),
            &mut Progress::Silent,
        );
        result.unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].ready && rows[0].jail == "web", "{rows:?}");
    }

    #[test]
    fn a_failed_service_ends_the_wait_at_once_and_is_named() {
        let since = now_ms();
        let mut failed = svc("web", ServiceState::Failed, false, since);
        failed.error = Some("exited 6 times within 60s".into());
        let script = Script {
            answers: RefCell::new(vec![vec![failed]]),
            open: None,
        };
        let started = Instant::now();
        let (rows, result) = wait_ready(
            &script,
            &jails(&["web"]),
            since,
            Duration::from_secs(30),
            &mut Progress::Silent,
        );
        let err = result.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.starts_with("web/http failed: exited 6 times"), "{err}");
        assert!(err.contains("/nonexistent/http.log"), "{err}");
        assert!(!rows[0].ready);
    }

    #[test]
    fn the_wait_is_bounded_and_names_what_is_not_ready_with_its_log() {
        let since = now_ms();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("http.log");
        std::fs::write(&log, "starting\nbind: address in use\n").unwrap();
        let mut s = svc("web", ServiceState::Running, false, since);
        s.checked = false;
        s.log = log;
        let script = Script {
            answers: RefCell::new(vec![vec![s]]),
            open: Some(false),
        };
        let (rows, result) = wait_ready(
            &script,
            &jails(&["web"]),
            since,
            Duration::from_millis(900),
            &mut Progress::Silent,
        );
        let err = result.unwrap_err();
        assert!(err.contains("web/http was not ready after 0.9s"), "{err}");
        assert!(err.contains("forwarded port"), "{err}");
        assert!(err.contains("bind: address in use"), "{err}");
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].ready);
    }
}
