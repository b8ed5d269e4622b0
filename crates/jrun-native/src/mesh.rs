//! Applying mesh pairings to running jails: each jail's `mesh_peers` set is replaced in
//! one nft transaction that touches nothing else of its ruleset (no window in which the
//! mesh interface is open or a local rule is missing), then the resolver's records are
//! replaced and reloaded.

use std::fmt::Write;

use jrun_core::config::JailName;
use jrun_core::exec::Cmd;
use jrun_core::net::{DnsRecords, JailFirewall};
use jrun_core::runtime::{Runtime, RuntimeError, Step};
use jrun_mesh::YggAddress;

use crate::nft::TABLE;
use crate::runtime::NativeRuntime;
use crate::{plumbing, ygg};

/// The name of the set in each jail's table (see [`crate::nft::render_jail`]).
pub const PEER_SET: &str = "mesh_peers";

/// One transaction that makes the jail's `mesh_peers` set hold exactly `fw.mesh_peers`.
/// Rendered from validated addresses only; `nft -f` applies a file atomically.
pub fn render_peer_set(fw: &JailFirewall) -> String {
    let mut text = format!("flush set inet {TABLE} {PEER_SET}\n");
    if !fw.mesh_peers.is_empty() {
        let list: Vec<String> = fw.mesh_peers.iter().map(|a| a.to_string()).collect();
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "add element inet {TABLE} {PEER_SET} {{ {} }}",
            list.join(", ")
        );
    }
    text
}

/// Updates every listed jail whose namespace exists, then the records. Every jail's
/// transaction is its own, so they run side by side: each nft commit mostly waits on the
/// kernel, and in sequence those waits add up with the number of jails. Any failure is
/// returned naming the jail (the first in the list that failed), before the records are
/// touched; the caller restores the previous sets.
pub fn apply(
    rt: &NativeRuntime,
    firewalls: &[JailFirewall],
    records: &DnsRecords,
) -> Result<(), RuntimeError> {
    rt.require_root("changing mesh pairings")?;
    rt.require_running()?;
    let present: Vec<(&JailFirewall, String)> = firewalls
        .iter()
        .map(|fw| (fw, rt.layout.jail_ns(&fw.jail)))
        .filter(|(_, ns)| plumbing::namespace_exists(ns))
        .collect();
    let runner = rt.runner.as_ref();
    let results: Vec<Result<(), RuntimeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = present
            .chunks(JAILS_PER_THREAD)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(fw, ns)| update_set(runner, fw, ns))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an nft thread does not panic"))
            .collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;
    rt.set_records(records)
}

/// How many jails one thread updates in turn.
const JAILS_PER_THREAD: usize = 4;

fn update_set(
    runner: &dyn jrun_core::exec::Runner,
    fw: &JailFirewall,
    ns: &str,
) -> Result<(), RuntimeError> {
    // `nsenter --net` rather than `ip netns exec`: nft needs only the network namespace,
    // not the mount namespace `ip netns exec` sets up.
    let netns = format!("--net=/run/netns/{ns}");
    let cmd = Cmd::new(["nsenter", netns.as_str(), "nft", "-f", "-"]).stdin(render_peer_set(fw));
    runner
        .run(&cmd)
        .map(|_| ())
        .map_err(|e| RuntimeError::Step {
            jail: fw.jail.clone(),
            step: Step::Mesh,
            message: format!("cannot update its mesh_peers set: {e}"),
        })
}

/// The address a jail's running node reports (`yggdrasilctl getSelf` on the node's
/// private admin socket), or `None` while it does not answer. Both Yggdrasil 0.4 and 0.5
/// answer with a top-level `address`.
pub fn running_address(rt: &NativeRuntime, jail: &JailName) -> Option<YggAddress> {
    let endpoint = format!(
        "-endpoint=unix://{}",
        ygg::jail_admin_socket(&rt.layout, jail).display()
    );
    let out = rt
        .runner
        .run(&Cmd::new([
            "yggdrasilctl",
            "-json",
            endpoint.as_str(),
            "getSelf",
        ]))
        .ok()?;
    parse_self_address(&out.stdout)
}

fn parse_self_address(json: &[u8]) -> Option<YggAddress> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    v.get("address")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(addrs: &[&str]) -> JailFirewall {
        JailFirewall::new(
            JailName::new("web").unwrap(),
            addrs.iter().map(|a| a.parse::<YggAddress>().unwrap()),
        )
    }

    #[test]
    fn the_running_address_is_read_from_get_self() {
        let answer = br#"{"build_name":"unknown","key":"42b3","address":"201:f530:a1cb:e554:f900:728c:f9fd:b2b","coords":[],"subnet":"301:f530:a1cb:e554::/64"}"#;
        assert_eq!(
            parse_self_address(answer),
            Some("201:f530:a1cb:e554:f900:728c:f9fd:b2b".parse().unwrap())
        );
        assert_eq!(parse_self_address(br#"{"address":"::/0"}"#), None);
        assert_eq!(parse_self_address(b"not json"), None);
    }

    #[test]
    fn an_empty_set_is_only_flushed() {
        assert_eq!(
            render_peer_set(&fw(&[])),
            "flush set inet jrun mesh_peers\n"
        );
    }

    #[test]
    fn the_set_holds_exactly_the_peers() {
        let text = render_peer_set(&fw(&["201::1", "200:848a:604f:bb7e:4384:65db:8db6:6895"]));
        assert_eq!(
            text,
            "flush set inet jrun mesh_peers\n\
             add element inet jrun mesh_peers { 200:848a:604f:bb7e:4384:65db:8db6:6895, 201::1 }\n"
        );
    }

    /// The transaction is valid against the jail ruleset it updates (checked by nft itself,
    /// without touching any kernel state).
    #[test]
    fn the_transaction_passes_nft_check() {
        let f = fw(&["201::1", "202::2"]);
        let file = format!(
            "{}{}",
            crate::nft::render_jail(&fw(&["203::3"])),
            render_peer_set(&f)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.nft");
        std::fs::write(&path, file).unwrap();
        let out = std::process::Command::new("nft")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("nft is installed (CI package nftables)");
        assert!(
            out.status.success(),
            "nft -c refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
