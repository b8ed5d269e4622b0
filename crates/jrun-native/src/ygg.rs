//! Yggdrasil nodes of a native instance: the VM node (listening on the bridge for its
//! jails, peering with the relay) and one node per jail on `ygg0`. Configs are rendered by
//! `jrun_mesh` for the installed version from the persistent key store; the supervisor runs
//! them inside their namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use jrun_core::config::JailName;
use jrun_core::net::{BRIDGE_IP, MESH_IFACE, MESH_LISTEN_PORT};
use jrun_mesh::yggdrasil::{IfName, NodeConfig, NodeKey, PeerUri, TunInterface, YggVersion};
use jrun_mesh::{KeyStore, StoredKey, YggAddress};

use crate::names::Layout;
use crate::supervisor::spec::ChildSpec;

/// The installed binary jrun runs for every node.
pub const YGGDRASIL: &str = "/usr/sbin/yggdrasil";

/// The URI jail nodes peer with.
pub fn vm_listen_uri() -> PeerUri {
    format!("tcp://{BRIDGE_IP}:{MESH_LISTEN_PORT}")
        .parse()
        .expect("a literal tcp URI is valid")
}

/// Which version is installed (configs differ between 0.4 and 0.5).
pub fn detect_version() -> Result<YggVersion, String> {
    YggVersion::detect(Path::new(YGGDRASIL)).map_err(|e| e.to_string())
}

/// One node to run: its config file and the child that runs it.
pub struct Node {
    pub child: ChildSpec,
}

/// The relay peer URI as the VM node dials it: the host name `host` means this machine,
/// seen from the VM namespace (the host's side of the link), so a relay running on the
/// same machine is `tcp://host:<port>` for every instance.
pub fn relay_peer_uri(relay_peer: &str, link_host: Ipv4Addr) -> Result<PeerUri, String> {
    let resolved = match relay_peer.split_once("://host:") {
        Some((scheme, rest)) => format!("{scheme}://{link_host}:{rest}"),
        None => relay_peer.to_string(),
    };
    resolved
        .parse::<PeerUri>()
        .map_err(|e| format!("JRUN_RELAY_PEER={relay_peer:?}: {e}"))
}

/// Writes the VM node's config and returns its child.
pub fn vm_node(
    layout: &Layout,
    version: YggVersion,
    relay_peer: Option<&str>,
    link_host: Ipv4Addr,
) -> Result<Node, String> {
    let key = KeyStore::open(&layout.home)
        .vm_key()
        .map_err(|e| e.to_string())?;
    let peers = match relay_peer {
        Some(p) => vec![relay_peer_uri(p, link_host)?],
        None => vec![],
    };
    let config = NodeConfig {
        listen: vec![vm_listen_uri()],
        peers,
        if_name: TunInterface::None,
        admin_socket: Some(layout.ygg_dir().join("vm.sock")),
        key: node_key(key),
    };
    write_node(
        layout,
        "vm",
        &layout.vm_ns(),
        Enter::WithFiles,
        &config,
        version,
    )
}

/// Writes a jail node's config (the jail's persistent key) and returns its child.
pub fn jail_node(layout: &Layout, version: YggVersion, jail: &JailName) -> Result<Node, String> {
    let key = KeyStore::open(&layout.home)
        .jail_key(jail)
        .map_err(|e| e.to_string())?;
    let config = NodeConfig {
        listen: vec![],
        peers: vec![vm_listen_uri()],
        if_name: TunInterface::Named(MESH_IFACE.parse::<IfName>().map_err(|e| e.to_string())?),
        admin_socket: Some(jail_admin_socket(layout, jail)),
        key: node_key(key),
    };
    write_node(
        layout,
        &format!("j-{jail}"),
        &layout.jail_ns(jail),
        Enter::NetOnly,
        &config,
        version,
    )
}

/// A jail's mesh address from its stored key, without creating a key. A key file that
/// cannot be used (unreadable, malformed, readable by others) is an error naming the file.
pub fn try_jail_address(layout: &Layout, jail: &JailName) -> Result<Option<YggAddress>, String> {
    let key = KeyStore::open(&layout.home)
        .existing_jail_key(jail)
        .map_err(|e| e.to_string())?;
    Ok(key.map(|k| k.identity.address()))
}

/// Like [`try_jail_address`] for callers that can only show an address or none: a broken
/// key file is logged as a warning (with the fix) instead of silently meaning "no address".
pub fn jail_address(layout: &Layout, jail: &JailName) -> Option<YggAddress> {
    try_jail_address(layout, jail).unwrap_or_else(|e| {
        tracing::warn!(jail = %jail, "no mesh address: {e}");
        None
    })
}

/// A jail node's admin socket. Named by a hash of the jail's name: a unix socket path
/// must stay under 108 bytes, and a jail name alone may take 63.
pub fn jail_admin_socket(layout: &Layout, jail: &JailName) -> PathBuf {
    let mut h: u32 = 0x811c_9dc5;
    for b in jail.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    layout.ygg_dir().join(format!("j{h:08x}.sock"))
}

/// The supervisor child name of a jail's node.
pub fn jail_child_name(jail: &JailName) -> String {
    format!("ygg-j-{jail}")
}

fn node_key(key: StoredKey) -> NodeKey {
    NodeKey {
        identity: key.identity,
        pem_path: key.path,
    }
}

fn write_node(
    layout: &Layout,
    name: &str,
    ns: &str,
    enter: Enter,
    config: &NodeConfig,
    version: YggVersion,
) -> Result<Node, String> {
    let text = config.render(version).map_err(|e| e.to_string())?;
    let dir = layout.ygg_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.conf"));
    // The file holds the private key (0.4 format): owner-only from the first byte.
    jrun_core::fs::write_atomic(&path, text.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Node {
        child: ChildSpec {
            name: format!("ygg-{name}"),
            argv: enter
                .argv(ns)
                .into_iter()
                .chain([
                    YGGDRASIL.into(),
                    "-useconffile".into(),
                    path.display().to_string(),
                ])
                .collect(),
        },
    })
}

/// How a node enters its namespace.
#[derive(Clone, Copy)]
enum Enter {
    /// `ip netns exec`: the namespace's own `/etc/netns` files (its resolv.conf) in a
    /// mount namespace of the node's own, for a node that resolves names (the VM node may
    /// dial the relay by name).
    WithFiles,
    /// `nsenter --net`: the network namespace alone. A jail node dials an address and
    /// needs no files of the jail's; without a mount namespace of its own, its exit does
    /// not tear one down (that teardown waits for an RCU grace period under the kernel's
    /// mount lock, and a `down` of 20 jails paid for 20 of them).
    NetOnly,
}

impl Enter {
    fn argv(self, ns: &str) -> Vec<String> {
        match self {
            Enter::WithFiles => vec!["ip".into(), "netns".into(), "exec".into(), ns.into()],
            Enter::NetOnly => vec![
                "nsenter".into(),
                format!("--net=/run/netns/{ns}"),
                "--".into(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_in_the_relay_peer_means_this_machine() {
        let host = Ipv4Addr::new(10, 17, 88, 5);
        assert_eq!(
            relay_peer_uri("tcp://host:9001", host).unwrap().as_str(),
            "tcp://10.17.88.5:9001"
        );
        assert_eq!(
            relay_peer_uri("tls://relay.example:443", host)
                .unwrap()
                .as_str(),
            "tls://relay.example:443"
        );
        assert!(relay_peer_uri("tcp://host:9001\nListen", host).is_err());
    }

    #[test]
    fn node_config_is_private_and_a_planted_temp_link_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let jail = JailName::new("web").unwrap();
        std::fs::create_dir_all(layout.ygg_dir()).unwrap();
        let victim = home.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        // The name the old writer used for its temp file.
        std::os::unix::fs::symlink(&victim, layout.ygg_dir().join("j-web.tmp")).unwrap();
        jail_node(&layout, YggVersion::V0_4, &jail).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let conf = layout.ygg_dir().join("j-web.conf");
        let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains("PrivateKey"), "{text}");
    }

    #[test]
    fn a_broken_jail_key_is_an_error_not_a_missing_address() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let jail = JailName::new("db").unwrap();
        assert_eq!(try_jail_address(&layout, &jail).unwrap(), None);
        let path = KeyStore::open(home.path()).jail_key_path(&jail);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        jrun_core::fs::write_atomic(&path, b"not a key", 0o600).unwrap();
        let err = try_jail_address(&layout, &jail).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(jail_address(&layout, &jail), None);
    }
}
