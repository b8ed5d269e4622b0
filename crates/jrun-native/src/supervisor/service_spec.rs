//! The jails' services the supervisor is asked to keep running: written by `jrun up` to
//! `run/services.json` (next to `supervision.json`), re-read on every reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Rotate a service's log when it passes this size (bytes), unless the set says otherwise.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 1024 * 1024;

/// Every service of every jail; a reload converges to exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSet {
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// A log past this size is moved to `<exec>.log.1` (the older one to `.log.2`).
    #[serde(default = "default_log_max")]
    pub log_max_bytes: u64,
}

fn default_log_max() -> u64 {
    DEFAULT_LOG_MAX_BYTES
}

impl Default for ServiceSet {
    fn default() -> Self {
        ServiceSet {
            services: Vec::new(),
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
        }
    }
}

/// One `exec` of one jail. Any change to it (including `generation`) restarts the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub jail: String,
    /// The exec's name in the config.
    pub exec: String,
    /// Full argv, already entering the jail (`nsenter --net=… --mount=… -- /bin/sh -c <cmd>`),
    /// or, with `run_as`, the command the supervisor runs once it has entered the jail.
    pub argv: Vec<String>,
    /// The whole environment of the service (nothing of the supervisor's leaks in).
    pub env: BTreeMap<String, String>,
    /// Where stdout and stderr are appended.
    pub log: PathBuf,
    pub health: Option<HealthSpec>,
    /// Identity of the jail's namespaces; a rebuilt jail gets a new one, so its services
    /// restart inside the new namespaces.
    pub generation: String,
    /// The exec's `user`: the service and its health check run as that user (absent from
    /// files written before the key existed: root, through `nsenter` in `argv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// Run as `user` inside the jail: between fork and exec the supervisor enters the jail's
/// network namespace `net` and mount namespace `mount` (nsenter cannot: it would need the
/// privileges the user lacks), drops every supplementary group, then sets the user's
/// primary group and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    /// A user name or a numeric uid (the config's validated `user`), looked up on the host:
    /// native jails share its files, `/etc/passwd` included.
    pub user: String,
    pub net: PathBuf,
    pub mount: PathBuf,
}

/// A health check: `argv` (entering the jail) every `interval_ms`, killed after
/// `timeout_ms`; `retries` failures in a row restart the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    pub argv: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

impl ServiceSpec {
    /// `<jail>/<exec>`: unique within an instance.
    pub fn key(&self) -> String {
        format!("{}/{}", self.jail, self.exec)
    }
}

impl ServiceSet {
    /// The file under the instance's run folder.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("services.json")
    }

    /// Reads the file; a missing file is the empty set.
    pub fn read(path: &Path) -> Result<Self, String> {
        super::spec::read_spec(path)
    }

    /// Writes the file atomically, readable by root only (it holds every exec's env, which may hold secrets).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        super::spec::write_spec(self, path)
    }

    /// Replaces every service of `jail` with `services`.
    pub fn replace_jail(&mut self, jail: &str, services: Vec<ServiceSpec>) {
        self.services.retain(|s| s.jail != jail);
        self.services.extend(services);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_service_and_supervision_files_are_readable_by_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = ServiceSet::path(dir.path());
        ServiceSet::default().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sup = dir.path().join("supervision.json");
        super::super::spec::Supervision::default()
            .write(&sup)
            .unwrap();
        let mode = std::fs::metadata(&sup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
