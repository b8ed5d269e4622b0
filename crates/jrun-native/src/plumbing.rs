//! Namespaces, veths, addresses and routes, as `ip` commands through the [`Runner`].
//! Creation is split into ordered steps so a failure can be named and undone; removal is
//! best effort and treats "already gone" as done.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use jrun_core::exec::{Cmd, ExecError, Runner};
use jrun_core::net::{BRIDGE_IP, SUBNET_PREFIX};

use crate::link::{Link, LINK_PREFIX};
use crate::names::{Layout, BRIDGE, JAIL_IFACE, UPLINK};

/// Runs `ip -n <ns> -batch -` with one command per line (one process for many changes).
pub fn ip_batch(runner: &dyn Runner, ns: &str, lines: &[String]) -> Result<(), ExecError> {
    let mut text = lines.join("\n");
    text.push('\n');
    runner
        .run(&Cmd::new(["ip", "-n", ns, "-batch", "-"]).stdin(text))
        .map(|_| ())
}

/// Applies a whole nftables ruleset inside `ns`, in one transaction.
pub fn nft_apply(runner: &dyn Runner, ns: &str, ruleset: &str) -> Result<(), ExecError> {
    runner
        .run(&Cmd::new(["ip", "netns", "exec", ns, "nft", "-f", "-"]).stdin(ruleset))
        .map(|_| ())
}

/// The network namespaces that exist, by name.
pub fn list_namespaces(runner: &dyn Runner) -> Result<BTreeSet<String>, ExecError> {
    let out = runner.run(&Cmd::new(["ip", "netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The VM namespace, its link to the host and the bridge.
pub fn create_vm(runner: &dyn Runner, layout: &Layout, link: Link) -> Result<(), ExecError> {
    let vm = layout.vm_ns();
    let host_veth = layout.host_veth();
    runner.run(&Cmd::new(["ip", "netns", "add", vm.as_str()]))?;
    runner.run(&Cmd::new([
        "ip",
        "link",
        "add",
        host_veth.as_str(),
        "type",
        "veth",
        "peer",
        "name",
        UPLINK,
        "netns",
        vm.as_str(),
    ]))?;
    runner.run(&Cmd::new([
        "ip".to_string(),
        "addr".into(),
        "add".into(),
        format!("{}/{LINK_PREFIX}", link.host),
        "dev".into(),
        host_veth.clone(),
    ]))?;
    runner.run(&Cmd::new(["ip", "link", "set", host_veth.as_str(), "up"]))?;
    ip_batch(
        runner,
        &vm,
        &[
            "link set lo up".into(),
            format!("addr add {}/{LINK_PREFIX} dev {UPLINK}", link.vm),
            format!("link set {UPLINK} up"),
            // A fixed address: otherwise the bridge takes its lowest port's, and changes it
            // when that jail leaves, leaving the other jails' neighbour caches stale.
            format!(
                "link add {BRIDGE} address {} type bridge",
                bridge_mac(layout)
            ),
            format!("addr add {BRIDGE_IP}/{SUBNET_PREFIX} dev {BRIDGE}"),
            format!("link set {BRIDGE} up"),
            format!("route add default via {}", link.host),
        ],
    )?;
    // Per-namespace setting: the host's own forwarding is left alone.
    runner.run(&Cmd::new([
        "ip",
        "netns",
        "exec",
        vm.as_str(),
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]))?;
    Ok(())
}

/// A locally administered MAC for the instance's bridge, from its id.
fn bridge_mac(layout: &Layout) -> String {
    let id = layout.id.as_str();
    format!("02:6a:72:{}:{}:{}", &id[0..2], &id[2..4], &id[4..6])
}

/// A jail's MAC, fixed by its instance and address: a jail built again at the same
/// address keeps it, so the other jails' neighbour caches (which keep an entry for up to a
/// minute) still reach it at once instead of sending to a MAC that is gone.
fn jail_mac(layout: &Layout, ip: Ipv4Addr) -> String {
    let id = layout.id.as_str();
    format!(
        "02:6b:{}:{}:{}:{:02x}",
        &id[0..2],
        &id[2..4],
        &id[4..6],
        ip.octets()[3]
    )
}

/// A jail's namespace with its veth on the bridge, its address and default route.
pub fn create_jail_ns(runner: &dyn Runner, ns: &str) -> Result<(), ExecError> {
    runner
        .run(&Cmd::new(["ip", "netns", "add", ns]))
        .map(|_| ())
}

pub fn create_jail_link(
    runner: &dyn Runner,
    layout: &Layout,
    ns: &str,
    ip: Ipv4Addr,
) -> Result<(), ExecError> {
    let port = Layout::bridge_port(ip, deployment_tag());
    ip_batch(
        runner,
        &layout.vm_ns(),
        &[
            format!(
                "link add {port} type veth peer name {JAIL_IFACE} address {} netns {ns}",
                jail_mac(layout, ip)
            ),
            format!("link set {port} master {BRIDGE} up"),
        ],
    )
}

pub fn configure_jail_address(
    runner: &dyn Runner,
    ns: &str,
    ip: Ipv4Addr,
) -> Result<(), ExecError> {
    ip_batch(
        runner,
        ns,
        &[
            "link set lo up".into(),
            format!("addr add {ip}/{SUBNET_PREFIX} dev {JAIL_IFACE}"),
            format!("link set {JAIL_IFACE} up"),
            format!("route add default via {BRIDGE_IP}"),
        ],
    )
}

/// A tag that differs between deployments (time and pid mixed), for bridge port names.
fn deployment_tag() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((nanos >> 8) ^ std::process::id()) as u16
}

/// Whether the jail's namespace exists with its address and default route in place.
pub fn jail_ready(runner: &dyn Runner, ns: &str, ip: Ipv4Addr) -> bool {
    let addr = runner.run(&Cmd::new([
        "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", JAIL_IFACE,
    ]));
    let has_addr = addr.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).contains(&format!(" {ip}/{SUBNET_PREFIX} "))
    });
    has_addr
        && runner
            .run(&Cmd::new(["ip", "-n", ns, "route", "show", "default"]))
            .is_ok_and(|o| !o.stdout.is_empty())
}

/// The IPv4 address on the jail's bridge interface, if any.
pub fn jail_address(runner: &dyn Runner, ns: &str) -> Option<Ipv4Addr> {
    let out = runner
        .run(&Cmd::new([
            "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", JAIL_IFACE,
        ]))
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

/// Whether `ip netns` knows `ns` (its mount point exists; no process spawned).
pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Kills every process still running inside `ns` (best effort): those whose network
/// namespace is the one mounted at `/run/netns/<ns>` (what `ip netns pids` does).
pub fn kill_namespace_processes(ns: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(Path::new("/run/netns").join(ns)) else {
        return;
    };
    let wanted = format!("net:[{}]", target.ino());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let link = std::fs::read_link(entry.path().join("ns/net"));
        if link.is_ok_and(|l| l.as_os_str() == wanted.as_str()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Deletes a namespace (its veths go with it) and its `/etc/netns` folder. Absent is fine.
pub fn delete_namespace(runner: &dyn Runner, ns: &str) -> Result<(), String> {
    delete_namespace_if(runner, ns, namespace_exists(ns))
}

/// [`delete_namespace`] when the caller already knows whether `ns` exists.
fn delete_namespace_if(runner: &dyn Runner, ns: &str, exists: bool) -> Result<(), String> {
    kill_namespace_processes(ns);
    let mut errors = Vec::new();
    if exists {
        // The kernel tears a deleted namespace down asynchronously; until then its link
        // would still answer on the bridge (and mislead the next address probe). Taking the
        // link down first is immediate. Absent (no link yet) is fine.
        let _ = runner.run(&Cmd::new([
            "ip", "-n", ns, "link", "set", JAIL_IFACE, "down",
        ]));
        if let Err(e) = runner.run(&Cmd::new(["ip", "netns", "del", ns])) {
            errors.push(e.to_string());
        }
    }
    let etc = Layout::etc_netns(ns);
    if let Err(e) = std::fs::remove_dir_all(&etc) {
        if e.kind() != std::io::ErrorKind::NotFound {
            errors.push(format!("cannot remove {}: {e}", etc.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Removes everything of the instance on the host: every namespace with its prefix, their
/// `/etc/netns` folders and the host's veth. Collects errors and keeps going.
pub fn teardown_instance(runner: &dyn Runner, layout: &Layout) -> Result<(), String> {
    let mut errors = Vec::new();
    let prefix = layout.ns_prefix();
    let namespaces = list_namespaces(runner).map_err(|e| e.to_string())?;
    // Jails first, the VM last: the VM's bridge outlives its ports.
    let (vm, jails): (Vec<_>, Vec<_>) = namespaces
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .partition(|n| **n == layout.vm_ns());
    for ns in jails.into_iter().chain(vm) {
        if let Err(e) = delete_namespace_if(runner, ns, true) {
            errors.push(e);
        }
    }
    // Folders of namespaces that are already gone.
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    // The folder itself, when jrun's namespaces were all it held.
    let _ = std::fs::remove_dir(Path::new("/etc/netns"));
    let host_veth = layout.host_veth();
    if runner
        .run(&Cmd::new(["ip", "link", "show", host_veth.as_str()]))
        .is_ok()
    {
        if let Err(e) = runner.run(&Cmd::new(["ip", "link", "del", host_veth.as_str()])) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// `/etc/netns/<ns>/resolv.conf`: `ip netns exec` shows it as the jail's `/etc/resolv.conf`.
pub fn write_resolv_conf(ns: &str) -> std::io::Result<()> {
    let dir = Layout::etc_netns(ns);
    std::fs::create_dir_all(&dir)?;
    crate::unbound::write_atomic(
        &dir.join("resolv.conf"),
        &format!(
            "# Written by jrun.\nnameserver {BRIDGE_IP}\nsearch {}\n",
            jrun_core::net::LOCAL_ZONE
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::exec::RecordingRunner;

    #[test]
    fn vm_plumbing_is_the_expected_calls() {
        let rec = RecordingRunner::new();
        let layout = Layout::new(std::path::Path::new("/nonexistent/jrun-test-home"));
        let id = layout.id.as_str().to_string();
        let link = Link {
            host: Ipv4Addr::new(10, 17, 88, 1),
            vm: Ipv4Addr::new(10, 17, 88, 2),
        };
        create_vm(&rec, &layout, link).unwrap();
        let vm = format!("jrun-{id}-vm");
        let veth = format!("jr{id}h");
        let calls = rec.calls();
        assert_eq!(calls[0], ["ip", "netns", "add", vm.as_str()]);
        assert_eq!(
            calls[1],
            [
                "ip",
                "link",
                "add",
                veth.as_str(),
                "type",
                "veth",
                "peer",
                "name",
                "uplink",
                "netns",
                vm.as_str()
            ]
        );
        assert_eq!(
            calls[2],
            ["ip", "addr", "add", "10.17.88.1/30", "dev", veth.as_str()]
        );
        let batch = &rec.commands()[4];
        assert_eq!(batch.argv, ["ip", "-n", vm.as_str(), "-batch", "-"]);
        let text = String::from_utf8(batch.stdin.clone().unwrap()).unwrap();
        assert!(text.contains("addr add 10.17.89.1/24 dev br0\n"));
        assert!(text.contains("route add default via 10.17.88.1\n"));
        assert_eq!(
            calls[5],
            [
                "ip",
                "netns",
                "exec",
                vm.as_str(),
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1"
            ]
        );
    }

    #[test]
    fn jail_address_parses_ip_output() {
        let rec = RecordingRunner::new();
        rec.answer(
            &["ip", "-n", "ns"],
            "2: eth0    inet 10.17.89.12/24 scope global eth0\\       valid_lft forever\n",
        );
        assert_eq!(
            jail_address(&rec, "ns"),
            Some(Ipv4Addr::new(10, 17, 89, 12))
        );
        assert!(jail_ready(&rec, "ns", Ipv4Addr::new(10, 17, 89, 12)));
        assert!(!jail_ready(&rec, "ns", Ipv4Addr::new(10, 17, 89, 13)));
    }

    #[test]
    fn jail_plumbing_is_two_batches() {
        let rec = RecordingRunner::new();
        let layout = Layout::new(std::path::Path::new("/nonexistent/jrun-test-home"));
        let ns = layout.jail_ns(&jrun_core::config::JailName::new("web").unwrap());
        let ip = Ipv4Addr::new(10, 17, 89, 42);
        create_jail_ns(&rec, &ns).unwrap();
        create_jail_link(&rec, &layout, &ns, ip).unwrap();
        configure_jail_address(&rec, &ns, ip).unwrap();
        let cmds = rec.commands();
        assert_eq!(cmds[0].argv, ["ip", "netns", "add", ns.as_str()]);
        let vm = layout.vm_ns();
        assert_eq!(cmds[1].argv, ["ip", "-n", vm.as_str(), "-batch", "-"]);
        let batch = String::from_utf8(cmds[1].stdin.clone().unwrap()).unwrap();
        let port = batch.split_whitespace().nth(2).unwrap().to_string();
        assert!(port.starts_with("vj42") && port.len() == 8, "{port}");
        assert_eq!(
            batch,
            format!(
                "link add {port} type veth peer name eth0 address {} netns {ns}\nlink set {port} master br0 up\n",
                jail_mac(&layout, ip)
            )
        );
        assert_eq!(cmds[2].argv, ["ip", "-n", ns.as_str(), "-batch", "-"]);
        assert_eq!(
            String::from_utf8(cmds[2].stdin.clone().unwrap()).unwrap(),
            "link set lo up\naddr add 10.17.89.42/24 dev eth0\nlink set eth0 up\nroute add default via 10.17.89.1\n"
        );
    }

    #[test]
    fn teardown_removes_only_this_instances_namespaces_jails_first() {
        let rec = RecordingRunner::new();
        let layout = Layout::new(std::path::Path::new("/nonexistent/jrun-test-home"));
        let id = layout.id.as_str().to_string();
        rec.answer(
            &["ip", "netns", "list"],
            &format!("jrun-{id}-vm (id: 0)\njrun-{id}-j-web (id: 1)\njrun-ffffff-vm\nother\n"),
        );
        rec.fail(&["ip", "link", "show"], "does not exist");
        teardown_instance(&rec, &layout).unwrap();
        let deletes: Vec<Vec<String>> = rec
            .calls()
            .into_iter()
            .filter(|c| c[..3] == ["ip", "netns", "del"])
            .collect();
        assert_eq!(
            deletes,
            [
                vec![
                    "ip".to_string(),
                    "netns".into(),
                    "del".into(),
                    format!("jrun-{id}-j-web")
                ],
                vec![
                    "ip".to_string(),
                    "netns".into(),
                    "del".into(),
                    format!("jrun-{id}-vm")
                ],
            ]
        );
    }
}
