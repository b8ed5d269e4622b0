//! The config file of one Yggdrasil node, rendered for the installed version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{IfName, PeerUri, YggVersion};
use crate::Identity;

/// The TUN interface of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunInterface {
    /// No interface: the node only routes (the relay's node, or a node without privileges).
    None,
    /// A named interface, e.g. `ygg0` inside a jail.
    Named(IfName),
}

/// The key of a node: the keypair, and the PEM file it is stored in (0.5 reads the file).
#[derive(Debug, Clone)]
pub struct NodeKey {
    /// The keypair.
    pub identity: Identity,
    /// Its PEM file; must be absolute.
    pub pem_path: PathBuf,
}

/// What one node needs: where it listens, whom it peers with, its interface, its admin
/// socket and its key. Multicast discovery is always off (jrun peers explicitly).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// URIs to listen on for incoming peerings.
    pub listen: Vec<PeerUri>,
    /// URIs of peers to connect to.
    pub peers: Vec<PeerUri>,
    /// The TUN interface.
    pub if_name: TunInterface,
    /// The admin socket (a UNIX socket path, absolute), or none.
    pub admin_socket: Option<PathBuf>,
    /// The node's key.
    pub key: NodeKey,
}

/// Why a node config cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render the Yggdrasil config: {0}")]
pub struct RenderError(String);

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Rendered {
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_path: Option<String>,
    peers: Vec<String>,
    interface_peers: BTreeMap<String, Vec<String>>,
    listen: Vec<String>,
    admin_listen: String,
    multicast_interfaces: Vec<()>,
    allowed_public_keys: Vec<String>,
    if_name: String,
    #[serde(rename = "IfMTU")]
    if_mtu: u32,
    node_info_privacy: bool,
    node_info: BTreeMap<String, String>,
}

impl NodeConfig {
    /// The config file for `version`, as JSON (which both versions read, being HJSON).
    ///
    /// It holds the private key in 0.4's dialect: write it with mode 0600.
    pub fn render(&self, version: YggVersion) -> Result<String, RenderError> {
        let absolute = |what: &str, p: &PathBuf| -> Result<String, RenderError> {
            match p.to_str() {
                Some(s) if p.is_absolute() && !s.chars().any(char::is_control) => Ok(s.to_string()),
                _ => Err(RenderError(format!(
                    "the {what} {} must be an absolute UTF-8 path",
                    p.display()
                ))),
            }
        };
        let admin_listen = match &self.admin_socket {
            None => "none".to_string(),
            Some(p) => format!("unix://{}", absolute("admin socket", p)?),
        };
        let (private_key, public_key, private_key_path) = match version {
            YggVersion::V0_4 => (
                Some(self.key.identity.ygg04_hex().to_string()),
                Some(hex::encode(self.key.identity.public_key())),
                None,
            ),
            YggVersion::V0_5 => (None, None, Some(absolute("key file", &self.key.pem_path)?)),
        };
        let strings = |v: &[PeerUri]| v.iter().map(|u| u.as_str().to_string()).collect();
        let rendered = Rendered {
            private_key,
            public_key,
            private_key_path,
            peers: strings(&self.peers),
            interface_peers: BTreeMap::new(),
            listen: strings(&self.listen),
            admin_listen,
            multicast_interfaces: Vec::new(),
            allowed_public_keys: Vec::new(),
            if_name: match &self.if_name {
                TunInterface::None => "none".to_string(),
                TunInterface::Named(n) => n.as_str().to_string(),
            },
            if_mtu: 65535,
            node_info_privacy: true,
            node_info: BTreeMap::new(),
        };
        let mut text =
            serde_json::to_string_pretty(&rendered).map_err(|e| RenderError(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig {
            listen: vec!["tcp://10.17.89.1:19001".parse().unwrap()],
            peers: vec!["tcp://127.0.0.1:9001".parse().unwrap()],
            if_name: TunInterface::Named("ygg0".parse().unwrap()),
            admin_socket: Some("/run/jrun/web/ygg.sock".into()),
            key: NodeKey {
                identity: Identity::from_seed(&[3; 32]),
                pem_path: "/home/u/.jrun/keys/jails/web.pem".into(),
            },
        }
    }

    #[test]
    fn renders_0_5_with_a_key_path() {
        let text = config().render(YggVersion::V0_5).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["PrivateKeyPath"], "/home/u/.jrun/keys/jails/web.pem");
        assert!(v.get("PrivateKey").is_none());
        assert_eq!(v["Listen"][0], "tcp://10.17.89.1:19001");
        assert_eq!(v["Peers"][0], "tcp://127.0.0.1:9001");
        assert_eq!(v["AdminListen"], "unix:///run/jrun/web/ygg.sock");
        assert_eq!(v["IfName"], "ygg0");
        assert_eq!(v["MulticastInterfaces"], serde_json::json!([]));
    }

    #[test]
    fn renders_0_4_with_the_hex_key() {
        let mut c = config();
        c.admin_socket = None;
        c.if_name = TunInterface::None;
        let text = c.render(YggVersion::V0_4).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["PrivateKey"], c.key.identity.ygg04_hex().as_str());
        assert!(v.get("PrivateKeyPath").is_none());
        assert_eq!(v["AdminListen"], "none");
        assert_eq!(v["IfName"], "none");
    }

    /// The whole file, pinned: a change here changes every deployed node's config.
    #[test]
    fn the_0_5_file_in_full() {
        let expected = r#"{
  "PrivateKeyPath": "/home/u/.jrun/keys/jails/web.pem",
  "Peers": [
    "tcp://127.0.0.1:9001"
  ],
  "InterfacePeers": {},
  "Listen": [
    "tcp://10.17.89.1:19001"
  ],
  "AdminListen": "unix:///run/jrun/web/ygg.sock",
  "MulticastInterfaces": [],
  "AllowedPublicKeys": [],
  "IfName": "ygg0",
  "IfMTU": 65535,
  "NodeInfoPrivacy": true,
  "NodeInfo": {}
}
"#;
        assert_eq!(config().render(YggVersion::V0_5).unwrap(), expected);
    }

    #[test]
    fn refuses_relative_paths() {
        let mut c = config();
        c.admin_socket = Some("ygg.sock".into());
        assert!(c.render(YggVersion::V0_4).is_err());
        let mut c = config();
        c.key.pem_path = "k.pem".into();
        assert!(c.render(YggVersion::V0_5).is_err());
    }
}
