//! nftables rulesets rendered from the network model's firewall types. Each ruleset is a
//! whole `inet jrun` table, replaced in one `nft -f -` transaction (create, delete, define),
//! so a half-applied firewall cannot exist.

use std::fmt::Write;
use std::net::Ipv4Addr;

use jrun_core::config::Proto;
use jrun_core::net::{JailFirewall, Redirect, BRIDGE_IP, MESH_IFACE, SUBNET, SUBNET_PREFIX};

use crate::mesh::PEER_SET;
use crate::names::{BRIDGE, UPLINK};

/// The table name jrun owns in every namespace it creates.
pub const TABLE: &str = "jrun";

/// The VM namespace's ruleset: NAT for jail traffic going out of the uplink, one DNAT per
/// forward, and unsolicited inbound traffic dropped. The supervisor's forward listeners
/// connect from the host's end of the link (`host_ip`) to `uplink_ip:<host port>`, and the
/// DNAT matches only that source: a LAN host routing to the link through a forwarding host
/// (or another instance's masqueraded jails) does not reach a "localhost-only" forward.
pub fn render_vm(host_ip: Ipv4Addr, uplink_ip: Ipv4Addr, redirects: &[Redirect]) -> String {
    let mut dnat = String::new();
    for r in redirects {
        let proto = proto_kw(r.proto);
        // Writing to a String cannot fail.
        let _ = writeln!(
            dnat,
            "    iifname \"{UPLINK}\" ip saddr {host_ip} ip daddr {uplink_ip} {proto} dport {} dnat ip to {}:{}",
            r.host_port, r.jail_ip, r.jail_port
        );
    }
    format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \x20 chain prerouting {{\n\
         \x20   type nat hook prerouting priority dstnat; policy accept;\n\
         {dnat}\
         \x20 }}\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   oifname \"{UPLINK}\" ip saddr {SUBNET}/{SUBNET_PREFIX} masquerade\n\
         \x20 }}\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority filter; policy drop;\n\
         \x20   ct state established,related accept\n\
         \x20   iif lo accept\n\
         \x20   iifname \"{BRIDGE}\" ip daddr {{ {BRIDGE_IP}, 255.255.255.255 }} accept\n\
         \x20   iifname \"{BRIDGE}\" ip6 daddr fe80::/10 accept\n\
         \x20   meta l4proto {{ icmp, ipv6-icmp }} accept\n\
         \x20 }}\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority filter; policy drop;\n\
         \x20   ct state established,related accept\n\
         \x20   iifname \"{BRIDGE}\" oifname \"{UPLINK}\" accept\n\
         \x20   iifname \"{BRIDGE}\" oifname \"{BRIDGE}\" accept\n\
         \x20   ct status dnat accept\n\
         \x20 }}\n\
         }}\n"
    )
}

/// A jail's ruleset: anything arriving on the mesh interface is dropped unless its source
/// is in `mesh_peers` (or it answers the jail's own traffic) and, when the jail narrows
/// them (`mesh { allow }`), it goes to an allowed port or is a ping; the rest is accepted.
pub fn render_jail(fw: &JailFirewall) -> String {
    let elements = if fw.mesh_peers.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = fw.mesh_peers.iter().map(|a| a.to_string()).collect();
        format!("    elements = {{ {} }}\n", list.join(", "))
    };
    let from_peers = format!("iifname \"{MESH_IFACE}\" ip6 saddr @{PEER_SET}");
    let mut admit = String::new();
    if fw.mesh_allow.is_none() {
        let _ = writeln!(admit, "    {from_peers} accept");
    } else {
        for proto in [Proto::Tcp, Proto::Udp] {
            let ports = fw.allowed_ports(proto).unwrap_or_default();
            if !ports.is_empty() {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                let _ = writeln!(
                    admit,
                    "    {from_peers} {} dport {{ {} }} accept",
                    proto_kw(proto),
                    list.join(", ")
                );
            }
        }
        let _ = writeln!(admit, "    {from_peers} icmpv6 type echo-request accept");
    }
    format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \x20 set {PEER_SET} {{\n\
         \x20   type ipv6_addr\n\
         {elements}\
         \x20 }}\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority filter; policy accept;\n\
         \x20   iifname \"{MESH_IFACE}\" ct state established,related accept\n\
         {admit}\
         \x20   iifname \"{MESH_IFACE}\" counter drop\n\
         \x20 }}\n\
         }}\n"
    )
}

fn proto_kw(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::JailName;
    use jrun_mesh::YggAddress;

    #[test]
    fn vm_ruleset_has_one_dnat_per_redirect() {
        let r = Redirect {
            proto: Proto::Udp,
            host_port: 5353,
            jail: JailName::new("dns").unwrap(),
            jail_ip: Ipv4Addr::new(10, 17, 89, 12),
            jail_port: 53,
        };
        let text = render_vm(
            Ipv4Addr::new(10, 17, 88, 1),
            Ipv4Addr::new(10, 17, 88, 2),
            &[r],
        );
        assert!(text.starts_with("table inet jrun\ndelete table inet jrun\n"));
        assert!(text.contains(
            "iifname \"uplink\" ip saddr 10.17.88.1 ip daddr 10.17.88.2 udp dport 5353 dnat ip to 10.17.89.12:53\n"
        ));
        assert!(text.contains("oifname \"uplink\" ip saddr 10.17.89.0/24 masquerade"));
        assert!(text.contains("hook input priority filter; policy drop;"));
    }

    /// Security review finding 13: a forward's DNAT matches only the supervisor's own
    /// source, the host's end of the link; any other source arriving on the uplink (a LAN
    /// host routed through a forwarding host) is not translated, so it meets the input
    /// chain's drop instead of the jail.
    #[test]
    fn forward_dnat_matches_only_the_supervisors_source() {
        let redirects: Vec<Redirect> = [(Proto::Tcp, 8080, 80), (Proto::Udp, 5353, 53)]
            .into_iter()
            .map(|(proto, host_port, jail_port)| Redirect {
                proto,
                host_port,
                jail: JailName::new("web").unwrap(),
                jail_ip: Ipv4Addr::new(10, 17, 89, 10),
                jail_port,
            })
            .collect();
        let host = Ipv4Addr::new(10, 17, 88, 5);
        let text = render_vm(host, Ipv4Addr::new(10, 17, 88, 6), &redirects);
        let dnats: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" dnat ip to "))
            .collect();
        assert_eq!(dnats.len(), 2, "{text}");
        for l in dnats {
            assert!(
                l.trim_start()
                    .starts_with("iifname \"uplink\" ip saddr 10.17.88.5 ip daddr 10.17.88.6 "),
                "{l}"
            );
        }
    }

    #[test]
    fn jail_ruleset_lists_exactly_the_peers() {
        let mut fw = JailFirewall {
            jail: JailName::new("web").unwrap(),
            mesh_peers: Default::default(),
            mesh_allow: None,
        };
        assert!(!render_jail(&fw).contains("elements"));
        let a: YggAddress = "200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap();
        fw.mesh_peers.insert(a);
        let text = render_jail(&fw);
        assert!(text.contains("elements = { 200:848a:604f:bb7e:4384:65db:8db6:6895 }"));
        assert!(text.contains("iifname \"ygg0\" counter drop"));
    }

    /// Issue 15 item 3: with `mesh { allow }`, peers reach only the listed ports (and may
    /// ping); the whole ruleset, exactly.
    #[test]
    fn mesh_allow_narrows_the_peers_to_the_listed_ports() {
        let fw = JailFirewall::new(
            JailName::new("web").unwrap(),
            ["201::1".parse::<YggAddress>().unwrap()],
        )
        .allowing(Some(
            ["8000", "443/tcp", "53/udp"]
                .into_iter()
                .map(|p| p.parse().unwrap())
                .collect(),
        ));
        assert_eq!(
            render_jail(&fw),
            "table inet jrun\n\
             delete table inet jrun\n\
             table inet jrun {\n\
             \x20 set mesh_peers {\n\
             \x20   type ipv6_addr\n\
             \x20   elements = { 201::1 }\n\
             \x20 }\n\
             \x20 chain input {\n\
             \x20   type filter hook input priority filter; policy accept;\n\
             \x20   iifname \"ygg0\" ct state established,related accept\n\
             \x20   iifname \"ygg0\" ip6 saddr @mesh_peers tcp dport { 443, 8000 } accept\n\
             \x20   iifname \"ygg0\" ip6 saddr @mesh_peers udp dport { 53 } accept\n\
             \x20   iifname \"ygg0\" ip6 saddr @mesh_peers icmpv6 type echo-request accept\n\
             \x20   iifname \"ygg0\" counter drop\n\
             \x20 }\n\
             }\n"
        );
        // No port at all: only pings.
        let none = fw.clone().allowing(Some(Default::default()));
        let text = render_jail(&none);
        assert!(!text.contains("dport"), "{text}");
        assert!(text.contains("icmpv6 type echo-request accept"), "{text}");
        // Every port (no `allow`): the source alone decides, as before.
        let all = render_jail(&fw.allowing(None));
        assert!(
            all.contains("iifname \"ygg0\" ip6 saddr @mesh_peers accept\n"),
            "{all}"
        );
        assert!(!all.contains("dport"), "{all}");
    }

    /// The rendered rulesets pass nft's own parser and checker (`nft -c`, root; nothing
    /// is committed).
    #[test]
    fn rulesets_pass_nft_check() {
        use jrun_core::exec::{Cmd, Runner, SystemRunner};
        let r = Redirect {
            proto: Proto::Tcp,
            host_port: 8080,
            jail: JailName::new("web").unwrap(),
            jail_ip: Ipv4Addr::new(10, 17, 89, 10),
            jail_port: 80,
        };
        let mut fw = JailFirewall {
            jail: JailName::new("web").unwrap(),
            mesh_peers: Default::default(),
            mesh_allow: None,
        };
        fw.mesh_peers
            .insert("200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap());
        for text in [
            render_vm(
                Ipv4Addr::new(10, 17, 88, 1),
                Ipv4Addr::new(10, 17, 88, 2),
                &[r],
            ),
            render_jail(&fw),
            render_jail(
                &fw.clone().allowing(Some(
                    ["80", "5432/tcp", "53/udp"]
                        .into_iter()
                        .map(|p| p.parse().unwrap())
                        .collect(),
                )),
            ),
            render_jail(&fw.clone().allowing(Some(Default::default()))),
        ] {
            // `-c` checks without committing; the leading `delete table` needs the table to
            // exist, which the ruleset's first line ensures within the same check.
            SystemRunner
                .run(&Cmd::new(["nft", "-c", "-f", "-"]).stdin(text.clone()))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }
}
