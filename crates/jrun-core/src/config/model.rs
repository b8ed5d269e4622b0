use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use jrun_mesh::DnsLabel;
use serde::{Deserialize, Serialize};

/// A jail's name: a DNS label, so that `<name>.local.jrun` is always a valid name.
pub type JailName = DnsLabel;

/// A whole, validated config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The file it was read from (absolute); relative paths in it resolve against its folder.
    pub path: PathBuf,
    /// The `base { }` block, if the file has one.
    pub base: Option<Base>,
    /// Jails in the order the file declares them.
    pub jails: Vec<Jail>,
}

/// The `base { }` block: what the VM itself gets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Base {
    /// Provisioning of the VM, in declaration order.
    pub setup: Vec<SetupStep>,
    /// Host folders shared into the VM.
    pub mounts: Vec<BaseMount>,
    /// Host ports forwarded to ports of the VM itself.
    pub forwards: Vec<BaseForward>,
}

/// One `jail "<name>" { }` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jail {
    pub name: JailName,
    /// FreeBSD release for the vm runtime (e.g. "15.0-RELEASE"); `None` means the VM's own.
    pub release: Option<String>,
    /// A static address; `None` lets the planner assign one.
    pub ip: Option<Ipv4Addr>,
    /// `base { type = "jail"; name = "…" }`: clone this jail from another.
    pub base: Option<JailName>,
    /// Jails of the same file deployed before this one (deduplicated, in file order).
    pub depends: Vec<JailName>,
    /// In declaration order; no two share a path inside the jail.
    pub mounts: Vec<Mount>,
    /// In declaration order; host (proto, port) pairs are unique across the whole file.
    pub forwards: Vec<Forward>,
    /// Supervised services, in declaration order.
    pub execs: Vec<Exec>,
    /// Provisioning steps, run in declaration order when the jail is created.
    pub setup: Vec<SetupStep>,
    /// `mesh { allow = [...] }`: the only ports paired peers may reach; `None` (no
    /// `allow`): every port, as Jailrun. An empty set admits no port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_allow: Option<BTreeSet<MeshPort>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// One port of a jail that paired peers may reach (`mesh { allow = [80, "53/udp"]; }`).
/// Only a checked value is ever built (port 1 to 65535), also when read back from state,
/// where it is written `"<port>/<proto>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeshPort {
    proto: Proto,
    port: u16,
}

impl MeshPort {
    pub fn new(proto: Proto, port: u16) -> Result<Self, String> {
        if port == 0 {
            return Err("is 0, not a port from 1 to 65535".into());
        }
        Ok(MeshPort { proto, port })
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::str::FromStr for MeshPort {
    type Err = String;
    /// `80` (tcp), `"5432/tcp"` or `"53/udp"`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (port, proto) = match s.split_once('/') {
            None => (s, Proto::Tcp),
            Some((port, "tcp")) => (port, Proto::Tcp),
            Some((port, "udp")) => (port, Proto::Udp),
            Some((_, other)) => {
                return Err(format!("names protocol {other:?}, not \"tcp\" or \"udp\""))
            }
        };
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        match port.parse::<u32>() {
            Ok(n) if digits => {
                let n =
                    u16::try_from(n).map_err(|_| format!("is {n}, not a port from 1 to 65535"))?;
                MeshPort::new(proto, n)
            }
            _ => Err(format!(
                "{s:?} is not a port such as 80, \"5432/tcp\" or \"53/udp\""
            )),
        }
    }
}

impl TryFrom<String> for MeshPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<MeshPort> for String {
    fn from(p: MeshPort) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for MeshPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// `forward { <name> { proto host jail } }`: host `127.0.0.1:<host>` reaches the jail's `<jail>` port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    pub name: String,
    pub proto: Proto,
    pub host: u16,
    pub jail: u16,
}

/// `base { forward { <name> { proto host target } } }`: host port to a port of the VM itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseForward {
    pub name: String,
    pub proto: Proto,
    pub host: u16,
    pub target: u16,
}

/// `mount { <name> { host jail } }`: a host folder visible read-write inside the jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub name: String,
    /// Absolute, resolved against the config file's folder.
    pub host: PathBuf,
    /// Absolute path inside the jail.
    pub jail: PathBuf,
}

/// `base { mount { <name> { host target } } }`: a host folder shared into the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMount {
    pub name: String,
    pub host: PathBuf,
    pub target: PathBuf,
}

/// `exec { <name> { cmd dir env healthcheck user } }`: a long-running service of the jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub name: String,
    /// Run through `/bin/sh -c`, as the original does.
    pub cmd: String,
    /// Absolute working folder inside the jail; `None` means the jail's root `/`.
    pub dir: Option<String>,
    /// Environment variables: names `[A-Za-z_][A-Za-z0-9_]*`, values without control characters.
    pub env: BTreeMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    /// Who the service and its health check run as; `None`: root (of the jail on vm, of the
    /// host on native). Absent from state written before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ExecUser>,
}

/// An exec's `user`: a user name `[a-z_][a-z0-9_-]{0,31}` or a numeric uid. Only a
/// checked value is ever built, also when read back from state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecUser(String);

impl ExecUser {
    pub fn new(user: &str) -> Result<Self, String> {
        super::values::check_exec_user(user)?;
        Ok(ExecUser(user.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uid, when the value is numeric.
    pub fn uid(&self) -> Option<u32> {
        self.0.parse().ok()
    }
}

impl TryFrom<String> for ExecUser {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ExecUser::new(&s)
    }
}

impl From<ExecUser> for String {
    fn from(u: ExecUser) -> String {
        u.0
    }
}

impl std::fmt::Display for ExecUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// Run through `/bin/sh -c` inside the jail; exit 0 means healthy.
    pub test: String,
    /// Time between checks (default 30s).
    pub interval: Duration,
    /// How long one check may take (default 10s).
    pub timeout: Duration,
    /// Failed checks in a row before the service is restarted (default 3, at least 1).
    pub retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetupKind {
    Shell,
    Ansible,
}

/// Where a setup step's script or playbook comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetupSource {
    /// Absolute, resolved against the config file's folder.
    File(PathBuf),
    Url(String),
}

/// `setup { <name> { type file|url vars {} } }`, run in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStep {
    pub name: String,
    pub kind: SetupKind,
    pub source: SetupSource,
    /// Extra variables for the playbook or script (names as for `env`).
    pub vars: BTreeMap<String, String>,
}

impl Config {
    pub fn jail(&self, name: &str) -> Option<&Jail> {
        self.jails.iter().find(|j| j.name.as_str() == name)
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}
