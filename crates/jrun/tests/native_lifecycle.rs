//! Native runtime, end to end (root): IP assignment skips foreign addresses and stays
//! stable, `up` is idempotent, `down` removes exactly the named jails (keys kept), and
//! `stop` leaves nothing behind.

mod native_support;

use std::process::Command;

use native_support::{instance_id, leftovers, processes_mentioning, Instance};

fn sh(argv: &[&str]) {
    let st = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(st.success(), "{argv:?}");
}

#[test]
fn ip_assignment_skips_foreign_addresses_and_stays_stable() {
    let inst = Instance::new(false);
    inst.start();
    let id = instance_id(inst.home.path());
    // Something jrun does not know answers at .10 on the bridge.
    let vm = format!("jrun-{id}-vm");
    let foreign = format!("jrun-{id}-foreign");
    sh(&["ip", "netns", "add", &foreign]);
    sh(&[
        "ip", "-n", &vm, "link", "add", "fx", "type", "veth", "peer", "name", "eth0", "netns",
        &foreign,
    ]);
    sh(&["ip", "-n", &vm, "link", "set", "fx", "master", "br0", "up"]);
    sh(&[
        "ip",
        "-n",
        &foreign,
        "addr",
        "add",
        "10.17.89.10/24",
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &foreign, "link", "set", "eth0", "up"]);

    let cfg = inst.config("jail \"a\" { }\njail \"b\" { }\njail \"c\" { }\n");
    inst.up(&cfg);
    let ips = |inst: &Instance| ["a", "b", "c"].map(|j| inst.ip_of(j));
    let first = ips(&inst);
    assert!(!first.contains(&"10.17.89.10".to_string()), "{first:?}");
    assert_eq!(first, ["10.17.89.11", "10.17.89.12", "10.17.89.13"]);

    // Down of another jail: the others keep theirs.
    inst.ok(&["down", "b"]);
    assert_eq!(inst.ip_of("a"), first[0]);
    assert_eq!(inst.ip_of("c"), first[2]);
    // Stop and start: jails are recorded but missing until the next up, at the same IPs.
    inst.ok(&["stop"]);
    inst.start();
    let states: Vec<String> = inst.jails().into_iter().map(|j| j.1).collect();
    assert_eq!(states, ["missing", "missing"]);
    inst.up(&cfg);
    let again = ips(&inst);
    assert_eq!((&again[0], &again[2]), (&first[0], &first[2]));
    assert_eq!(inst.resolve("a", "c"), first[2]);
}

#[test]
fn second_up_is_a_no_op_and_down_removes_only_the_named_jail() {
    let inst = Instance::new(true);
    inst.start();
    let again = inst.run(&["start"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already running"));

    let cfg = inst.config("jail \"web\" { }\njail \"db\" { }\n");
    inst.up(&cfg);
    let mesh_before = inst.status()["jails"][0]["mesh_address"].clone();
    assert!(
        mesh_before.as_str().is_some_and(|a| a.starts_with('2')),
        "{mesh_before}"
    );
    let state_before = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    let out = inst.up(&cfg);
    assert!(out.contains("Nothing to change"), "{out}");
    let state_after = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    assert_eq!(state_before, state_after);

    let web_ip = inst.ip_of("web");
    inst.ok(&["down", "db"]);
    let jails = inst.jails();
    assert_eq!(
        jails,
        [("web".to_string(), "up".to_string(), web_ip.clone())]
    );
    assert_eq!(inst.dns_status("web", "db.local.jrun"), "NXDOMAIN");
    assert_eq!(inst.resolve("web", "web"), web_ip);
    // Its key stays: redeployed, it has the same mesh address.
    assert!(inst.home.path().join("keys/jails/db.pem").exists());
    inst.up(&cfg);
    let db = inst.status()["jails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "db")
        .cloned()
        .unwrap();
    assert_eq!(db["mesh_address"], mesh_before);
    assert_eq!(db["state"], "up");
}

#[test]
fn stop_leaves_nothing_behind() {
    let tables_before = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap()
        .stdout;
    let inst = Instance::new(true);
    inst.start();
    let port = native_support::free_port();
    let cfg = inst.config(&format!(
        "jail \"one\" {{ forward {{ p {{ host = {port}; jail = 80; }} }} }}\njail \"two\" {{ }}\n"
    ));
    inst.up(&cfg);
    let id = instance_id(inst.home.path());
    let home = inst.home.path().display().to_string();
    assert!(!leftovers(&id).is_empty());
    assert!(!processes_mentioning(&home).is_empty());

    let out = inst.ok(&["stop"]);
    assert!(out.contains("stopped"), "{out}");
    assert_eq!(leftovers(&id), Vec::<String>::new());
    assert_eq!(processes_mentioning(&home), Vec::<String>::new());
    assert!(!inst.home.path().join("run").exists());
    let tables_after = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&tables_before),
        String::from_utf8_lossy(&tables_after)
    );
    // The forward's host port is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    // Stopping again is fine, and status says so.
    inst.ok(&["stop"]);
    assert_eq!(inst.status()["instance"]["running"], false);
    // State is kept for the next start.
    assert_eq!(inst.jails().len(), 2);
}

#[test]
fn supervisor_restarts_a_child_that_dies() {
    let inst = Instance::new(false);
    inst.start();
    let cfg = inst.config("jail \"w\" { }\n");
    inst.up(&cfg);
    let unbound = |inst: &Instance| {
        inst.status()["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "unbound")
            .cloned()
            .unwrap()
    };
    let before = unbound(&inst);
    let pid = before["pid"].as_u64().unwrap().to_string();
    sh(&["kill", "-9", &pid]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut after = unbound(&inst);
    while (after["pid"] == before["pid"] || after["pid"].is_null())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = unbound(&inst);
    }
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(after["restarts"], 1);
    // The new resolver serves the whole record set.
    let ip = inst.ip_of("w");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while inst.resolve("w", "w") != ip && std::time::Instant::now() < deadline {}
    assert_eq!(inst.resolve("w", "w"), ip);
}

#[test]
fn purge_deletes_state_and_logs_but_keeps_keys_and_vm_runtime_says_not_wired() {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config("jail \"k\" { }\n");
    inst.up(&cfg);
    let id = instance_id(inst.home.path());
    inst.ok(&["purge", "-y"]);
    assert_eq!(leftovers(&id), Vec::<String>::new());
    let home = inst.home.path();
    assert!(!home.join("state.json").exists());
    assert!(!home.join("logs").exists());
    assert!(home.join("keys/jails/k.pem").exists());

    // The runtime flag overrides JRUN_RUNTIME: the vm runtime here has no VM.
    let out = inst.run(&["--runtime", "vm", "cmd", "k", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not running"), "{err}");
}
