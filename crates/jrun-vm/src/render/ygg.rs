//! Yggdrasil node configs for the VM (the jails' bootstrap node) and each jail, in the
//! dialect of the installed version, rendered by the mesh crate from typed parts.

use jrun_core::net::{BRIDGE_IP, MESH_IFACE, MESH_LISTEN_PORT};
use jrun_mesh::yggdrasil::{NodeConfig, NodeKey, PeerUri, TunInterface, YggVersion};
use jrun_mesh::Identity;

use super::RenderError;

/// Where a node's PEM key lives (read by 0.5), inside the root it runs in.
pub const KEY_PATH: &str = "/usr/local/etc/yggdrasil/private.pem";
/// Where its config lives (the FreeBSD package's rc script reads it).
pub const CONF_PATH: &str = "/usr/local/etc/yggdrasil.conf";
/// Its admin socket, private to the jail (or the VM) it runs in.
pub const ADMIN_SOCKET: &str = "/var/run/yggdrasil/yggdrasil.sock";

fn bootstrap() -> PeerUri {
    format!("tcp://{BRIDGE_IP}:{MESH_LISTEN_PORT}")
        .parse()
        .expect("a constant, valid URI")
}

/// The VM node: listens for jails on the bridge, peers with the relay, routes only.
pub fn vm_node(
    version: YggVersion,
    key: &Identity,
    relay: Option<&PeerUri>,
) -> Result<String, RenderError> {
    node(
        version,
        key,
        relay.into_iter().cloned().collect(),
        vec![bootstrap()],
        TunInterface::None,
    )
}

/// A jail node: peers with the VM node only, on its own `ygg0` interface.
pub fn jail_node(version: YggVersion, key: &Identity) -> Result<String, RenderError> {
    let ifname = TunInterface::Named(MESH_IFACE.parse().expect("a constant, valid name"));
    node(version, key, vec![bootstrap()], vec![], ifname)
}

fn node(
    version: YggVersion,
    key: &Identity,
    peers: Vec<PeerUri>,
    listen: Vec<PeerUri>,
    if_name: TunInterface,
) -> Result<String, RenderError> {
    let cfg = NodeConfig {
        listen,
        peers,
        if_name,
        admin_socket: Some(ADMIN_SOCKET.into()),
        key: NodeKey {
            identity: key.clone(),
            pem_path: KEY_PATH.into(),
        },
    };
    cfg.render(version)
        .map_err(|e| RenderError::Mesh(e.to_string()))
}

/// The PKCS#8 PEM that Yggdrasil 0.5 reads from `PrivateKeyPath`.
pub fn private_key_pem(key: &Identity) -> String {
    key.to_pkcs8_pem().to_string()
}
