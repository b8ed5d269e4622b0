//! Running Yggdrasil nodes: which version is installed, and their config files.

mod node_config;
mod peer_uri;
mod version;

pub use node_config::{NodeConfig, NodeKey, RenderError, TunInterface};
pub use peer_uri::{IfName, PeerUri, PeerUriError};
pub use version::{YggVersion, YggVersionError};
