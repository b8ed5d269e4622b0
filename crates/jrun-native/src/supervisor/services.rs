//! The jails' services under the supervisor: each runs in its own process group (killed as
//! a whole, so no descendant outlives it) with `PR_SET_PDEATHSIG` (it dies with the
//! supervisor), restarted with exponential backoff when it exits, marked failed after too
//! many exits in a window, and restarted when its health check fails `retries` times in a row.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::control::Failure;
use super::escaped;
use super::group::{self, spawn_logged, stop_groups, Group, MIN_BACKOFF};
use super::service_spec::{ServiceSet, ServiceSpec};

mod health;
use health::Check;

/// More than `MAX_EXITS` exits within `EXIT_WINDOW` mark the service failed (no more restarts
/// until its definition changes or the jail is redeployed).
const MAX_EXITS: usize = 5;
const EXIT_WINDOW: Duration = Duration::from_secs(60);
/// A leader that exits 0 this soon, leaving processes in its jail, daemonised.
const DAEMONISED_WITHIN: Duration = Duration::from_secs(1);

pub use jrun_core::services::{ServiceState, ServiceStatus};

struct Service {
    spec: ServiceSpec,
    proc: Option<Group>,
    /// Set when the running process was told to stop (health restart): since when.
    stopping: Option<Instant>,
    started: Instant,
    /// When the current process started, for `status` (ms since the epoch).
    started_at_ms: Option<u64>,
    restarts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
    exits: VecDeque<Instant>,
    failed: Option<String>,
    check: Option<Check>,
    next_check: Instant,
    failures_in_a_row: u32,
    last_health: Option<String>,
    /// A health check passed since the current process started.
    healthy: bool,
}

/// Every service of the instance, by `<jail>/<exec>`.
#[derive(Default)]
pub struct Services {
    log_max_bytes: u64,
    running: BTreeMap<String, Service>,
}

impl Services {
    /// Converges to `set`: stops (and waits for) services removed or changed, starts new
    /// ones. Unchanged services keep running untouched. Returns start failures.
    pub fn converge(&mut self, set: &ServiceSet) -> Vec<Failure> {
        self.log_max_bytes = set.log_max_bytes;
        let wanted: BTreeMap<String, &ServiceSpec> =
            set.services.iter().map(|s| (s.key(), s)).collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(key, s)| wanted.get(key.as_str()) != Some(&&s.spec))
            .map(|(key, _)| key.clone())
            .collect();
        let mut groups = Vec::new();
        let mut netns = Vec::new();
        for key in stale {
            if let Some(s) = self.running.remove(&key) {
                tracing::info!(service = %key, "stopping");
                netns.extend(escaped::netns_of(&s.spec.argv).map(Path::to_path_buf));
                groups.extend(s.into_groups());
            }
        }
        stop_groups(groups);
        kill_escaped(&netns);
        let mut errors = Vec::new();
        for (key, spec) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let mut s = Service::new(spec.clone());
            if let Err(e) = s.spawn(self.log_max_bytes) {
                errors.push(Failure {
                    key: key.clone(),
                    error: e.clone(),
                });
                s.failed_start(e);
            }
            self.running.insert(key, s);
        }
        errors
    }

    /// Reaps, restarts and health-checks; called about every 100 ms.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let max = self.log_max_bytes;
        for s in self.running.values_mut() {
            s.tick(now, max);
        }
    }

    /// Starts again the failed services of `jails` with a clean slate (no exits counted);
    /// returns their status.
    pub fn revive_failed(&mut self, jails: &[String]) -> Vec<ServiceStatus> {
        let max = self.log_max_bytes;
        let mut revived = Vec::new();
        for s in self.running.values_mut() {
            if s.failed.is_none() || !jails.contains(&s.spec.jail) {
                continue;
            }
            tracing::info!(service = %s.spec.key(), "reviving a failed service");
            s.failed = None;
            s.exits.clear();
            s.backoff = MIN_BACKOFF;
            s.restarts += 1;
            if let Err(e) = s.spawn(max) {
                s.failed_start(e);
            }
            revived.push(s.status());
        }
        revived
    }

    pub fn status(&self) -> Vec<ServiceStatus> {
        self.running.values().map(Service::status).collect()
    }

    /// Stops every service and waits for their groups to go.
    pub fn stop_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        let netns: Vec<PathBuf> = running
            .values()
            .filter_map(|s| escaped::netns_of(&s.spec.argv).map(Path::to_path_buf))
            .collect();
        stop_groups(
            running
                .into_values()
                .flat_map(Service::into_groups)
                .collect(),
        );
        kill_escaped(&netns);
    }
}

impl Service {
    fn new(spec: ServiceSpec) -> Self {
        let now = Instant::now();
        let interval = spec
            .health
            .as_ref()
            .map_or(Duration::ZERO, |h| Duration::from_millis(h.interval_ms));
        Service {
            spec,
            proc: None,
            stopping: None,
            started: now,
            started_at_ms: None,
            restarts: 0,
            backoff: MIN_BACKOFF,
            restart_at: None,
            exits: VecDeque::new(),
            failed: None,
            check: None,
            next_check: now + interval,
            failures_in_a_row: 0,
            last_health: None,
            healthy: false,
        }
    }

    fn into_groups(mut self) -> Vec<Group> {
        let mut groups: Vec<Group> = self.proc.take().into_iter().collect();
        groups.extend(self.check.take().map(|c| c.group));
        groups
    }

    fn spawn(&mut self, log_max_bytes: u64) -> Result<(), String> {
        let key = self.spec.key();
        let identity = self
            .spec
            .run_as
            .as_ref()
            .map(group::Identity::resolve)
            .transpose()
            .map_err(|e| format!("service {key}: {e}"))?;
        // Every process the service starts inherits this mark, so one that escapes its
        // group is told apart from a sibling's (see `escaped`).
        let mut env = self.spec.env.clone();
        env.insert(escaped::SERVICE_MARK.into(), key.to_string());
        let group = spawn_logged(
            &self.spec.argv,
            &env,
            &self.spec.log,
            log_max_bytes,
            identity.as_ref(),
        )
        .map_err(|e| format!("service {key}: {e}"))?;
        tracing::info!(service = %key, pid = group.child.id(), "started");
        self.proc = Some(group);
        self.started = Instant::now();
        self.started_at_ms = Some(jrun_core::services::now_ms());
        self.stopping = None;
        self.restart_at = None;
        self.failures_in_a_row = 0;
        self.healthy = false;
        if let Some(h) = &self.spec.health {
            self.next_check = self.started + health::first_check_after(h);
        }
        Ok(())
    }

    fn failed_start(&mut self, e: String) {
        tracing::error!(service = %self.spec.key(), error = %e, "start failed");
        self.record_exit(Instant::now(), e);
    }

    /// Counts an exit; schedules the restart or gives up.
    fn record_exit(&mut self, now: Instant, why: String) {
        self.exits.push_back(now);
        while self.exits.front().is_some_and(|t| now - *t > EXIT_WINDOW) {
            self.exits.pop_front();
        }
        if self.exits.len() > MAX_EXITS {
            let msg = format!(
                "exited {} times within {}s (last: {why}); fix it and run `jrun up` again",
                self.exits.len(),
                EXIT_WINDOW.as_secs()
            );
            tracing::error!(service = %self.spec.key(), "{msg}");
            self.failed = Some(msg);
            self.restart_at = None;
            return;
        }
        let delay = group::restart_delay(&mut self.backoff, self.started.elapsed());
        tracing::warn!(service = %self.spec.key(), %why, delay_ms = delay.as_millis() as u64, "restarting");
        self.restart_at = Some(now + delay);
    }

    fn tick(&mut self, now: Instant, log_max_bytes: u64) {
        if self.failed.is_some() {
            return;
        }
        if let Some(group) = self.proc.as_mut() {
            // Whatever the leader left behind in its group goes with it.
            if let Some(status) = group.reap_if_exited() {
                self.proc = None;
                self.kill_check();
                // Only what this service started is blamed on it and killed: a sibling's
                // escaped child is the sibling's business.
                let key = self.spec.key().to_string();
                let left = escaped::netns_of(&self.spec.argv)
                    .map(|ns| escaped::escaped_from(ns, &key))
                    .unwrap_or_default();
                if !left.is_empty() {
                    escaped::kill(&left);
                    tracing::warn!(service = %self.spec.key(), ?left, "killed processes that left their service's group");
                    if status.success() && now - self.started < DAEMONISED_WITHIN {
                        let msg = format!(
                            "exited 0 at once, leaving processes outside its process group (pids {left:?}, now killed): did it daemonise? Services must run in the foreground (e.g. `nginx -g 'daemon off;'`); fix `cmd` and run `jrun up` again"
                        );
                        tracing::error!(service = %self.spec.key(), "{msg}");
                        self.stopping = None;
                        self.failed = Some(msg);
                        self.restart_at = None;
                        return;
                    }
                }
                if self.stopping.take().is_some() {
                    self.restart_at = Some(now);
                } else {
                    self.record_exit(now, status.to_string());
                }
            } else if self.stopping.is_some_and(|t| now - t > group::STOP_GRACE) {
                group.signal(Signal::SIGKILL);
            }
        }
        if self.proc.is_some() && self.stopping.is_none() {
            self.health_tick(now);
        }
        if self.proc.is_none() && self.restart_at.is_some_and(|t| t <= now) {
            self.restarts += 1;
            if let Err(e) = self.spawn(log_max_bytes) {
                self.failed_start(e);
            }
        }
    }

    fn status(&self) -> ServiceStatus {
        let state = if self.failed.is_some() {
            ServiceState::Failed
        } else if self.proc.is_some() && self.stopping.is_none() {
            ServiceState::Running
        } else {
            ServiceState::Restarting
        };
        ServiceStatus {
            jail: self.spec.jail.clone(),
            name: self.spec.exec.clone(),
            state,
            pid: self.proc.as_ref().map(|g| g.child.id()),
            restarts: self.restarts,
            health: self.last_health.clone(),
            log: self.spec.log.clone(),
            error: self.failed.clone(),
            checked: self.spec.health.is_some(),
            healthy: self.healthy && self.proc.is_some(),
            started_at_ms: self.started_at_ms,
        }
    }
}

/// Kills what escaped its service's group in each of these jails' namespaces.
fn kill_escaped(netns: &[PathBuf]) {
    let mut seen = std::collections::BTreeSet::new();
    for ns in netns.iter().filter(|ns| seen.insert(*ns)) {
        let left = escaped::escaped(ns);
        if !left.is_empty() {
            tracing::warn!(netns = %ns.display(), ?left, "killed processes that left their service's group");
            escaped::kill(&left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::service_spec::HealthSpec;

    fn spec(dir: &std::path::Path, name: &str, script: &str) -> ServiceSpec {
        ServiceSpec {
            jail: "web".into(),
            exec: name.into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
            log: dir.join("web").join(format!("{name}.log")),
            health: None,
            generation: "1".into(),
            run_as: None,
        }
    }

    /// Ticks until `pred` holds for the first service's status, or fails after a generous
    /// deadline (no fixed wall-clock window: two busy cores must not make it flaky).
    fn tick_until(s: &mut Services, what: &str, pred: impl Fn(&ServiceStatus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            s.tick();
            if s.status().first().is_some_and(&pred) {
                return;
            }
            assert!(Instant::now() < deadline, "never {what}: {:?}", s.status());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn a_service_that_exits_is_restarted_and_output_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Services::default();
        let set = ServiceSet {
            services: vec![spec(dir.path(), "blink", "echo hello $PATH; sleep 0.1")],
            ..Default::default()
        };
        assert!(s.converge(&set).is_empty());
        tick_until(&mut s, "restarted", |st| st.restarts >= 1);
        let log = std::fs::read_to_string(dir.path().join("web/blink.log")).unwrap();
        assert!(log.starts_with("hello /usr/bin:/bin\n"), "{log}");
        s.stop_all();
    }

    #[test]
    fn too_many_exits_mark_the_service_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Services::default();
        let mut sp = spec(dir.path(), "crash", "exit 3");
        sp.argv[2] = "exit 3".into();
        s.converge(&ServiceSet {
            services: vec![sp],
            ..Default::default()
        });
        // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of backoff before the sixth exit, well inside the
        // 60 s window: exactly five restarts, then no more.
        tick_until(&mut s, "failed", |st| st.state == ServiceState::Failed);
        let st = &s.status()[0];
        assert_eq!(st.state, ServiceState::Failed, "{st:?}");
        assert_eq!(st.restarts, 5);
        assert!(st.error.as_deref().unwrap().contains("exit status: 3"));
    }

    #[test]
    fn a_starting_service_is_checked_often_and_its_early_failures_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("listening");
        let mut sp = spec(dir.path(), "svc", "exec sleep 30");
        // At this interval the first check would come after 5 s, and 3 failures would
        // restart it; while it starts, it is checked every 200 ms and not restarted.
        sp.health = Some(HealthSpec {
            argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
            interval_ms: 5_000,
            timeout_ms: 1_000,
            retries: 3,
        });
        let mut s = Services::default();
        s.converge(&ServiceSet {
            services: vec![sp],
            ..Default::default()
        });
        let started = Instant::now();
        tick_until(&mut s, "checked", |st| st.health.is_some());
        assert!(started.elapsed() < Duration::from_secs(2));
        let before = s.status()[0].clone();
        assert_eq!(before.health.as_deref(), Some("unhealthy (exit 1)"));
        assert!(before.checked && !before.healthy, "{before:?}");
        assert!(before.started_at_ms.is_some());
        // Several failed checks later it is still the same process.
        let until = Instant::now() + Duration::from_millis(800);
        while Instant::now() < until {
            s.tick();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(s.status()[0].pid, before.pid);
        assert_eq!(s.status()[0].restarts, 0);

        std::fs::write(&flag, "").unwrap();
        let listening = Instant::now();
        tick_until(&mut s, "healthy", |st| st.healthy);
        assert!(listening.elapsed() < Duration::from_secs(2));
        assert_eq!(s.status()[0].pid, before.pid);
        s.converge(&ServiceSet::default());
    }

    #[test]
    fn a_failing_health_check_restarts_and_removal_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("healthy");
        std::fs::write(&flag, "").unwrap();
        let mut sp = spec(dir.path(), "svc", "sleep 30 & sleep 30; wait");
        sp.health = Some(HealthSpec {
            argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
            interval_ms: 100,
            timeout_ms: 1000,
            retries: 2,
        });
        let mut s = Services::default();
        let set = ServiceSet {
            services: vec![sp],
            ..Default::default()
        };
        s.converge(&set);
        tick_until(&mut s, "healthy", |st| st.health.is_some());
        let first = s.status()[0].clone();
        assert_eq!(first.health.as_deref(), Some("healthy"));
        assert_eq!(first.restarts, 0);
        std::fs::remove_file(&flag).unwrap();
        tick_until(&mut s, "restarted", |st| {
            st.restarts >= 1 && st.state == ServiceState::Running
        });
        let after = s.status()[0].clone();
        assert!(after.restarts >= 1, "{after:?}");
        assert_ne!(after.pid, first.pid);
        assert!(!alive(first.pid.unwrap()));

        let pid = after.pid.unwrap();
        s.converge(&ServiceSet::default());
        assert!(s.status().is_empty());
        assert!(!alive(pid));
        // No process of the old group is left (the background `sleep 30` included).
        let group_left = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter_map(|st| {
                let rest = st.rsplit_once(')')?.1.to_string();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some((f[0].to_string(), f[2].parse::<u32>().ok()?))
            })
            .any(|(state, pgrp)| pgrp == pid && state != "Z");
        assert!(!group_left);
    }

    /// `exec … user`: the service and its check run as that user (here `nobody`), with no
    /// supplementary group, after the supervisor entered the namespaces (here its own:
    /// the credentials are what is tested; the end-to-end test uses a real jail).
    #[test]
    fn a_service_with_a_user_and_its_check_run_as_that_user_with_no_other_group() {
        use crate::supervisor::service_spec::RunAs;
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut sp = spec(
            dir.path(),
            "svc",
            "grep -E '^(Uid|Gid|Groups):' /proc/self/status; exec sleep 30",
        );
        sp.run_as = Some(RunAs {
            user: "nobody".into(),
            net: "/proc/self/ns/net".into(),
            mount: "/proc/self/ns/mnt".into(),
        });
        // Healthy only when the check itself runs as nobody.
        let want = format!("^Uid:\t{0}\t{0}\t{0}\t{0}$", nobody.uid);
        sp.health = Some(HealthSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("grep -q \"$(printf '{want}')\" /proc/self/status"),
            ],
            interval_ms: 200,
            timeout_ms: 5_000,
            retries: 3,
        });
        let mut s = Services::default();
        assert!(s
            .converge(&ServiceSet {
                services: vec![sp.clone()],
                ..Default::default()
            })
            .is_empty());
        tick_until(&mut s, "healthy", |st| st.healthy);
        let log = std::fs::read_to_string(dir.path().join("web/svc.log")).unwrap();
        let u = nobody.uid;
        let g = nobody.gid;
        assert!(
            log.contains(&format!("Uid:\t{u}\t{u}\t{u}\t{u}\n")),
            "{log}"
        );
        assert!(
            log.contains(&format!("Gid:\t{g}\t{g}\t{g}\t{g}\n")),
            "{log}"
        );
        let groups = log.lines().find_map(|l| l.strip_prefix("Groups:")).unwrap();
        assert_eq!(groups.trim(), "", "no supplementary group: {log}");
        s.stop_all();
        // A user that does not exist is a failed start, not a service running as root.
        sp.run_as.as_mut().unwrap().user = "no-such-user-jrun".into();
        let mut s = Services::default();
        let failures = s.converge(&ServiceSet {
            services: vec![sp],
            ..Default::default()
        });
        assert_eq!(failures.len(), 1, "{:?}", s.status());
        s.stop_all();
    }

    #[test]
    fn an_empty_argv_is_a_failed_start_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = spec(dir.path(), "empty", "");
        sp.argv.clear();
        let mut s = Services::default();
        let errors = s.converge(&ServiceSet {
            services: vec![sp],
            ..Default::default()
        });
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].error.contains("(empty command)"),
            "{:?}",
            errors[0]
        );
        s.stop_all();
    }

    #[test]
    fn what_an_exited_leader_left_in_its_group_is_killed_before_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 300 & echo $! >> {}; exit 0", pids.display());
        let mut s = Services::default();
        s.converge(&ServiceSet {
            services: vec![spec(dir.path(), "leaver", &script)],
            ..Default::default()
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let first: u32 = loop {
            s.tick();
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let restarted = s.status()[0].restarts >= 1;
            if let (Some(line), true) = (text.lines().next(), restarted) {
                break line.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no restart");
            std::thread::sleep(Duration::from_millis(20));
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(first) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(first),
            "the background sleep {first} outlived its leader"
        );
        s.stop_all();
    }
}
