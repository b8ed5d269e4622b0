//! Firewall policy as data, independent of pf or nftables syntax. Each runtime renders it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use jrun_mesh::YggAddress;
use serde::{Deserialize, Serialize};

use crate::config::{JailName, Proto};

/// The VM level: NAT for jail traffic going out, one redirect per forward, default deny in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmFirewall {
    /// The port that reaches the VM itself (SSH on the vm runtime); always allowed in.
    pub ssh_port: u16,
    /// Sorted by (proto, host port); at most one per (proto, host port).
    pub redirects: Vec<Redirect>,
}

/// Host `<proto>/<host_port>` reaches `<jail_ip>:<jail_port>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Redirect {
    pub proto: Proto,
    pub host_port: u16,
    pub jail: JailName,
    pub jail_ip: Ipv4Addr,
    pub jail_port: u16,
}

/// One jail's level: everything arriving on its mesh interface is dropped unless its
/// source is in `mesh_peers`; the jail's other traffic is untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailFirewall {
    pub jail: JailName,
    /// The union of every paired remote jail's address.
    pub mesh_peers: BTreeSet<YggAddress>,
}
