//! Yggdrasil node configs for the VM (the jails' bootstrap node) and each jail, in the
//! dialect of the installed version. JSON is valid HJSON, which Yggdrasil reads; serde
//! does the escaping.

use base64::Engine;
use ed25519_dalek::SigningKey;
use jrun_core::net::{BRIDGE_IP, MESH_IFACE, MESH_LISTEN_PORT};
use serde_json::{json, Map, Value};

use crate::spec::{MeshKey, PeerUri, YggVersion};

/// Where a node's PEM key lives (0.5), relative to the root it runs in.
pub const KEY_PATH: &str = "/usr/local/etc/yggdrasil/private.pem";
/// Where its config lives.
pub const CONF_PATH: &str = "/usr/local/etc/yggdrasil.conf";
/// Its admin socket, private to the jail (or the VM) it runs in.
pub const ADMIN_SOCKET: &str = "unix:///var/run/yggdrasil/yggdrasil.sock";

/// The VM node: listens for jails on the bridge, peers with the relay, routes only.
pub fn vm_node(version: YggVersion, key: &MeshKey, relay: Option<&PeerUri>) -> String {
    let peers: Vec<String> = relay.iter().map(|p| p.to_string()).collect();
    node(
        version,
        key,
        peers,
        vec![format!("tcp://{BRIDGE_IP}:{MESH_LISTEN_PORT}")],
        "none",
    )
}

/// A jail node: peers with the VM node only, on its own `ygg0` interface.
pub fn jail_node(version: YggVersion, key: &MeshKey) -> String {
    node(
        version,
        key,
        vec![format!("tcp://{BRIDGE_IP}:{MESH_LISTEN_PORT}")],
        vec![],
        MESH_IFACE,
    )
}

fn node(
    version: YggVersion,
    key: &MeshKey,
    peers: Vec<String>,
    listen: Vec<String>,
    ifname: &str,
) -> String {
    let mut m = Map::new();
    match version {
        YggVersion::V04 => {
            let signing = SigningKey::from_bytes(&key.0);
            let mut full = key.0.to_vec();
            full.extend_from_slice(signing.verifying_key().as_bytes());
            m.insert("PrivateKey".into(), hex(&full).into());
        }
        YggVersion::V05 => {
            m.insert("PrivateKeyPath".into(), KEY_PATH.into());
        }
    }
    m.insert("Peers".into(), json!(peers));
    m.insert("InterfacePeers".into(), json!({}));
    m.insert("Listen".into(), json!(listen));
    m.insert("AdminListen".into(), ADMIN_SOCKET.into());
    // No multicast discovery: a jail talks to its VM node and to nothing else.
    m.insert("MulticastInterfaces".into(), json!([]));
    m.insert("AllowedPublicKeys".into(), json!([]));
    m.insert("IfName".into(), ifname.into());
    m.insert("IfMTU".into(), json!(65535));
    m.insert("NodeInfoPrivacy".into(), json!(true));
    m.insert("NodeInfo".into(), json!({}));
    let mut s = serde_json::to_string_pretty(&Value::Object(m)).expect("JSON of plain values");
    s.push('\n');
    s
}

/// The PKCS#8 PEM that Yggdrasil 0.5 reads from `PrivateKeyPath`.
pub fn private_key_pem(key: &MeshKey) -> String {
    // PKCS#8 v1 for Ed25519 (RFC 8410): a fixed 16-byte header, then the 32-byte seed.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&key.0);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
