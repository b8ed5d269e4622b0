//! Names and paths of one native instance, derived from its `JRUN_HOME` so that several
//! instances coexist on one machine. Every name here is built from validated parts only.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use jrun_core::config::JailName;

/// A short id for the instance: 12 hex digits (48 bits) of a hash of the canonical
/// `JRUN_HOME` — as many as the host-side veth's name (`jr<id>h`, 15 bytes) allows. Two
/// homes could still share one; the home owning a running instance is recorded, and the
/// other is refused (`instance::refuse_taken_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id of the instance living in `home` (canonicalised when it exists).
    pub fn for_home(home: &Path) -> Self {
        // Test-only (debug builds): two homes made to share an id, to prove the refusal.
        if cfg!(debug_assertions) {
            if let Ok(forced) = std::env::var("JRUN_TEST_INSTANCE_ID") {
                if forced.len() == 12 && forced.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return InstanceId(forced.to_ascii_lowercase());
                }
            }
        }
        let canonical = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
        Self::from_bytes(canonical.as_os_str().as_encoded_bytes())
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        // FNV-1a: stable across Rust versions (unlike DefaultHasher).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        InstanceId(format!("{:012x}", h & 0xffff_ffff_ffff))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything named after one instance: namespaces, interfaces and files.
#[derive(Debug, Clone)]
pub struct Layout {
    pub id: InstanceId,
    pub home: PathBuf,
}

/// The bridge inside the VM namespace.
pub const BRIDGE: &str = "br0";
/// The VM namespace's side of its link to the host.
pub const UPLINK: &str = "uplink";
/// A jail's side of its link to the bridge.
pub const JAIL_IFACE: &str = "eth0";

impl Layout {
    pub fn new(home: &Path) -> Self {
        Layout {
            id: InstanceId::for_home(home),
            home: home.to_path_buf(),
        }
    }

    /// The prefix every namespace of this instance starts with (`jrun-<id>-`).
    pub fn ns_prefix(&self) -> String {
        format!("jrun-{}-", self.id.as_str())
    }

    /// The "VM": the namespace holding the bridge, resolver, VM node and firewall.
    pub fn vm_ns(&self) -> String {
        format!("{}vm", self.ns_prefix())
    }

    /// A jail's namespace. `vm` cannot clash: a jail's is `jrun-<id>-j-<name>`.
    pub fn jail_ns(&self, jail: &JailName) -> String {
        format!("{}j-{jail}", self.ns_prefix())
    }

    /// The jail a namespace name belongs to, if it is one of this instance's jails.
    pub fn jail_of_ns(&self, ns: &str) -> Option<JailName> {
        let rest = ns.strip_prefix(&self.ns_prefix())?.strip_prefix("j-")?;
        JailName::new(rest).ok()
    }

    /// The host's side of the link to the VM namespace (fits the 15-byte limit: 9 bytes).
    pub fn host_veth(&self) -> String {
        format!("jr{}h", self.id.as_str())
    }

    /// The bridge port of a jail inside the VM namespace: its address's last octet and a
    /// per-deployment tag (`vj42a1b2`, at most 11 bytes). Unique per deployment because a
    /// removed jail's port lingers until the kernel finishes tearing its namespace down.
    pub fn bridge_port(ip: Ipv4Addr, tag: u16) -> String {
        format!("vj{}{tag:04x}", ip.octets()[3])
    }

    /// The jail address whose port [`Self::bridge_port`] named `port`, if it names one.
    pub fn bridge_port_address(port: &str) -> Option<Ipv4Addr> {
        let rest = port.strip_prefix("vj")?;
        let (last, tag) = rest.split_at_checked(rest.len().checked_sub(4)?)?;
        if !tag.bytes().all(|b| b.is_ascii_hexdigit())
            || last.is_empty()
            || !last.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let [a, b, c, _] = jrun_core::net::SUBNET.octets();
        Some(Ipv4Addr::new(a, b, c, last.parse().ok()?))
    }

    pub fn run_dir(&self) -> PathBuf {
        self.home.join("run")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.home.join("logs")
    }

    /// The supervisor's pid file: the instance's "running" signal.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir().join("supervisor.pid")
    }

    /// The supervisor's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir().join("supervisor.sock")
    }

    /// What `start` decided (link subnet, start time), read by every later command.
    pub fn instance_file(&self) -> PathBuf {
        self.run_dir().join("instance.json")
    }

    /// The supervisor's desired children and forwards.
    pub fn supervision_file(&self) -> PathBuf {
        self.run_dir().join("supervision.json")
    }

    pub fn unbound_dir(&self) -> PathBuf {
        self.run_dir().join("unbound")
    }

    pub fn ygg_dir(&self) -> PathBuf {
        self.run_dir().join("ygg")
    }

    /// `/etc/netns/<ns>`: files `ip netns exec` bind-mounts over `/etc` for that namespace.
    pub fn etc_netns(ns: &str) -> PathBuf {
        Path::new("/etc/netns").join(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = InstanceId::from_bytes(b"/root/.jrun");
        assert_eq!(a, InstanceId::from_bytes(b"/root/.jrun"));
        assert_ne!(a, InstanceId::from_bytes(b"/tmp/other"));
        assert_eq!(a.as_str().len(), 12);
    }

    #[test]
    fn names_fit_and_round_trip() {
        let l = Layout {
            id: InstanceId("abc123def456".into()),
            home: "/h".into(),
        };
        let web = JailName::new("web").unwrap();
        assert_eq!(l.vm_ns(), "jrun-abc123def456-vm");
        assert_eq!(l.jail_ns(&web), "jrun-abc123def456-j-web");
        assert_eq!(l.jail_of_ns("jrun-abc123def456-j-web"), Some(web));
        assert_eq!(l.jail_of_ns("jrun-abc123def456-vm"), None);
        assert_eq!(l.jail_of_ns("jrun-ffffffffffff-j-web"), None);
        assert_eq!(l.host_veth(), "jrabc123def456h");
        assert!(l.host_veth().len() <= 15);
        assert_eq!(
            Layout::bridge_port(Ipv4Addr::new(10, 17, 89, 250), 0xbeef),
            "vj250beef"
        );
        assert!(Layout::bridge_port(Ipv4Addr::new(10, 17, 89, 250), 0xffff).len() <= 15);
        for (ip, tag) in [(250, 0xbeef), (5, 0), (10, 0x12ab)] {
            let ip = Ipv4Addr::new(10, 17, 89, ip);
            let name = Layout::bridge_port(ip, tag);
            assert_eq!(Layout::bridge_port_address(&name), Some(ip), "{name}");
        }
        for other in [
            "fx",
            "vj",
            "vjbeef",
            "vj256beef",
            "vj1xbeef",
            "vj10beeg",
            "uplink",
        ] {
            assert_eq!(Layout::bridge_port_address(other), None, "{other}");
        }
    }
}
