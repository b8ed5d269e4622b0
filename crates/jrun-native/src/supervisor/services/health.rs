//! A service's health check: run every `interval`, killed after `timeout`, and after
//! `retries` failures in a row the service is told to stop (the restart follows).
//!
//! Until its first check passes, a service is starting: it is checked every
//! [`STARTING_INTERVAL`] (so `jrun up`, which waits for it, returns soon after it listens),
//! and failures are not counted against it until the time its `retries` checks would have
//! taken at `interval` has passed (like Docker's start period).

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Service;
use crate::supervisor::group::{spawn_group, Group, Identity};
use crate::supervisor::service_spec::HealthSpec;

/// How often a starting service is checked (at most; never more often than `interval`).
pub(super) const STARTING_INTERVAL: Duration = Duration::from_millis(200);

/// When a service's first check runs after it started.
pub(super) fn first_check_after(h: &HealthSpec) -> Duration {
    Duration::from_millis(h.interval_ms).min(STARTING_INTERVAL)
}

/// How long a starting service's failed checks are not counted.
fn start_period(h: &HealthSpec) -> Duration {
    Duration::from_millis(h.interval_ms).saturating_mul(h.retries.max(1))
}

/// A health check in flight.
pub(super) struct Check {
    pub(super) group: Group,
    deadline: Instant,
}

impl Service {
    pub(super) fn health_tick(&mut self, now: Instant) {
        let Some(h) = self.spec.health.clone() else {
            return;
        };
        let result = match self.check.as_mut() {
            Some(c) => match c.group.reap_if_exited() {
                Some(st) if st.success() => Some(Ok(())),
                Some(st) => Some(Err(match st.code() {
                    Some(code) => format!("unhealthy (exit {code})"),
                    None => format!("unhealthy ({st})"),
                })),
                None if now >= c.deadline => {
                    c.group.kill_and_reap();
                    Some(Err(format!("timed out after {} ms", h.timeout_ms)))
                }
                None => None,
            },
            None => {
                if now >= self.next_check {
                    self.next_check = now + Duration::from_millis(h.interval_ms);
                    // The check runs as the service's user, in its jail.
                    let identity = self.spec.run_as.as_ref().map(Identity::resolve).transpose();
                    let spawned = identity
                        .map_err(|e| format!("cannot run the check: {e}"))
                        .and_then(|identity| {
                            spawn_group(
                                &h.argv,
                                &self.spec.env,
                                Stdio::null(),
                                Stdio::null(),
                                identity.as_ref(),
                            )
                            .map_err(|e| format!("cannot run the check: {e}"))
                        });
                    match spawned {
                        Ok(group) => {
                            self.check = Some(Check {
                                group,
                                deadline: now + Duration::from_millis(h.timeout_ms),
                            });
                            None
                        }
                        Err(e) => Some(Err(e)),
                    }
                } else {
                    None
                }
            }
        };
        let Some(result) = result else {
            return;
        };
        // The check's group was reaped above (or is killed and reaped now).
        self.kill_check();
        match result {
            Ok(()) => {
                self.failures_in_a_row = 0;
                self.healthy = true;
                self.last_health = Some("healthy".into());
            }
            Err(why) if !self.healthy && now - self.started < start_period(&h) => {
                tracing::debug!(service = %self.spec.key(), %why, "starting: health check not passed yet");
                self.last_health = Some(why);
                self.next_check = now + first_check_after(&h);
            }
            Err(why) => {
                self.failures_in_a_row += 1;
                tracing::warn!(service = %self.spec.key(), %why, in_a_row = self.failures_in_a_row, "health check failed");
                self.last_health = Some(why);
                if self.failures_in_a_row >= h.retries.max(1) {
                    tracing::warn!(service = %self.spec.key(), "unhealthy; restarting");
                    if let Some(g) = &self.proc {
                        g.signal(Signal::SIGTERM);
                    }
                    self.stopping = Some(now);
                    self.failures_in_a_row = 0;
                }
            }
        }
    }

    pub(super) fn kill_check(&mut self) {
        if let Some(mut c) = self.check.take() {
            if c.group.child.try_wait().ok().flatten().is_none() {
                c.group.kill_and_reap();
            }
        }
    }
}
