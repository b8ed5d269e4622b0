//! What the supervisor is asked to keep running: written by the commands to
//! `run/supervision.json`, re-read by the supervisor on every `reload`.

use std::net::SocketAddrV4;
use std::path::Path;

use jrun_core::config::Proto;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Reads a spec file the commands wrote; a missing file is the empty spec.
pub(super) fn read_spec<T: DeserializeOwned + Default>(path: &Path) -> Result<T, String> {
    match read_own_file(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not valid: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A spec lists what the supervisor runs as root: it is read only when it is a regular
/// file (a link is not followed) that this user owns and nobody else can write.
fn read_own_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "it is not a regular file owned by uid {me} that only its owner can write (uid {}, mode {:o}); refusing to run what it lists",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_another_user_owns_or_can_write_is_not_run() {
        if !nix::unistd::geteuid().is_root() {
            panic!("needs root to give the file away; CI runs as root");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervision.json");
        write_spec(&Supervision::default(), &path).unwrap();
        assert_eq!(
            read_spec::<Supervision>(&path).unwrap(),
            Supervision::default()
        );
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = read_spec::<Supervision>(&path).unwrap_err();
        assert!(err.contains("refusing to run what it lists"), "{err}");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read_spec::<Supervision>(&path).is_err());
        let link = dir.path().join("services.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read_spec::<Supervision>(&link).is_err());
    }
}
