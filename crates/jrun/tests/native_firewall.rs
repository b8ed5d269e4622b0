//! Native runtime, end to end (root): each jail's mesh interface drops packets from
//! addresses outside its `mesh_peers` set, while its other traffic works.

mod local_env;
mod native_support;

use std::process::Command;
use std::time::{Duration, Instant};

use native_support::{instance_id, Instance};

#[test]
fn mesh_interface_drops_non_peers_and_other_traffic_works() {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config("jail \"a\" { }\njail \"b\" { }\n");
    inst.up(&cfg);
    let status = inst.status();
    let jail = |name: &str| {
        status["jails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .cloned()
            .unwrap()
    };
    let (a_mesh, b_mesh) = (
        jail("a")["mesh_address"].as_str().unwrap().to_string(),
        jail("b")["mesh_address"].as_str().unwrap().to_string(),
    );
    let b_ip = jail("b")["ip"].as_str().unwrap().to_string();
    let b_ns = format!("jrun-{}-j-b", instance_id(inst.home.path()));

    // b's node has its mesh address on ygg0.
    let (_, addrs) = inst.in_jail("b", &["ip", "-6", "addr", "show", "dev", "ygg0"]);
    assert!(addrs.contains(&b_mesh), "{addrs}");

    // a is not in b's mesh_peers: its packets over the mesh are dropped by b's firewall.
    let before = inst.mesh_drops("b");
    let (code, _) = inst.in_jail("a", &["ping", "-6", "-c", "2", "-W", "1", &b_mesh]);
    assert_ne!(code, 0);
    // The drop rule counted them once the mesh delivered them (allow for route setup).
    let deadline = Instant::now() + Duration::from_secs(15);
    while inst.mesh_drops("b") == before && Instant::now() < deadline {
        let _ = inst.in_jail("a", &["ping", "-6", "-c", "1", "-W", "1", &b_mesh]);
    }
    assert!(
        inst.mesh_drops("b") > before,
        "no mesh packet from a reached b's drop rule"
    );

    // b's other traffic is untouched.
    let (code, _) = inst.in_jail("a", &["ping", "-c", "1", "-W", "2", &b_ip]);
    assert_eq!(code, 0);

    // Allowing exactly a's address lets it through: the set is what decides.
    let element = format!("{{ {a_mesh} }}");
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b_ns,
            "nft",
            "add",
            "element",
            "inet",
            "jrun",
            "mesh_peers",
            &element,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reached = false;
    while !reached && Instant::now() < deadline {
        reached = inst
            .in_jail("a", &["ping", "-6", "-c", "1", "-W", "1", &b_mesh])
            .0
            == 0;
    }
    assert!(reached, "a could not reach b over the mesh even as a peer");
}

/// A Yggdrasil node in the host namespace, standing in for a relay on this machine.
struct HostNode {
    child: std::process::Child,
    admin: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl HostNode {
    /// Listens only on `host` (an instance's host-side link address), never on every
    /// interface of the machine.
    fn start(host: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("yggdrasil")
            .args(["-genconf", "-json"])
            .output()
            .unwrap();
        let mut conf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let admin = dir.path().join("admin.sock");
        conf["Listen"] = serde_json::json!([format!("tcp://{host}:{port}")]);
        conf["AdminListen"] = format!("unix://{}", admin.display()).into();
        conf["IfName"] = "none".into();
        conf["MulticastInterfaces"] = serde_json::json!([]);
        conf["Peers"] = serde_json::json!([]);
        let path = dir.path().join("node.conf");
        std::fs::write(&path, conf.to_string()).unwrap();
        let child = Command::new("yggdrasil")
            .args(["-useconffile", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        HostNode {
            child,
            admin,
            _dir: dir,
        }
    }

    fn peer_count(&self) -> usize {
        let out = Command::new("yggdrasilctl")
            .args([
                "-json",
                &format!("-endpoint=unix://{}", self.admin.display()),
                "getPeers",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["peers"]
            .as_array()
            .map(|a| a.len())
            .or_else(|| v["peers"].as_object().map(|o| o.len()))
            .unwrap_or(0)
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn vm_node_peers_with_the_relay_peer_on_this_machine() {
    let port = native_support::free_port();
    let mut inst = Instance::new(true);
    inst.set_env("JRUN_RELAY_PEER", &format!("tcp://host:{port}"));
    inst.start();
    // The stand-in relay listens on the link's host side, which exists once started.
    let relay = HostNode::start(&inst.host_address(), port);
    inst.redial_vm_node();
    let deadline = Instant::now() + Duration::from_secs(15);
    while relay.peer_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        relay.peer_count(),
        1,
        "the VM node did not peer with the relay"
    );
}
