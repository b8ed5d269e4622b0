//! Faults behind jrun's back on the native runtime (review `native-faults.md`), end to end
//! (root): each test recreates one fault and checks that the instance survives or
//! converges.

mod local_env;
mod native_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use native_support::Instance;

thread_local! {
    /// The instance id the D4 test forces on both of its homes.
    static FORCED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A small tmpfs mounted over a folder; unmounted on drop (after the instance that lives
/// in it has stopped: declare it first).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn service_pid(inst: &Instance, name: &str) -> Option<u64> {
    inst.status()["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?["pid"]
        .as_u64()
}

/// D1: with `JRUN_HOME`'s disk full, a service that dies is restarted; the supervisor
/// (and with it every service, the resolver and the forwards) lives on, though its log
/// line is lost.
#[test]
fn supervisor_survives_a_full_disk() {
    let inst = Instance::new(false);
    let _tmpfs = Tmpfs::mount(inst.home.path(), "16m");
    let cfg = inst.config("jail \"app\" {\n  exec { s { cmd = \"exec sleep 600\"; } }\n}\n");
    inst.start();
    inst.up(&cfg);
    let supervisor: u64 = std::fs::read_to_string(inst.home.path().join("run/supervisor.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let first = service_pid(&inst, "s").expect("the service runs");

    // Fill the disk, then make the supervisor log: a service dies.
    let fill = inst.home.path().join("fill");
    let mut f = std::fs::File::create(&fill).unwrap();
    let block = vec![0u8; 1 << 16];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        match service_pid(&inst, "s") {
            Some(p) if p != first => break p,
            _ if Instant::now() > deadline => panic!("the service was not restarted"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(restarted > 0);
    assert!(
        Path::new(&format!("/proc/{supervisor}")).exists(),
        "the supervisor died of its full disk"
    );
    assert_eq!(inst.status()["instance"]["running"], true);
    std::fs::remove_file(&fill).unwrap();
}

/// D2: a jail built again at the same address is reached by the other jails at once: its
/// MAC is fixed by its address, so their neighbour caches stay right.
#[test]
fn a_recreated_jail_is_reached_at_once() {
    let inst = Instance::new(false);
    let cfg = inst.config(
        "jail \"srv\" {\n  exec { http { cmd = \"exec python3 -m http.server 8000\"; } }\n}\njail \"cli\" { }\n",
    );
    inst.start();
    inst.up(&cfg);
    let srv = inst.ip_of("srv");
    let connect = |timeout: f64| {
        let code = format!(
            "import socket; socket.create_connection(('{srv}', 8000), timeout={timeout}).close()"
        );
        inst.in_jail("cli", &["python3", "-c", &code]).0 == 0
    };
    // Warm: cli's neighbour cache holds srv's MAC.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connect(1.0) {
        assert!(Instant::now() < deadline, "srv never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    inst.ok(&["down", "srv"]);
    inst.up(&cfg);
    assert_eq!(inst.ip_of("srv"), srv, "srv came back at its address");
    let started = Instant::now();
    assert!(
        connect(1.0),
        "cli could not reach the recreated srv within 1 s"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// D3: the VM's firewall deleted behind jrun's back: the next plain `up` loads it again
/// (it is no longer compared with a cached copy of what jrun once loaded).
#[test]
fn up_repairs_a_deleted_vm_firewall() {
    let inst = Instance::new(false);
    let port = native_support::free_port();
    let cfg = inst.config(&format!(
        "jail \"web\" {{\n  forward {{ http {{ host = {port}; jail = 8000; }} }}\n}}\n"
    ));
    inst.start();
    inst.up(&cfg);
    let _server = inst.serve("web", "tcp", 8000, "hello");
    let get = || native_support::tcp_fetch(port);
    assert!(get().contains("hello"), "the forward works at first");
    let vm = format!("jrun-{}-vm", inst.id());
    let deleted = Command::new("ip")
        .args([
            "netns", "exec", &vm, "nft", "delete", "table", "inet", "jrun",
        ])
        .status()
        .unwrap();
    assert!(deleted.success());
    assert!(!get().contains("hello"), "the forward needs the VM's DNAT");
    inst.up(&cfg);
    assert!(
        get().contains("hello"),
        "`up` did not load the VM firewall again"
    );
}

/// D7: after `stop`/`start` the jails are gone until the next `up` rebuilds them; `plan`
/// says so instead of "Nothing to do".
#[test]
fn plan_after_restart_plans_what_up_does() {
    let inst = Instance::new(false);
    let cfg = inst.config("jail \"web\" { }\n");
    inst.start();
    inst.up(&cfg);
    let plan = |inst: &Instance| -> serde_json::Value {
        serde_json::from_str(&inst.ok(&["plan", cfg.to_str().unwrap(), "--json"])).unwrap()
    };
    assert_eq!(plan(&inst)["empty"], true);
    inst.ok(&["stop"]);
    inst.start();
    let p = plan(&inst);
    assert_eq!(p["empty"], false, "{p}");
    inst.up(&cfg);
    assert_eq!(plan(&inst)["empty"], true);
}

/// D9: `stop` tears the instance down whatever the state file holds (a corrupt one is
/// left as it is and named); `status` still says whether the instance runs.
#[test]
fn stop_works_with_a_corrupt_state_file() {
    let inst = Instance::new(false);
    let cfg = inst.config("jail \"web\" { }\n");
    inst.start();
    inst.up(&cfg);
    let id = inst.id();
    let state = inst.home.path().join("state.json");
    let text = std::fs::read(&state).unwrap();
    std::fs::write(&state, &text[..text.len() / 2]).unwrap();
    let status = inst.run(&["status"]);
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("instance: running"));
    let out = inst.run(&["stop"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("corrupt") && said.contains("stopping the instance anyway"),
        "{said}"
    );
    assert!(
        native_support::leftovers(&id).is_empty(),
        "{:?}",
        native_support::leftovers(&id)
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        &text[..text.len() / 2],
        "left as it is"
    );
}

/// D11: while `jrun up` works, the jails it has not finished show as `deploying`, not
/// `failed`.
#[test]
fn status_shows_jails_being_deployed_as_deploying() {
    let inst = Instance::new(false);
    let step = inst.home.path().join("slow.sh");
    std::fs::write(&step, "sleep 3\n").unwrap();
    let cfg = inst.config(&format!(
        "jail \"slow\" {{\n  setup {{ wait {{ type = \"shell\"; file = \"{}\"; }} }}\n}}\n",
        step.display()
    ));
    inst.start();
    let mut up = inst
        .command(&["up", cfg.to_str().unwrap()])
        .spawn()
        .unwrap();
    let state_of = |inst: &Instance| {
        inst.jails()
            .into_iter()
            .find(|j| j.0 == "slow")
            .map(|j| j.1)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = state_of(&inst);
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen.as_deref(), Some("deploying"));
    assert!(up.wait().unwrap().success());
    assert_eq!(state_of(&inst).as_deref(), Some("up"));
}

/// D4: two homes whose paths hash to the same instance id (48 bits make that unlikely, so
/// a debug build is told the id: `JRUN_TEST_INSTANCE_ID`): the second `start` is refused,
/// naming the first, and its `stop` leaves the first's instance alone.
#[test]
fn a_home_whose_id_collides_with_a_running_instance_is_refused() {
    native_support::require_root();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().canonicalize().unwrap();
    let (a, b) = (root.join("home-a"), root.join("home-b"));
    // Unique per run, so tests side by side never share it.
    let forced = format!("{:06x}{:06x}", std::process::id() & 0xff_ffff, 0xc0111d);
    for h in [&a, &b] {
        std::fs::create_dir(h).unwrap();
    }
    struct Home(PathBuf);
    impl Drop for Home {
        fn drop(&mut self) {
            let _ = jrun(&self.0, &["stop"]);
            native_support::force_cleanup(&self.0);
        }
    }
    fn jrun(home: &Path, args: &[&str]) -> std::process::Output {
        local_env::jrun()
            .args(args)
            .env("JRUN_TEST_INSTANCE_ID", FORCED.with(|f| f.borrow().clone()))
            .env("JRUN_HOME", home)
            .env("JRUN_RUNTIME", "native")
            .env("JRUN_MESH_NETWORK", "false")
            .output()
            .unwrap()
    }
    FORCED.with(|f| *f.borrow_mut() = forced);
    let (home_a, home_b) = (Home(a.clone()), Home(b.clone()));
    let cfg = a.join("a.ucl");
    std::fs::write(&cfg, "jail \"web\" { }\n").unwrap();
    assert!(jrun(&a, &["start"]).status.success());
    assert!(jrun(&a, &["up", cfg.to_str().unwrap()]).status.success());

    let refused = jrun(&b, &["start"]);
    let said = String::from_utf8_lossy(&refused.stderr).replace("\n  │ ", " ");
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains(&a.display().to_string()), "{said}");
    let _ = jrun(&b, &["stop"]);
    let status: serde_json::Value =
        serde_json::from_slice(&jrun(&a, &["status", "--json"]).stdout).unwrap();
    assert_eq!(status["jails"][0]["state"], "up", "{status}");

    // Once the first has stopped, the id is free.
    assert!(jrun(&a, &["stop"]).status.success());
    assert!(jrun(&b, &["start"]).status.success());
    drop(home_b);
    drop(home_a);
}

/// D10: with the state file lost, the next `up` finds the file's jails still running and
/// keeps them at their addresses (it used to build them again at new ones).
#[test]
fn a_lost_state_file_keeps_running_jails_at_their_addresses() {
    let inst = Instance::new(false);
    let cfg = inst.config("jail \"a\" { }\njail \"b\" { }\n");
    inst.start();
    inst.up(&cfg);
    let before = (inst.ip_of("a"), inst.ip_of("b"));
    std::fs::remove_file(inst.home.path().join("state.json")).unwrap();
    let unseen = inst.jails();
    assert!(
        unseen.iter().all(|j| j.1 == "unrecorded") && unseen.len() == 2,
        "{unseen:?}"
    );
    let out = inst.run(&["up", cfg.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("adopting it there"), "{said}");
    assert_eq!((inst.ip_of("a"), inst.ip_of("b")), before);
    assert!(
        inst.jails().iter().all(|j| j.1 == "up"),
        "{:?}",
        inst.jails()
    );
}

/// D6: a jail's firewall table deleted behind jrun's back (with the mesh on, the only
/// barrier on `ygg0`): `plan` shows the repair and a plain `up` loads it again.
#[test]
fn up_repairs_a_deleted_jail_firewall() {
    let inst = Instance::new(false);
    let cfg = inst.config("jail \"web\" { }\n");
    inst.start();
    inst.up(&cfg);
    let ns = format!("jrun-{}-j-web", inst.id());
    let table = |what: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns, "nft", what, "table", "inet", "jrun"])
            .status()
            .unwrap()
            .success()
    };
    assert!(table("delete"));
    assert!(!table("list"));
    let plan: serde_json::Value =
        serde_json::from_str(&inst.ok(&["plan", cfg.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(plan["empty"], false, "{plan}");
    inst.up(&cfg);
    assert!(table("list"), "`up` did not load the jail's firewall again");
    assert_eq!(inst.jails()[0].1, "up");
}

/// D12: when a service exits, only what it started is blamed and killed: a healthy
/// sibling's detached child lives on.
#[test]
fn a_service_exit_kills_only_what_it_started() {
    let inst = Instance::new(false);
    let cfg = inst.config(
        "jail \"app\" {\n  exec {\n    keeper { cmd = \"setsid sleep 100010 & exec sleep 100011\"; }\n    crashy { cmd = \"sleep 0.3; exit 1\"; }\n  }\n}\n",
    );
    inst.start();
    // crashy crash-loops on purpose: `up` does not wait for it.
    inst.ok(&["up", "--no-wait", cfg.to_str().unwrap()]);
    let detached = || !native_support::processes_mentioning("sleep 100010").is_empty();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !detached() {
        assert!(
            Instant::now() < deadline,
            "keeper's detached child never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // crashy exits several times meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        detached(),
        "a sibling's exit killed keeper's detached child"
    );
    let services = inst.status()["services"].clone();
    let crashy = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crashy")
        .unwrap()
        .clone();
    assert!(crashy["restarts"].as_u64().unwrap() >= 1, "{crashy}");
    assert!(
        !crashy["error"].as_str().unwrap_or("").contains("pids"),
        "crashy was blamed for another service's processes: {crashy}"
    );
}
