//! The link between the host and the VM namespace: a veth pair on a small per-instance
//! /30 taken from 10.17.88.0/24, chosen so it overlaps no route or address the host already
//! has — including other instances' links.

use std::net::Ipv4Addr;

use jrun_core::exec::{Cmd, Runner};
use serde::{Deserialize, Serialize};

/// The pool the link subnets come from, and the size of one.
const POOL_BASE: [u8; 3] = [10, 17, 88];
const SLOTS: u8 = 64;
pub const LINK_PREFIX: u8 = 30;

/// One instance's link: `host` is the host's side (what jails see as "the host"), `vm` the
/// VM namespace's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub host: Ipv4Addr,
    pub vm: Ipv4Addr,
}

impl Link {
    fn slot(k: u8) -> Link {
        let [a, b, c] = POOL_BASE;
        Link {
            host: Ipv4Addr::new(a, b, c, 4 * k + 1),
            vm: Ipv4Addr::new(a, b, c, 4 * k + 2),
        }
    }

    fn network(&self) -> (u32, u32) {
        (u32::from(self.host) & !0b11, 4)
    }
}

/// Picks the first free slot, starting at one derived from the instance id so that
/// instances rarely contend.
pub fn choose(runner: &dyn Runner, start: u8) -> Result<Link, String> {
    let taken = host_prefixes(runner)?;
    (0..SLOTS)
        .map(|i| Link::slot((start.wrapping_add(i)) % SLOTS))
        .find(|link| {
            let (net, size) = link.network();
            !taken.iter().any(|&(t, plen)| overlaps(net, size, t, plen))
        })
        .ok_or_else(|| {
            "no free /30 left in 10.17.88.0/24 for the link to the host: the host's routes or other jrun instances use them all".to_string()
        })
}

fn overlaps(net: u32, size: u32, other: u32, plen: u8) -> bool {
    let mask = if plen == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(plen))
    };
    let other_net = other & mask;
    let other_end = other_net | !mask;
    net <= other_end && other_net < net + size
}

/// Every IPv4 prefix the host has as an address or a route (except the default route).
fn host_prefixes(runner: &dyn Runner) -> Result<Vec<(u32, u8)>, String> {
    let mut out = Vec::new();
    let routes = runner
        .run(&Cmd::new([
            "ip", "-j", "-4", "route", "show", "table", "all",
        ]))
        .map_err(|e| e.to_string())?;
    let routes: serde_json::Value = serde_json::from_slice(&routes.stdout)
        .map_err(|e| format!("`ip -j route` gave unexpected output: {e}"))?;
    for r in routes.as_array().into_iter().flatten() {
        if let Some(dst) = r.get("dst").and_then(|d| d.as_str()) {
            if let Some(p) = parse_prefix(dst) {
                out.push(p);
            }
        }
    }
    let addrs = runner
        .run(&Cmd::new(["ip", "-j", "-4", "addr", "show"]))
        .map_err(|e| e.to_string())?;
    let addrs: serde_json::Value = serde_json::from_slice(&addrs.stdout)
        .map_err(|e| format!("`ip -j addr` gave unexpected output: {e}"))?;
    for link in addrs.as_array().into_iter().flatten() {
        for a in link
            .get("addr_info")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let ip = a
                .get("local")
                .and_then(|l| l.as_str())
                .and_then(|l| l.parse::<Ipv4Addr>().ok());
            let plen = a.get("prefixlen").and_then(|p| p.as_u64());
            if let (Some(ip), Some(plen)) = (ip, plen) {
                out.push((u32::from(ip), plen.min(32) as u8));
            }
        }
    }
    Ok(out)
}

/// `a.b.c.d/n` or a bare address; `default` and anything else yield `None`.
fn parse_prefix(s: &str) -> Option<(u32, u8)> {
    let (ip, plen) = match s.split_once('/') {
        Some((ip, p)) => (ip, p.parse().ok()?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    (plen <= 32).then_some((u32::from(ip), plen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::exec::RecordingRunner;

    #[test]
    fn skips_slots_the_host_uses() {
        let rec = RecordingRunner::new();
        rec.answer(
            &["ip", "-j", "-4", "route"],
            r#"[{"dst":"default","gateway":"192.0.2.1"},{"dst":"10.17.88.0/29"}]"#,
        );
        rec.answer(
            &["ip", "-j", "-4", "addr"],
            r#"[{"ifname":"x","addr_info":[{"local":"10.17.88.9","prefixlen":30}]}]"#,
        );
        // Slots 0 and 1 are under the /29 route, slot 2 holds an address: slot 3 is free.
        let link = choose(&rec, 0).unwrap();
        assert_eq!(link.host, Ipv4Addr::new(10, 17, 88, 13));
        assert_eq!(link.vm, Ipv4Addr::new(10, 17, 88, 14));
        // Starting past the taken ones keeps the start.
        assert_eq!(
            choose(&rec, 10).unwrap().host,
            Ipv4Addr::new(10, 17, 88, 41)
        );
    }

    #[test]
    fn a_covering_route_blocks_everything() {
        let rec = RecordingRunner::new();
        rec.answer(&["ip", "-j", "-4", "route"], r#"[{"dst":"10.0.0.0/8"}]"#);
        rec.answer(&["ip", "-j", "-4", "addr"], "[]");
        assert!(choose(&rec, 0).is_err());
    }
}
