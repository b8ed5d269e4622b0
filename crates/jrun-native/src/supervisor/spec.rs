//! What the supervisor is asked to keep running: written by the commands to
//! `run/supervision.json`, re-read by the supervisor on every `reload`.

use std::net::SocketAddrV4;
use std::path::Path;

use jrun_core::config::Proto;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Reads a spec file the commands wrote; a missing file is the empty spec.
pub(super) fn read_spec<T: DeserializeOwned + Default>(path: &Path) -> Result<T, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not valid: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a spec file atomically, readable by root only: specs hold argv and env, which may
/// hold secrets.
pub(super) fn write_spec<T: Serialize>(value: &T, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    jrun_core::fs::write_atomic(path, text.as_bytes(), 0o600)
}

/// The whole desired set; a reload converges to exactly this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervision {
    /// Long-lived processes, restarted when they exit.
    #[serde(default)]
    pub children: Vec<ChildSpec>,
    /// Host listeners relaying to a target inside the instance.
    #[serde(default)]
    pub forwards: Vec<ForwardSpec>,
}

/// One supervised process. `name` is unique and names its log file. Services of jails
/// (`exec` with health checks) plug in here as more children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildSpec {
    pub name: String,
    /// Full argv (e.g. `ip netns exec <ns> unbound -d …`); never a shell string.
    pub argv: Vec<String>,
}

/// `listen` (a host address: 127.0.0.1 for jail forwards, the host side of the VM link
/// for the resolver's upstream relay) relays to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSpec {
    pub proto: Proto,
    pub listen: SocketAddrV4,
    pub target: SocketAddrV4,
    /// Accept only this source address (the resolver's relay serves the VM namespace
    /// alone, never a neighbour that routes to the link address); `None`: anyone.
    #[serde(default)]
    pub only_from: Option<std::net::Ipv4Addr>,
}

impl Supervision {
    /// Reads the file; a missing file is the empty set.
    pub fn read(path: &Path) -> Result<Self, String> {
        read_spec(path)
    }

    /// Writes the file atomically, readable by root only (it holds child argv and env).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_spec(self, path)
    }

    /// Replaces the child named `spec.name` (or adds it).
    pub fn upsert_child(&mut self, spec: ChildSpec) {
        self.children.retain(|c| c.name != spec.name);
        self.children.push(spec);
    }

    pub fn remove_child(&mut self, name: &str) {
        self.children.retain(|c| c.name != name);
    }
}
