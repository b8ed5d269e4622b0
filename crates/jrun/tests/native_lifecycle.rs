//! Native runtime, end to end (root): IP assignment skips foreign addresses and stays
//! stable, `up` is idempotent, `down` removes exactly the named jails (keys kept), and
//! `stop` leaves nothing behind.

mod local_env;
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
    // The new resolver serves the whole record set, once it is listening again.
    let listening = || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &inst.vm_ns(),
                "ss",
                "-Hlun",
                "src",
                "10.17.89.1:53",
            ])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !listening() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ip = inst.ip_of("w");
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

#[test]
fn stop_purge_and_start_refuse_while_another_jrun_holds_the_lock() {
    use jrun_core::state::{LockWait, StateStore};
    let inst = Instance::new(false);
    inst.start();
    let id = instance_id(inst.home.path());
    let home = inst.home.path();
    let store = StateStore::new(home);
    let held = store.lock(LockWait::No).unwrap();
    for args in [&["stop"][..], &["purge", "-y"], &["start"]] {
        let out = inst.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "jrun {args:?} ran under another's lock"
        );
        assert!(err.contains("another jrun"), "jrun {args:?}: {err}");
    }
    // Nothing was torn down under the holder.
    assert!(!leftovers(&id).is_empty());
    assert_eq!(inst.status()["instance"]["running"], true);
    drop(held);

    inst.ok(&["purge", "-y"]);
    assert_eq!(leftovers(&id), Vec::<String>::new());
    assert!(!home.join("state.json").exists());
    // The lock file stays: a process waiting on it must lock the same file as the next.
    assert!(home.join("state.lock").exists());
    let again = store.lock(LockWait::No).unwrap();
    assert!(again.state.jails.is_empty());
}

#[test]
fn every_spelling_of_the_home_is_one_instance() {
    let inst = Instance::new(false);
    let home = inst.home.path();
    let id = instance_id(home);
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("home");
    std::os::unix::fs::symlink(home, &link).unwrap();
    // Started through a symlink with a trailing slash…
    let out = inst
        .command(&["start"])
        .env("JRUN_HOME", format!("{}/", link.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // …it is the instance of the plain path, its supervisor named by the real path…
    assert_eq!(inst.id(), id);
    assert_eq!(inst.status()["instance"]["running"], true);
    let canonical = home.canonicalize().unwrap().display().to_string();
    let supervisors = processes_mentioning(&format!("supervise --home {canonical}"));
    assert_eq!(supervisors.len(), 1, "{supervisors:?}");
    // …and stopped through a `..` spelling, nothing of it is left.
    let dotted = home.join("..").join(home.file_name().unwrap());
    let out = inst
        .command(&["stop"])
        .env("JRUN_HOME", &dotted)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());
    assert_eq!(processes_mentioning(&canonical), Vec::<String>::new());
}

#[test]
fn stop_never_signals_a_process_that_is_not_this_instances_supervisor() {
    use std::os::unix::process::CommandExt;
    let inst = Instance::new(false);
    let home = inst.home.path();
    // A stale pid file naming a live process that looks like a supervisor: another
    // instance's, and one of an older jrun without --home.
    for decoy_args in [
        vec!["supervise", "--home", "/tmp/another-jrun-home"],
        vec!["supervise"],
    ] {
        let mut decoy = Command::new("sh");
        decoy
            .args(["-c", "sleep 60", "sh"])
            .args(&decoy_args)
            .process_group(0);
        let mut decoy = decoy.spawn().unwrap();
        std::fs::create_dir_all(home.join("run")).unwrap();
        std::fs::write(
            home.join("run/supervisor.pid"),
            format!("{} 0\n", decoy.id()),
        )
        .unwrap();
        inst.ok(&["stop"]);
        let alive = decoy.try_wait().unwrap().is_none();
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(decoy.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = decoy.wait();
        assert!(alive, "jrun stop killed {decoy_args:?}");
    }
}

/// A namespace deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_static_ip_something_else_answers_on_is_refused_and_nothing_changes() {
    let inst = Instance::new(false);
    inst.start();
    let id = instance_id(inst.home.path());
    let cfg = inst.config("jail \"a\" { }\n");
    inst.up(&cfg);
    // Something jrun does not know answers at .60 on the bridge.
    let vm = format!("jrun-{id}-vm");
    let foreign = Netns(format!("jrun-{id}-squat"));
    sh(&["ip", "netns", "add", &foreign.0]);
    sh(&[
        "ip", "-n", &vm, "link", "add", "sq", "type", "veth", "peer", "name", "eth0", "netns",
        &foreign.0,
    ]);
    sh(&["ip", "-n", &vm, "link", "set", "sq", "master", "br0", "up"]);
    sh(&[
        "ip",
        "-n",
        &foreign.0,
        "addr",
        "add",
        "10.17.89.60/24",
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &foreign.0, "link", "set", "eth0", "up"]);
    let state_before = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    let jails_before = inst.jails();

    // A new jail with that static address, then the running jail moved onto it.
    for text in [
        "jail \"a\" { }\njail \"s\" { ip = \"10.17.89.60\"; }\n",
        "jail \"a\" { ip = \"10.17.89.60\"; }\n",
    ] {
        let cfg = inst.config(text);
        let out = inst.run(&["up", cfg.to_str().unwrap()]);
        assert!(!out.status.success(), "{text}");
        // (miette wraps the message: compare its words.)
        let err = String::from_utf8_lossy(&out.stderr);
        let words: Vec<&str> = err
            .split_whitespace()
            .filter(|w| !matches!(*w, "│" | "×"))
            .collect();
        assert!(
            words.join(" ").contains(
                "ip = \"10.17.89.60\", but something jrun does not manage already answers"
            ),
            "{err}"
        );
        let state = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
        assert_eq!(state, state_before);
        assert_eq!(inst.jails(), jails_before);
    }
}

/// With only jails on the bridge, the probe ends once each jail has answered a last
/// question after the sweep: an address a jail answers on besides its own (added inside
/// it, behind jrun's back) must still be heard before that, on every round.
#[test]
fn an_address_a_jail_answers_on_besides_its_own_is_seen_in_use() {
    let inst = Instance::new(false);
    inst.start();
    let base = "jail \"a\" { }\njail \"b\" { }\n";
    inst.up(&inst.config(base));
    let (a, b) = (inst.ip_of("a"), inst.ip_of("b"));
    assert_eq!((a.as_str(), b.as_str()), ("10.17.89.10", "10.17.89.11"));
    // Jail b also answers for .12 and .13, the next addresses the pool would hand out.
    for extra in ["10.17.89.12/24", "10.17.89.13/24"] {
        sh(&[
            "ip",
            "-n",
            &inst.jail_ns("b"),
            "addr",
            "add",
            extra,
            "dev",
            "eth0",
        ]);
    }
    for round in 0..5 {
        let new = format!("n{round}");
        inst.up(&inst.config(&format!("{base}jail \"{new}\" {{ }}\n")));
        assert_eq!(inst.ip_of(&new), "10.17.89.14", "round {round}");
        inst.ok(&["down", &new]);
    }
    // A static address only a jail's extra address answers on is refused.
    let out = inst.run(&[
        "up",
        inst.config(&format!("{base}jail \"s\" {{ ip = \"10.17.89.13\"; }}\n"))
            .to_str()
            .unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
}
