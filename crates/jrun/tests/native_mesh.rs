//! Native, end to end (root), all on this machine: a relay (`jrun relay` with its own
//! Yggdrasil node) and three instances A, B, C (separate `JRUN_HOME`s, separate VM
//! namespaces, each reaching the relay only through its own uplink). A and B pair; their
//! jails reach each other by name over the mesh, C (same relay, not paired) reaches
//! neither, pairings survive `up`, `down`, `stop`/`start`, and `--drop` revokes.
//! Yggdrasil needs a few seconds to find routes: reachability is polled with a deadline.

mod local_env;

mod native_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use native_support::{free_port, Instance};

/// How long the mesh may take to carry a first packet between two jails.
const CONVERGE: Duration = Duration::from_secs(40);

/// `jrun relay` with a Yggdrasil node; killed on drop. Its node listens only on the
/// instances' host-side link addresses (never on every interface of the machine), so it
/// is launched once the instances have started.
struct Relay {
    child: Option<Child>,
    port: u16,
    url: String,
    ygg_port: u16,
    home: tempfile::TempDir,
}

impl Relay {
    fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("jrun-e2e-relay-")
            .tempdir()
            .unwrap();
        let port = free_port();
        Relay {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            ygg_port: free_port(),
            home,
        }
    }

    /// Starts the relay, its node listening on each instance's host-side address.
    fn launch(&mut self, instances: &[&Instance]) {
        let listen = format!("127.0.0.1:{}", self.port);
        let hosts: Vec<String> = instances.iter().map(|i| i.host_address()).collect();
        let mut cmd = local_env::jrun();
        cmd.args(["relay", "--listen", &listen]);
        for host in &hosts {
            cmd.args(["--ygg-listen", &format!("tcp://{host}:{}", self.ygg_port)]);
        }
        let child = cmd
            // Three instances on one address would share the per-client and per-network
            // limits.
            .args(["--rate", "1000", "--burst", "1000"])
            .args(["--network-rate", "1000", "--network-burst", "1000"])
            .env("JRUN_HOME", self.home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&listen).is_err()
            || hosts
                .iter()
                .any(|h| std::net::TcpStream::connect((h.as_str(), self.ygg_port)).is_err())
        {
            assert!(Instant::now() < deadline, "jrun relay did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        for inst in instances {
            inst.redial_vm_node();
        }
    }

    /// An instance using this relay for pairing and as its VM node's mesh peer (dialled
    /// again once the relay is launched).
    fn instance(&self, jails: &[&str]) -> Instance {
        let mut inst = Instance::new(true);
        inst.set_env("JRUN_RELAY", &self.url);
        inst.set_env("JRUN_RELAY_PEER", &format!("tcp://host:{}", self.ygg_port));
        inst.start();
        up(&inst, jails);
        inst
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGTERM lets the relay stop its Yggdrasil node; SIGKILL would orphan it.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever survived (a relay that was killed anyway) is found by its home.
        for p in native_support::processes_mentioning(&self.home.path().display().to_string()) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

fn up(inst: &Instance, jails: &[&str]) {
    let text: String = jails
        .iter()
        .map(|j| format!("jail \"{j}\" {{ }}\n"))
        .collect();
    let cfg = inst.config(&text);
    inst.up(&cfg);
}

fn mesh_addr(inst: &Instance, jail: &str) -> String {
    let status = inst.status();
    status["jails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == jail)
        .and_then(|j| j["mesh_address"].as_str())
        .unwrap_or_else(|| panic!("no mesh address for {jail}: {status}"))
        .to_string()
}

fn ping(inst: &Instance, jail: &str, target: &str) -> bool {
    inst.in_jail(jail, &["ping", "-6", "-c", "1", "-W", "1", target])
        .0
        == 0
}

/// What a TCP connection from `jail` to `host:port` reads ("" when it fails).
fn tcp(inst: &Instance, jail: &str, host: &str, port: u16) -> String {
    const CLIENT: &str = "import socket,sys\n\
        s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
        print(s.recv(100).decode().strip())";
    inst.in_jail(jail, &["python3", "-c", CLIENT, host, &port.to_string()])
        .1
        .trim()
        .to_string()
}

/// Polls `f` until it holds or [`CONVERGE`] passes.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {CONVERGE:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A TCP server on `[::]:port` in `jail` answering every connection with `reply`.
fn serve6(inst: &Instance, jail: &str, port: u16, reply: &str) -> Server {
    const SERVER: &str = "import socket,sys\n\
        s=socket.socket(socket.AF_INET6)\n\
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        s.bind(('::', int(sys.argv[1])))\n\
        s.listen(16)\n\
        while True:\n\
        \x20   c,_=s.accept()\n\
        \x20   c.sendall(sys.argv[2].encode()+b'\\n')\n\
        \x20   c.close()\n";
    use std::os::unix::process::CommandExt;
    let port = port.to_string();
    let child = inst
        .command(&["cmd", jail, "python3", "-c", SERVER, &port, reply])
        .process_group(0)
        .spawn()
        .unwrap();
    Server(child)
}

/// A server process inside a jail; its process group is killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// `from`'s jail cannot reach `target`, and the packets do arrive at `to`'s jail, whose
/// firewall drops them (so the failure is the firewall, not a missing route).
fn refused(from: (&Instance, &str), to: (&Instance, &str), target: &str) {
    let before = to.0.mesh_drops(to.1);
    eventually(
        &format!("{} → {target} dropped by {}", from.1, to.1),
        || {
            assert!(
                !ping(from.0, from.1, target),
                "{} reached {target}, which should drop it",
                from.1
            );
            to.0.mesh_drops(to.1) > before
        },
    );
}

/// Runs `jrun pair` on `creator` and `jrun pair <code>` on `joiner`; returns the code.
fn pair(creator: &Instance, joiner: &Instance) -> String {
    let p = native_support::pairing::pair(creator, joiner, |code| code.to_string());
    assert!(p.creator_ok, "jrun pair on the creator: {}", p.creator_said);
    assert!(
        p.joined.status.success(),
        "jrun pair on the joiner: {}",
        p.joiner_said()
    );
    let joined: serde_json::Value = serde_json::from_slice(&p.joined.stdout).unwrap();
    assert_eq!(joined["code"], p.code.as_str());
    let last: serde_json::Value =
        serde_json::from_str(p.creator_said.lines().next().unwrap_or_default()).unwrap();
    assert_eq!(last["event"], "paired");
    // jrun's relay speaks v2: both sides used it and read the same fingerprint.
    assert_eq!(last["protocol"], 2, "{last}");
    assert_eq!(joined["protocol"], 2, "{joined}");
    assert_eq!(last["fingerprint"], joined["fingerprint"]);
    assert_eq!(last["fingerprint"].as_str().unwrap().split(' ').count(), 4);
    p.code
}

fn listed(inst: &Instance) -> Vec<String> {
    let rows: serde_json::Value =
        serde_json::from_str(&inst.ok(&["pair", "--list", "--json"])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["dns"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_instances_pair_through_a_relay_and_nobody_else_gets_in() {
    let mut relay = Relay::new();
    let a = relay.instance(&["a1", "a2"]);
    let b = relay.instance(&["b1", "b2"]);
    let c = relay.instance(&["c1"]);
    relay.launch(&[&a, &b, &c]);
    let (a1, b1) = (mesh_addr(&a, "a1"), mesh_addr(&b, "b1"));
    let _b_server = serve6(&b, "b1", 7000, "hello from b1");
    let _a_server = serve6(&a, "a1", 7000, "hello from a1");

    // Before pairing: nothing gets through.
    assert!(!ping(&a, "a1", &b1));

    let code = pair(&a, &b);
    let (b1_name, a1_name) = (format!("b1.{code}.jrun"), format!("a1.{code}.jrun"));
    assert_eq!(
        listed(&a),
        [format!("b1.{code}.jrun"), format!("b2.{code}.jrun")]
    );
    assert_eq!(listed(&b), [a1_name.clone(), format!("a2.{code}.jrun")]);

    eventually("a1 pings b1 by name", || ping(&a, "a1", &b1_name));
    eventually("b2 pings a1 by name", || ping(&b, "b2", &a1_name));
    assert_eq!(tcp(&a, "a1", &b1_name, 7000), "hello from b1");
    assert_eq!(tcp(&b, "b1", &a1_name, 7000), "hello from a1");

    // C shares the relay but paired with nobody: both firewalls drop it.
    refused((&c, "c1"), (&b, "b1"), &b1);
    refused((&c, "c1"), (&a, "a1"), &a1);
    assert_eq!(c.dns_status("c1", &b1_name), "NXDOMAIN");

    // A jail added after pairing admits no existing peer until a pairing shares it, and
    // it is not in B's roster either way.
    up(&a, &["a1", "a2", "a3"]);
    let a3 = mesh_addr(&a, "a3");
    assert!(!listed(&b).iter().any(|n| n.starts_with("a3.")));
    assert_eq!(b.dns_status("b1", &format!("a3.{code}.jrun")), "NXDOMAIN");
    refused((&b, "b1"), (&a, "a3"), &a3);
    a.ok(&["pair", "--share", "a1,a2,a3", &code]);
    eventually("b1 reaches a3 once the pairing shares it", || {
        ping(&b, "b1", &a3)
    });
    refused((&a, "a3"), (&b, "b1"), &b1);

    // B narrows what peers reach on b2 to one port: real packets, an allowed port answers,
    // another is dropped by b2's firewall.
    let cfg = b.config("jail \"b1\" { }\njail \"b2\" {\n  mesh { allow = [7000]; }\n}\n");
    b.up(&cfg);
    let b2_name = format!("b2.{code}.jrun");
    let _open = serve6(&b, "b2", 7000, "open port on b2");
    let _shut = serve6(&b, "b2", 7001, "closed port on b2");
    eventually("a1 reaches b2's allowed port by name", || {
        tcp(&a, "a1", &b2_name, 7000) == "open port on b2"
    });
    assert_eq!(
        tcp(&a, "a1", &b2_name, 7001),
        "",
        "b2 let a port it does not allow through"
    );
    // Removing another jail leaves the pairing in place.
    a.ok(&["down", "a2"]);
    eventually("a1 still reaches b1 by name after `down a2`", || {
        ping(&a, "a1", &b1_name)
    });

    // A restarts: its jails come back with their sets and names, rebuilt from state.
    let a_host = a.host_address();
    a.ok(&["stop"]);
    a.start();
    assert_eq!(
        a.host_address(),
        a_host,
        "the relay's node listens on the old one"
    );
    up(&a, &["a1", "a3"]);
    let _a_server = serve6(&a, "a1", 7000, "hello again from a1");
    eventually("a1 pings b1 by name after stop/start", || {
        ping(&a, "a1", &b1_name)
    });
    eventually("b1 reaches a1 by name after stop/start", || {
        tcp(&b, "b1", &a1_name, 7000) == "hello again from a1"
    });
    assert_eq!(tcp(&a, "a1", &b1_name, 7000), "hello from b1");

    // Dropping on A: B's traffic is refused by A's jails and the names are gone on A.
    a.ok(&["pair", "--drop", &code]);
    assert!(listed(&a).is_empty());
    assert_eq!(a.dns_status("a1", &b1_name), "NXDOMAIN");
    refused((&b, "b1"), (&a, "a1"), &a1);
    assert_eq!(tcp(&b, "b1", &a1, 7000), "");
}
