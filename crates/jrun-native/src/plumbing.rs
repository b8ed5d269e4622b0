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

/// Applies a whole nftables ruleset inside `ns`, in one transaction. `nft` is started from
/// a thread inside the namespace (a child starts in its parent thread's network
/// namespace): no `ip netns exec` in between, whose mount namespace nft does not need.
pub fn nft_apply(runner: &dyn Runner, ns: &str, ruleset: &str) -> Result<(), ExecError> {
    let cmd = Cmd::new(["nft", "-f", "-"]).stdin(ruleset);
    let file = std::fs::File::open(Path::new("/run/netns").join(ns)).map_err(|source| {
        ExecError::Spawn {
            cmd: format!("nft -f - (in {ns})"),
            source,
        }
    })?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    ExecError::Spawn {
                        cmd: format!("nft -f - (in {ns})"),
                        source: e.into(),
                    }
                })?;
                runner.run(&cmd).map(|_| ())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(ExecError::Spawn {
                    cmd: cmd.display(),
                    source: std::io::Error::other("namespace thread panicked"),
                })
            })
    })
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
pub fn create_jail_ns(ns: &str) -> std::io::Result<()> {
    crate::netns::add(ns)
}

/// The jail's veth pair: its bridge port (up, on the bridge) in the VM namespace, its `eth0`
/// (with the jail's deterministic MAC) in the jail's; and the bridge's permanent neighbour
/// entry for the jail. Over netlink, from a thread in the VM namespace.
pub fn create_jail_link(layout: &Layout, ns: &str, ip: Ipv4Addr) -> std::io::Result<()> {
    let port = Layout::bridge_port(ip, deployment_tag());
    let jail_ns = std::fs::File::open(Path::new("/run/netns").join(ns))?;
    let mac = mac_bytes(&jail_mac(layout, ip));
    crate::probe::in_netns(&layout.vm_ns(), move || {
        crate::nl::add_veth_port(&port, BRIDGE, JAIL_IFACE, mac, &jail_ns)?;
        // The bridge never ARPs for its jails (nor, below, a jail for its gateway): a lost
        // ARP reply under load cost a jail's first DNS answer (issue 16).
        crate::nl::set_permanent_neighbour(BRIDGE, ip, mac)
    })
}

/// Forgets the bridge's permanent neighbour entry for a jail's address (the jail is gone;
/// a stale entry would make the bridge probe see the address as taken). Absent is fine.
#[cfg(test)]
pub fn forget_jail_neighbour(layout: &Layout, ip: Ipv4Addr) {
    let _ = crate::probe::in_netns(&layout.vm_ns(), move || {
        crate::nl::delete_neighbour(BRIDGE, ip)
    });
}

/// The jail's side: loopback and `eth0` up, its address, the default route via the bridge
/// and a permanent neighbour entry for the gateway. Over netlink, from a thread in `ns`.
pub fn configure_jail_address(layout: &Layout, ns: &str, ip: Ipv4Addr) -> std::io::Result<()> {
    let gateway_mac = mac_bytes(&bridge_mac(layout));
    crate::probe::in_netns(ns, move || {
        crate::nl::set_link_up("lo")?;
        crate::nl::add_address(JAIL_IFACE, ip, SUBNET_PREFIX)?;
        crate::nl::set_link_up(JAIL_IFACE)?;
        crate::nl::add_default_route(BRIDGE_IP)?;
        crate::nl::set_permanent_neighbour(JAIL_IFACE, BRIDGE_IP, gateway_mac)
    })
}

/// `02:6a:…` as bytes (the MACs jrun makes are always well formed).
fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("a MAC jrun made");
    }
    out
}

/// A tag that differs between deployments (time and pid mixed), for bridge port names.
fn deployment_tag() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((nanos >> 8) ^ std::process::id()) as u16
}

/// Whether the jail's namespace exists with its address and default route in place. Read
/// over netlink: it runs for every jail on every `up`.
pub fn jail_ready(ns: &str, ip: Ipv4Addr) -> bool {
    crate::probe::in_netns(ns, move || {
        Ok(
            crate::nl::ipv4_addresses(JAIL_IFACE)?.contains(&(ip, SUBNET_PREFIX))
                && crate::nl::has_ipv4_default_route()?,
        )
    })
    .unwrap_or(false)
}

/// The IPv4 address on the jail's bridge interface, if any.
pub fn jail_address(ns: &str) -> Option<Ipv4Addr> {
    crate::probe::in_netns(ns, || crate::nl::ipv4_addresses(JAIL_IFACE))
        .ok()?
        .first()
        .map(|(ip, _)| *ip)
}

/// The network namespaces `ip netns` names: the mount points under `/run/netns` (what
/// `ip netns list` reads, without the process).
pub fn mounted_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `ip netns` knows `ns` (its mount point exists; no process spawned).
pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Kills every process still running inside `ns` (best effort): those whose network
/// namespace is the one mounted at `/run/netns/<ns>` (what `ip netns pids` does).
pub fn kill_namespace_processes(ns: &str) {
    kill_namespaces_processes(&[ns]);
}

/// [`kill_namespace_processes`] for several namespaces in one pass over `/proc` (a pass
/// reads every process's links: once per `down`, not once per jail).
pub fn kill_namespaces_processes(namespaces: &[&str]) {
    use std::os::unix::fs::MetadataExt;
    let wanted: BTreeSet<String> = namespaces
        .iter()
        .filter_map(|ns| std::fs::metadata(Path::new("/run/netns").join(ns)).ok())
        .map(|m| format!("net:[{}]", m.ino()))
        .collect();
    if wanted.is_empty() {
        return;
    }
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
        if link.is_ok_and(|l| l.to_str().is_some_and(|l| wanted.contains(l))) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The first half of deleting jails' namespaces together (as [`delete_namespace`] does
/// one): takes their links down and drops their neighbour entries on the bridge. One thread
/// visits every namespace (to read its address and take its link down), one visits the VM
/// namespace. Best effort: a namespace that is gone has nothing to take down.
pub fn take_jail_links_down(layout: &Layout, namespaces: &[String]) {
    let present: Vec<String> = namespaces
        .iter()
        .filter(|ns| namespace_exists(ns))
        .cloned()
        .collect();
    // Down first: the kernel tears a deleted namespace down asynchronously, and until
    // then its link would still answer on the bridge (and mislead the next probe).
    let addresses: Vec<Ipv4Addr> = std::thread::spawn(move || {
        let mut found = Vec::new();
        for ns in &present {
            let Ok(file) = std::fs::File::open(Path::new("/run/netns").join(ns)) else {
                continue;
            };
            if nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                continue;
            }
            if let Some((ip, _)) = crate::nl::ipv4_addresses(JAIL_IFACE)
                .ok()
                .and_then(|a| a.first().copied())
            {
                found.push(ip);
            }
            let _ = crate::nl::set_link_down(JAIL_IFACE);
        }
        found
    })
    .join()
    .unwrap_or_default();
    if !addresses.is_empty() {
        let _ = crate::probe::in_netns(&layout.vm_ns(), move || {
            for ip in addresses {
                let _ = crate::nl::delete_neighbour(BRIDGE, ip);
            }
            Ok(())
        });
    }
}

/// The second half: deletes the namespaces whose links [`take_jail_links_down`] took down.
/// One pass over `/proc` kills what is left in them, then they are unmounted together.
/// One result per namespace.
pub fn delete_downed_namespaces(namespaces: &[String]) -> Vec<Result<(), String>> {
    let names: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    kill_namespaces_processes(&names);
    // In parallel: each unmount waits for an RCU grace period, and concurrent waits
    // share one.
    std::thread::scope(|scope| {
        let removals: Vec<_> = namespaces
            .iter()
            .map(|ns| scope.spawn(move || remove_namespace_files(ns, namespace_exists(ns))))
            .collect();
        removals
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err("the removal panicked".into()))
            })
            .collect()
    })
}

/// Deletes a namespace (its veths go with it) and its `/etc/netns` folder. Absent is fine.
pub fn delete_namespace(ns: &str) -> Result<(), String> {
    delete_namespace_if(ns, namespace_exists(ns))
}

/// [`delete_namespace`] when the caller already knows whether `ns` exists.
fn delete_namespace_if(ns: &str, exists: bool) -> Result<(), String> {
    kill_namespace_processes(ns);
    if exists {
        // The kernel tears a deleted namespace down asynchronously; until then its link
        // would still answer on the bridge (and mislead the next address probe). Taking the
        // link down first is immediate. Absent (no link yet) is fine.
        let _ = crate::probe::in_netns(ns, || crate::nl::set_link_down(JAIL_IFACE));
    }
    remove_namespace_files(ns, exists)
}

/// Unmounts and removes the namespace's mount point (when `exists`) and its `/etc/netns`
/// folder.
fn remove_namespace_files(ns: &str, exists: bool) -> Result<(), String> {
    let mut errors = Vec::new();
    if exists {
        if let Err(e) = crate::netns::delete(ns) {
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

/// Whether a deletion failed only because its object is gone already (another deletion
/// or the kernel took it first): done, as netavark treats ENODEV/ENOENT.
fn already_gone(e: &ExecError) -> bool {
    match e {
        ExecError::Failed { stderr, .. } => [
            "Cannot find device",
            "No such file or directory",
            "does not exist",
            "No such device",
        ]
        .iter()
        .any(|m| stderr.contains(m)),
        ExecError::Spawn { .. } => false,
    }
}

/// Removes everything of the instance on the host: every namespace with its prefix, their
/// `/etc/netns` folders and the host's veth. Collects errors and keeps going.
pub fn teardown_instance(runner: &dyn Runner, layout: &Layout) -> Result<(), String> {
    let mut errors = Vec::new();
    // The host's veth first: deleting it takes its peer in the VM namespace along at once.
    // Deleted after the namespace, it would be removed by the kernel on its own some time
    // later, and `ip link del` would race that ("Cannot find device").
    let host_veth = layout.host_veth();
    match runner.run(&Cmd::new(["ip", "link", "del", host_veth.as_str()])) {
        Err(e) if !already_gone(&e) => errors.push(e.to_string()),
        _ => {}
    }
    let prefix = layout.ns_prefix();
    let namespaces = mounted_namespaces();
    // Jails first, the VM last: the VM's bridge outlives its ports.
    let (vm, jails): (Vec<_>, Vec<_>) = namespaces
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .partition(|n| **n == layout.vm_ns());
    for ns in jails.into_iter().chain(vm) {
        if let Err(e) = delete_namespace_if(ns, true) {
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
    fn jail_plumbing_matches_what_ip_shows() {
        // Real (root): a VM namespace with its bridge, a jail built in it over netlink, and
        // what `ip` sees afterwards.
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let vm = layout.vm_ns();
        let jail = layout.jail_ns(&jrun_core::config::JailName::new("web").unwrap());
        crate::netns::add(&vm).unwrap();
        crate::netns::add(&jail).unwrap();
        let result = std::panic::catch_unwind(|| {
            let ip = |ns: &str, args: &str| {
                let mut argv = vec!["ip", "-n", ns];
                argv.extend(args.split_whitespace());
                let out = jrun_core::exec::SystemRunner.run(&Cmd::new(argv)).unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            ip(
                &vm,
                &format!("link add br0 address {} type bridge", bridge_mac(&layout)),
            );
            ip(&vm, "addr add 10.17.89.1/24 dev br0");
            ip(&vm, "link set br0 up");
            let addr = Ipv4Addr::new(10, 17, 89, 42);
            assert!(!jail_ready(&jail, addr));
            create_jail_link(&layout, &jail, addr).unwrap();
            configure_jail_address(&layout, &jail, addr).unwrap();
            assert!(jail_ready(&jail, addr));
            assert_eq!(jail_address(&jail), Some(addr));
            let ports = ip(&vm, "-o link show master br0");
            assert!(ports.contains("vj42") && ports.contains(",UP"), "{ports}");
            let eth0 = ip(&jail, "-o link show eth0");
            assert!(eth0.contains(&jail_mac(&layout, addr)), "{eth0}");
            assert!(eth0.contains(",UP"), "{eth0}");
            assert!(ip(&jail, "-o addr show dev eth0").contains(" 10.17.89.42/24 "));
            assert!(ip(&jail, "route show default").contains("via 10.17.89.1 dev eth0"));
            let gw = ip(&jail, "neigh show 10.17.89.1 dev eth0");
            assert!(
                gw.contains(&bridge_mac(&layout)) && gw.contains("PERMANENT"),
                "{gw}"
            );
            let on_bridge = ip(&vm, "neigh show 10.17.89.42 dev br0");
            assert!(
                on_bridge.contains(&jail_mac(&layout, addr)) && on_bridge.contains("PERMANENT"),
                "{on_bridge}"
            );
            // The jail answers from its namespace, over the bridge.
            let ping = jrun_core::exec::SystemRunner.run(&Cmd::new([
                "ip",
                "netns",
                "exec",
                vm.as_str(),
                "ping",
                "-c1",
                "-W2",
                "10.17.89.42",
            ]));
            assert!(ping.is_ok(), "{ping:?}");
            forget_jail_neighbour(&layout, addr);
            assert!(ip(&vm, "neigh show 10.17.89.42 dev br0").trim().is_empty());
        });
        let _ = delete_namespace(&jail);
        let _ = crate::netns::delete(&vm);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn jails_are_deleted_together_with_their_processes_and_neighbour_entries() {
        // Real (root): two jails on a bridge, a process left in one, and a third name
        // that has no namespace (absent is done).
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let vm = layout.vm_ns();
        let names = ["a", "b", "gone"]
            .map(|n| layout.jail_ns(&jrun_core::config::JailName::new(n).unwrap()));
        crate::netns::add(&vm).unwrap();
        let mut left = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let ip = |ns: &str, args: &str| {
                let mut argv = vec!["ip", "-n", ns];
                argv.extend(args.split_whitespace());
                jrun_core::exec::SystemRunner.run(&Cmd::new(argv)).unwrap();
            };
            ip(
                &vm,
                &format!("link add br0 address {} type bridge", bridge_mac(&layout)),
            );
            ip(&vm, "addr add 10.17.89.1/24 dev br0");
            ip(&vm, "link set br0 up");
            for (ns, last) in names[..2].iter().zip([43u8, 44]) {
                crate::netns::add(ns).unwrap();
                let addr = Ipv4Addr::new(10, 17, 89, last);
                create_jail_link(&layout, ns, addr).unwrap();
                configure_jail_address(&layout, ns, addr).unwrap();
            }
            let sleeper = std::process::Command::new("ip")
                .args(["netns", "exec", names[0].as_str(), "sleep", "60"])
                .spawn()
                .unwrap();
            left = Some(sleeper);
            // `ip netns exec` enters the namespace, then becomes `sleep`.
            let pid = left.as_ref().unwrap().id();
            let ours = std::fs::read_link("/proc/self/ns/net").ok();
            let inside = |pid: u32| {
                let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
                ns.is_some() && ns != ours
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !inside(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            take_jail_links_down(&layout, &names);
            let results = delete_downed_namespaces(&names);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            for ns in &names {
                assert!(!namespace_exists(ns), "{ns}");
            }
            let status = left.take().unwrap().wait().unwrap();
            assert!(
                !status.success(),
                "the process in the jail was killed: {status:?}"
            );
            let out = jrun_core::exec::SystemRunner
                .run(&Cmd::new([
                    "ip",
                    "-n",
                    vm.as_str(),
                    "neigh",
                    "show",
                    "dev",
                    "br0",
                ]))
                .unwrap();
            let neigh = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                !neigh.contains("10.17.89.43") && !neigh.contains("10.17.89.44"),
                "{neigh}"
            );
        }));
        if let Some(mut p) = left {
            let _ = p.kill();
            let _ = p.wait();
        }
        for ns in &names {
            let _ = delete_namespace(ns);
        }
        let _ = crate::netns::delete(&vm);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    /// A real instance's namespaces and host link (root), under a home of its own.
    fn real_instance() -> (tempfile::TempDir, Layout) {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        crate::netns::add(&layout.vm_ns()).unwrap();
        let web = jrun_core::config::JailName::new("web").unwrap();
        crate::netns::add(&layout.jail_ns(&web)).unwrap();
        let host = layout.host_veth();
        let vm = layout.vm_ns();
        jrun_core::exec::SystemRunner
            .run(&Cmd::new([
                "ip", "link", "add", &host, "type", "veth", "peer", "name", UPLINK, "netns", &vm,
            ]))
            .unwrap();
        (home, layout)
    }

    fn leftovers(layout: &Layout) -> Vec<String> {
        let mut left: Vec<String> = mounted_namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&layout.ns_prefix()))
            .collect();
        if Path::new("/sys/class/net")
            .join(layout.host_veth())
            .exists()
        {
            left.push(layout.host_veth());
        }
        left
    }

    #[test]
    fn teardown_removes_the_instances_namespaces_and_link() {
        let (_home, layout) = real_instance();
        let other = format!("jrun-nltest-other-{}", std::process::id());
        crate::netns::add(&other).unwrap();
        let result = teardown_instance(&jrun_core::exec::SystemRunner, &layout);
        let kept = namespace_exists(&other);
        crate::netns::delete(&other).unwrap();
        result.unwrap();
        assert_eq!(leftovers(&layout), Vec::<String>::new());
        assert!(kept, "another instance's namespace must stay");
    }

    #[test]
    fn teardown_when_the_link_and_a_namespace_are_already_gone_succeeds() {
        // The flake of issue 16: the VM namespace went first and the kernel removed the
        // host's veth on its own; deleting it again must count as done.
        let (_home, layout) = real_instance();
        crate::netns::delete(&layout.vm_ns()).unwrap();
        let host = layout.host_veth();
        let _ = jrun_core::exec::SystemRunner.run(&Cmd::new(["ip", "link", "del", &host]));
        teardown_instance(&jrun_core::exec::SystemRunner, &layout).unwrap();
        assert_eq!(leftovers(&layout), Vec::<String>::new());
        // Nothing of it left at all: still done.
        teardown_instance(&jrun_core::exec::SystemRunner, &layout).unwrap();
    }

    #[test]
    fn a_failed_link_deletion_other_than_gone_is_an_error() {
        let rec = RecordingRunner::new();
        let layout = Layout::new(std::path::Path::new("/nonexistent/jrun-test-home"));
        rec.fail(&["ip", "link", "del"], "Cannot find device \"jrXXXXXXh\"");
        teardown_instance(&rec, &layout).unwrap();
        rec.fail(&["ip", "link", "del"], "Operation not permitted");
        let err = teardown_instance(&rec, &layout).unwrap_err();
        assert!(err.contains("Operation not permitted"), "{err}");
    }
}
