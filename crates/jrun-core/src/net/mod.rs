//! The fixed shape of a jrun network (DESIGN §2), the same on both runtimes.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

mod dns;
mod firewall;
mod forward;

pub use dns::{DnsName, DnsRecord, DnsRecords, RecordData};
pub use firewall::{JailFirewall, Redirect, VmFirewall};
pub use forward::{check_host_ports, redirects_for, ForwardChanges, PortConflict, PortOwner};

/// The private subnet every jail lives on.
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 17, 89, 0);
pub const SUBNET_PREFIX: u8 = 24;
/// The VM's side of the bridge: gateway, resolver and mesh bootstrap node.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 17, 89, 1);
/// Last octets handed out automatically.
pub const POOL: RangeInclusive<u8> = 10..=250;
/// Where the VM's Yggdrasil node listens for its jails.
pub const MESH_LISTEN_PORT: u16 = 19001;
/// The name of each jail's Yggdrasil interface.
pub const MESH_IFACE: &str = "ygg0";
/// The zone for local jails: `<jail>.local.jrun`.
pub const LOCAL_ZONE: &str = "local.jrun";
/// The zone everything of jrun lives under.
pub const ROOT_ZONE: &str = "jrun";

/// Whether `ip` lies in the jail subnet.
pub fn in_subnet(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 10 && o[1] == 17 && o[2] == 89
}

/// Whether a static jail IP is acceptable: in the subnet and not network, bridge or broadcast.
pub fn is_assignable(ip: Ipv4Addr) -> bool {
    in_subnet(ip) && !matches!(ip.octets()[3], 0 | 1 | 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignable_addresses() {
        assert!(is_assignable(Ipv4Addr::new(10, 17, 89, 50)));
        assert!(is_assignable(Ipv4Addr::new(10, 17, 89, 2)));
        for last in [0, 1, 255] {
            assert!(!is_assignable(Ipv4Addr::new(10, 17, 89, last)));
        }
        assert!(!is_assignable(Ipv4Addr::new(10, 17, 90, 50)));
    }
}
