//! What runs in a deployed jail besides its network: its mount namespace and `mount`s, its
//! `setup` steps (on create and with `--provision`) and its `exec` services, handed to the
//! supervisor through `run/services.json`.

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use jrun_core::config::{Exec, JailName, Proto};
use jrun_core::net::Redirect;
use jrun_core::plan::{JailPlan, Op};
use jrun_core::runtime::RuntimeError;

use crate::names::Layout;
use crate::runtime::{other, NativeRuntime};
use crate::supervisor::control::{self, Request};
use crate::supervisor::service_spec::{HealthSpec, RunAs, ServiceSet, ServiceSpec};
use crate::{jailns, setup};

/// How long a readiness probe of a forward waits for the jail to answer.
const FORWARD_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// `JRUN_LOG_MAX_BYTES`: the size at which service logs rotate (default 1 MiB).
const LOG_MAX_ENV: &str = "JRUN_LOG_MAX_BYTES";

/// `logs/<jail>/<exec>.log`.
pub fn service_log(layout: &Layout, jail: &JailName, exec: &str) -> std::path::PathBuf {
    layout
        .log_dir()
        .join(jail.as_str())
        .join(format!("{exec}.log"))
}

/// The supervisor's spec for one exec of a deployed jail; `deploy` names the provisioning
/// its services belong to (a new one restarts them, after setup ran again).
///
/// With a `user`, the argv does not enter the jail itself: the supervisor enters it and
/// drops to the user before exec (`run_as`), for the service and its check alike.
pub fn service_spec(layout: &Layout, jail: &JailName, exec: &Exec, deploy: &str) -> ServiceSpec {
    let dir = exec.dir.as_deref().unwrap_or("/");
    let sh = |script: &str| vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
    let mut env = setup::base_env();
    env.extend(exec.env.clone());
    let run_as = exec.user.as_ref().map(|u| RunAs {
        user: u.as_str().to_string(),
        net: std::path::Path::new("/run/netns").join(layout.jail_ns(jail)),
        mount: jailns::mntns_file(layout, jail),
    });
    let argv = |script: &str| match run_as {
        Some(_) => jailns::in_jail_argv(dir, &sh(script)),
        None => jailns::jail_argv(layout, jail, dir, &sh(script)),
    };
    ServiceSpec {
        jail: jail.to_string(),
        exec: exec.name.clone(),
        argv: argv(&exec.cmd),
        env,
        log: service_log(layout, jail, &exec.name),
        health: exec.healthcheck.as_ref().map(|h| HealthSpec {
            argv: argv(&h.test),
            interval_ms: h.interval.as_millis() as u64,
            timeout_ms: h.timeout.as_millis() as u64,
            retries: h.retries,
        }),
        generation: format!("{}#{deploy}", jailns::generation(layout, jail)),
        run_as,
    }
}

/// A deploy id not used before: the time in nanoseconds.
fn fresh_deploy_id() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

impl NativeRuntime {
    fn services_file(&self) -> std::path::PathBuf {
        ServiceSet::path(&self.layout.run_dir())
    }

    /// Brings a jail whose network is deployed to what its plan describes: mount namespace
    /// and mounts, setup steps when the plan rebuilds it or asks for them, then its services
    /// (only changed ones restart). `progress` hears the phase and each setup output line.
    pub fn deploy_workload(
        &self,
        jp: &JailPlan,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), RuntimeError> {
        let jail = jp.name();
        let runner = self.runner.as_ref();
        let fail = |what: &str, e: String| other(format!("jail `{jail}`, {what}"), e);
        progress("mounts");
        jailns::ensure(&self.layout, jail).map_err(|e| fail("mount namespace", e))?;
        jailns::apply_mounts(runner, &self.layout, jail, &jp.jail.mounts)
            .map_err(|e| fail("mounts", e))?;
        let run_setup = jp.is_rebuild() || jp.actions.iter().any(|a| a.op == Op::RunSetup);
        if run_setup {
            // Deployed again: what an interrupted run left in the jail goes first (see
            // `sweep`), before its setup steps run again.
            let netns = std::path::Path::new("/run/netns").join(self.layout.jail_ns(jail));
            let killed = crate::sweep::sweep(&netns);
            if !killed.is_empty() {
                tracing::warn!(
                    "jail `{jail}`: killed {} process(es) an interrupted run left behind (pids {killed:?})",
                    killed.len()
                );
            }
        }
        if run_setup && !jp.jail.setup.is_empty() {
            setup::run_steps(&self.layout, jail, &jp.jail.setup, &mut |step, line| {
                progress(&format!("setup {step}: {line}"));
            })
            .map_err(|message| other("setup", message))?;
        }
        progress("services");
        // Setup ran again (rebuild or --provision): the services restart after it, even
        // where their definition is unchanged; otherwise they keep their deploy id.
        let deploy = if run_setup {
            fresh_deploy_id()
        } else {
            self.current_deploy_id(jail)
        };
        let services = jp
            .jail
            .execs
            .iter()
            .map(|e| service_spec(&self.layout, jail, e, &deploy))
            .collect();
        self.set_services(jail, services)
    }

    /// The deploy id the jail's services run under now ("0" when it has none).
    fn current_deploy_id(&self, jail: &JailName) -> String {
        ServiceSet::read(&self.services_file())
            .ok()
            .and_then(|set| {
                set.services
                    .iter()
                    .find(|s| s.jail == jail.as_str())
                    .and_then(|s| s.generation.rsplit_once('#'))
                    .map(|(_, id)| id.to_string())
            })
            .unwrap_or_else(|| "0".to_string())
    }

    /// Asks the supervisor to start again the failed services of `jails` (after the user
    /// fixed what made them fail and ran `up`). Returns the `<jail>/<exec>` keys revived.
    pub fn revive_failed_services(&self, jails: &[JailName]) -> Result<Vec<String>, RuntimeError> {
        let req = Request::Revive(jails.iter().map(|j| j.to_string()).collect());
        let resp = control::request(&self.layout.control_socket(), &req)
            .map_err(|e| other("cannot reach the supervisor", e))?;
        if !resp.ok {
            return Err(other(
                "the supervisor could not restart the failed services",
                resp.error.unwrap_or_default(),
            ));
        }
        Ok(resp
            .services
            .into_iter()
            .map(|s| format!("{}/{}", s.jail, s.name))
            .collect())
    }

    /// Stops the jail's services and drops its mount namespace (its network is separate).
    /// Best effort: the mount namespace goes even when the services' step failed; every
    /// error is reported.
    pub fn remove_workload(&self, jail: &JailName) -> Result<(), RuntimeError> {
        let mut errors = Vec::new();
        if crate::instance::supervisor_pid(&self.layout).is_some() {
            match ServiceSet::read(&self.services_file()) {
                Ok(set) if set.services.iter().any(|s| s.jail == jail.as_str()) => {
                    if let Err(e) = self.set_services(jail, Vec::new()) {
                        errors.push(e.to_string());
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(format!("services: {e}")),
            }
        }
        if let Err(e) = jailns::remove(&self.layout, jail) {
            errors.push(format!("mount namespace: {e}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(other(format!("jail `{jail}`"), errors.join("; ")))
        }
    }

    /// Writes the services spec without the services of `jails` (untouched when none of
    /// them has any); the caller has the supervisor reload. Which of `jails` had services.
    pub(crate) fn drop_services(&self, jails: &[JailName]) -> Result<Vec<bool>, String> {
        let path = self.services_file();
        let mut set = ServiceSet::read(&path).map_err(|e| format!("services: {e}"))?;
        let with: Vec<bool> = jails
            .iter()
            .map(|j| set.services.iter().any(|s| s.jail == j.as_str()))
            .collect();
        if with.contains(&true) {
            for jail in jails {
                set.replace_jail(jail.as_str(), Vec::new());
            }
            set.write(&path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(with)
    }

    /// Drops the mount namespaces of `jails` (after their services stopped): best effort,
    /// one result per jail.
    pub(crate) fn remove_mount_namespaces(&self, jails: &[JailName]) -> Vec<Result<(), String>> {
        // In parallel: each unmount waits for an RCU grace period, and concurrent waits
        // share one.
        std::thread::scope(|scope| {
            let removals: Vec<_> = jails
                .iter()
                .map(|jail| scope.spawn(|| jailns::remove(&self.layout, jail)))
                .collect();
            removals
                .into_iter()
                .map(|removal| match removal.join() {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("mount namespace: {e}")),
                    Err(_) => Err("mount namespace: the removal panicked".into()),
                })
                .collect()
        })
    }

    fn set_services(
        &self,
        jail: &JailName,
        services: Vec<ServiceSpec>,
    ) -> Result<(), RuntimeError> {
        let _spec = self.lock_specs();
        let path = self.services_file();
        let mut set = ServiceSet::read(&path).map_err(|e| other("services", e))?;
        let before = set.clone();
        set.replace_jail(jail.as_str(), services);
        if let Some(max) = std::env::var(LOG_MAX_ENV).ok().and_then(|v| v.parse().ok()) {
            set.log_max_bytes = max;
        }
        // Reloaded even when unchanged: a reload that failed before (the supervisor was
        // busy or gone) is retried rather than skipped as "nothing to do".
        if set != before {
            set.write(&path).map_err(|source| RuntimeError::Io {
                what: "cannot write the services' spec".into(),
                path: path.clone(),
                source,
            })?;
        }
        let resp = control::request(&self.layout.control_socket(), &Request::Reload)
            .map_err(|e| other("cannot reach the supervisor", e))?;
        match resp.jail_error(jail.as_str()) {
            None => Ok(()),
            Some(e) => Err(other(
                format!("jail `{jail}`: the supervisor could not start every service"),
                e,
            )),
        }
    }

    /// Whether each of these TCP forwards reaches a listener in its jail right now, tried
    /// the way the host's forward connects (to the VM end of the link, through its DNAT).
    /// `None` when there is no TCP forward to try.
    pub fn forwards_accept(&self, redirects: &[Redirect]) -> Option<bool> {
        let tcp: Vec<&Redirect> = redirects.iter().filter(|r| r.proto == Proto::Tcp).collect();
        if tcp.is_empty() {
            return None;
        }
        let Ok(info) = self.require_running() else {
            return Some(false);
        };
        Some(tcp.iter().all(|r| {
            let target = SocketAddr::V4(SocketAddrV4::new(info.link.vm, r.host_port));
            TcpStream::connect_timeout(&target, FORWARD_PROBE_TIMEOUT).is_ok()
        }))
    }

    /// The services' status from the supervisor; `Err` says why it did not answer.
    pub fn services(&self) -> Result<Vec<crate::supervisor::ServiceStatus>, String> {
        control::request(&self.layout.control_socket(), &Request::Status).map(|r| r.services)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::Healthcheck;
    use std::time::Duration;

    #[test]
    fn an_exec_becomes_a_service_entering_the_jail_with_its_env_and_check() {
        let layout = Layout::new(std::path::Path::new("/tmp/jrun-home-w"));
        let jail = JailName::new("api").unwrap();
        let exec = Exec {
            name: "web".into(),
            cmd: "python3 -m http.server 8080".into(),
            dir: None,
            env: [("PORT".to_string(), "8080".to_string())].into(),
            healthcheck: Some(Healthcheck {
                test: "nc -z 127.0.0.1 8080".into(),
                interval: Duration::from_millis(1500),
                timeout: Duration::from_secs(2),
                retries: 4,
            }),
            user: None,
        };
        let s = service_spec(&layout, &jail, &exec, "7");
        assert!(s.generation.ends_with("#7"), "{}", s.generation);
        assert_eq!(s.key(), "api/web");
        assert_eq!(s.argv[0], "nsenter");
        assert_eq!(
            &s.argv[3..],
            [
                "--",
                "env",
                "--chdir=/",
                "--",
                "/bin/sh",
                "-c",
                "python3 -m http.server 8080"
            ]
        );
        assert_eq!(s.env["PORT"], "8080");
        assert!(s.env["PATH"].starts_with("/usr/local/sbin"));
        assert_eq!(s.log, layout.log_dir().join("api").join("web.log"));
        let h = s.health.unwrap();
        assert_eq!(h.argv.last().unwrap(), "nc -z 127.0.0.1 8080");
        assert_eq!((h.interval_ms, h.timeout_ms, h.retries), (1500, 2000, 4));
    }
}
