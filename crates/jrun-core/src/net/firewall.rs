//! Firewall policy as data, independent of pf or nftables syntax. Each runtime renders it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use jrun_mesh::YggAddress;
use serde::{Deserialize, Serialize};

use crate::config::{JailName, MeshPort, Proto};

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
/// source is in `mesh_peers` (and, with `mesh_allow`, it goes to an allowed port); the
/// jail's other traffic is untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailFirewall {
    pub jail: JailName,
    /// The addresses of the remote jails of every pairing that shares this jail.
    pub mesh_peers: BTreeSet<YggAddress>,
    /// The jail's `mesh { allow }`: the only ports `mesh_peers` may reach (and ping);
    /// `None`: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_allow: Option<BTreeSet<MeshPort>>,
}

impl VmFirewall {
    /// The VM policy for a set of redirects: sorted by (proto, host port), duplicates
    /// dropped. Host-port conflicts are refused earlier, by [`super::check_host_ports`].
    pub fn new(ssh_port: u16, redirects: impl IntoIterator<Item = Redirect>) -> Self {
        let mut redirects: Vec<Redirect> = redirects.into_iter().collect();
        redirects.sort_by_key(|r| (r.proto, r.host_port, r.jail.clone(), r.jail_ip, r.jail_port));
        redirects.dedup();
        VmFirewall {
            ssh_port,
            redirects,
        }
    }
}

impl JailFirewall {
    /// A jail's policy: its mesh interface accepts exactly the given remote addresses.
    pub fn new(jail: JailName, mesh_peers: impl IntoIterator<Item = YggAddress>) -> Self {
        JailFirewall {
            jail,
            mesh_peers: mesh_peers.into_iter().collect(),
            mesh_allow: None,
        }
    }

    /// The same policy, with peers limited to `ports` (`None`: every port).
    pub fn allowing(mut self, ports: Option<BTreeSet<MeshPort>>) -> Self {
        self.mesh_allow = ports;
        self
    }

    /// The allowed ports of one protocol, sorted (`None`: every port).
    pub fn allowed_ports(&self, proto: Proto) -> Option<Vec<u16>> {
        self.mesh_allow.as_ref().map(|ports| {
            ports
                .iter()
                .filter(|p| p.proto() == proto)
                .map(|p| p.port())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> JailName {
        JailName::new(s).unwrap()
    }

    fn redirect(port: u16, jail: &str) -> Redirect {
        Redirect {
            proto: Proto::Tcp,
            host_port: port,
            jail: label(jail),
            jail_ip: Ipv4Addr::new(10, 17, 89, 10),
            jail_port: 80,
        }
    }

    #[test]
    fn vm_redirects_are_sorted_and_unique() {
        let fw = VmFirewall::new(
            2222,
            [
                redirect(9000, "b"),
                redirect(8080, "a"),
                redirect(9000, "b"),
            ],
        );
        let ports: Vec<u16> = fw.redirects.iter().map(|r| r.host_port).collect();
        assert_eq!(ports, [8080, 9000]);
        assert_eq!(fw.ssh_port, 2222);
    }

    #[test]
    fn jail_accepts_exactly_its_peers() {
        let a: YggAddress = "200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap();
        let b: YggAddress = "201::1".parse().unwrap();
        let fw = JailFirewall::new(label("web"), [a, b, a]);
        assert_eq!(fw.mesh_peers.len(), 2);
        assert!(fw.mesh_peers.contains(&b));
    }
}
