//! Pairing figures (root; native runtime; everything on this machine):
//!
//! 1. The cost of applying a pairing: `Runtime::apply_mesh` for 20 local jails × 20 remote
//!    jails (20 nft transactions and one resolver reload). Target: under 200 ms. Baseline
//!    in the same run: 20 bare `ip netns exec <jail> true`, the process cost every
//!    per-jail transaction pays.
//! 2. The time from `jrun pair <code>` returning on B to the first successful TCP
//!    connection from B's jail to A's jail by name, over 10 pairings (each dropped on both
//!    sides before the next). Target: median under 2 s.
//!
//! Run with `sudo -E cargo bench -p jrun --bench pair_mesh`.

#[path = "../tests/local_env/mod.rs"]
mod local_env;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jrun_core::config::JailName;
use jrun_core::exec::SystemRunner;
use jrun_core::net::{DnsRecords, JailFirewall};
use jrun_core::runtime::Runtime;
use jrun_mesh::{DnsLabel, PairCode, YggAddress};
use jrun_native::{NativeOptions, NativeRuntime};

const APPLY_TARGET: Duration = Duration::from_millis(200);
// Issue 15: with pairing v2, under 1 s (v1 measured 0.655 s).
const PAIR_TARGET: Duration = Duration::from_secs(1);
const APPLY_RUNS: usize = 10;
const PAIRINGS: usize = 10;

/// A started instance in its own home; stopped (and its processes killed) on drop.
struct Instance {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Instance {
    fn new(env: &[(&str, String)]) -> Self {
        let inst = Instance {
            home: tempfile::Builder::new()
                .prefix("jrun-bench-")
                .tempdir()
                .unwrap(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        inst.ok(&["start"]);
        inst
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = local_env::jrun();
        c.args(args)
            .env("JRUN_HOME", self.home.path())
            .env("JRUN_RUNTIME", "native")
            // The resolver never needs to forward here; point it at nothing that answers.
            .env("JRUN_DNS_UPSTREAM", "127.0.0.1:9");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "jrun {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn up(&self, jails: &[String]) {
        let text: String = jails
            .iter()
            .map(|j| format!("jail \"{j}\" {{ }}\n"))
            .collect();
        let cfg = self.home.path().join("stack.ucl");
        std::fs::write(&cfg, text).unwrap();
        self.ok(&["up", cfg.to_str().unwrap()]);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.cmd(&["stop"]).output();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this benchmark creates network namespaces: run it as root"
    );
    apply_cost();
    pairing_latency();
}

/// Part 1: 20 local × 20 remote.
fn apply_cost() {
    let inst = Instance::new(&[("JRUN_MESH_NETWORK", "false".into())]);
    let names: Vec<String> = (0..20).map(|i| format!("j{i:02}")).collect();
    inst.up(&names);
    let rt = NativeRuntime::new(
        inst.home.path(),
        Arc::new(SystemRunner),
        NativeOptions {
            mesh: false,
            relay_peer: None,
            dns_upstream: None,
            supervisor_argv: vec![],
        },
    );
    let local: Vec<JailName> = names
        .iter()
        .map(|n| JailName::new(n.as_str()).unwrap())
        .collect();
    // Two different pairings, alternated, so every run really changes sets and records.
    let wiring = |variant: u16| {
        let code: PairCode = format!("{}-bench-pair-code", variant + 1).parse().unwrap();
        let remote: Vec<(DnsLabel, YggAddress)> = (0..20u16)
            .map(|i| {
                (
                    DnsLabel::new(format!("r{i:02}")).unwrap(),
                    format!("201:{variant:x}::{:x}", i + 1).parse().unwrap(),
                )
            })
            .collect();
        let firewalls: Vec<JailFirewall> = local
            .iter()
            .map(|j| JailFirewall::new(j.clone(), remote.iter().map(|r| r.1)))
            .collect();
        let records = DnsRecords::build(
            local
                .iter()
                .enumerate()
                .map(|(i, j)| (j, Ipv4Addr::new(10, 17, 89, 10 + i as u8))),
            remote.iter().map(|(n, a)| (&code, n, *a)),
        );
        (code, firewalls, records)
    };
    let variants = [wiring(0), wiring(1)];
    let mut times = Vec::new();
    for run in 0..APPLY_RUNS {
        let (_, fw, records) = &variants[run % 2];
        let t = Instant::now();
        rt.apply_mesh(fw, records).unwrap();
        times.push(t.elapsed());
    }
    // The resolver's share: replacing the records alone, alternating.
    let mut records_only = Vec::new();
    for run in 0..APPLY_RUNS {
        let t = Instant::now();
        rt.set_records(&variants[run % 2].2).unwrap();
        records_only.push(t.elapsed());
    }
    let records_only = median(records_only);
    let id_ns = |j: &JailName| rt.layout().jail_ns(j);
    let mut base = Vec::new();
    for _ in 0..APPLY_RUNS {
        let t = Instant::now();
        for j in &local {
            Command::new("ip")
                .args(["netns", "exec", &id_ns(j), "true"])
                .status()
                .unwrap();
        }
        base.push(t.elapsed());
    }
    let (m, b) = (median(times), median(base));
    println!(
        "apply a pairing, 20 local x 20 remote jails: median {m:?} over {APPLY_RUNS} runs \
         (target < {APPLY_TARGET:?}: {}), of which the resolver's records {records_only:?}; \
         baseline 20x `ip netns exec true`: {b:?}; ratio {:.2}",
        if m < APPLY_TARGET { "met" } else { "MISSED" },
        m.as_secs_f64() / b.as_secs_f64()
    );
}

/// `jrun relay` with a Yggdrasil node; SIGTERM on drop so the node goes too.
struct Relay {
    child: Child,
    _home: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Part 2: pair, then time B's jail reaching A's by name.
fn pairing_latency() {
    let home = tempfile::tempdir().unwrap();
    let (port, ygg) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let relay = Relay {
        child: local_env::jrun()
            .args([
                "relay", "--listen", &listen, "--rate", "1000", "--burst", "1000",
            ])
            .args(["--ygg-listen", &format!("tcp://0.0.0.0:{ygg}")])
            .env("JRUN_HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        _home: home,
    };
    wait_for(&listen);
    wait_for(&format!("127.0.0.1:{ygg}"));
    let env = [
        ("JRUN_RELAY", format!("http://{listen}")),
        ("JRUN_RELAY_PEER", format!("tcp://host:{ygg}")),
        ("JRUN_MESH_NETWORK", "true".into()),
    ];
    let a = Instance::new(&env);
    let b = Instance::new(&env);
    a.up(&["a1".into()]);
    b.up(&["b1".into()]);
    let server = serve(&a, "a1", 7000);

    let mut times = Vec::new();
    for _ in 0..PAIRINGS {
        let mut creator = a
            .cmd(&["pair", "--json", "--timeout", "60s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(creator.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let code = first["code"].as_str().unwrap().to_string();
        b.ok(&["pair", &code]);
        let joined = Instant::now();
        let probe = b
            .cmd(&[
                "cmd",
                "b1",
                "python3",
                "-c",
                PROBE,
                &format!("a1.{code}.jrun"),
                "7000",
            ])
            .output()
            .unwrap();
        let elapsed = joined.elapsed();
        assert!(
            probe.status.success(),
            "b1 never reached a1.{code}.jrun: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        assert!(creator.wait().unwrap().success());
        times.push(elapsed);
        a.ok(&["pair", "--drop", &code]);
        b.ok(&["pair", "--drop", &code]);
    }
    drop(server);
    drop(relay);
    let m = median(times.clone());
    println!(
        "`jrun pair <code>` returning on B to B's jail connecting to A's by name: median {m:?} \
         over {PAIRINGS} pairings (target < {PAIR_TARGET:?}: {}); all: {times:?}",
        if m < PAIR_TARGET { "met" } else { "MISSED" }
    );
}

/// Resolves and connects every 50 ms until it works (30 s at most).
const PROBE: &str = "import socket,sys,time\n\
end=time.time()+30\n\
while time.time()<end:\n\
\x20   try:\n\
\x20       socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5).close()\n\
\x20       sys.exit(0)\n\
\x20   except OSError:\n\
\x20       time.sleep(0.05)\n\
sys.exit(1)\n";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn serve(inst: &Instance, jail: &str, port: u16) -> Server {
    use std::os::unix::process::CommandExt;
    const SERVER: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET6)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('::', int(sys.argv[1])))\n\
s.listen(64)\n\
while True:\n\
\x20   c,_=s.accept()\n\
\x20   c.close()\n";
    Server(
        inst.cmd(&["cmd", jail, "python3", "-c", SERVER, &port.to_string()])
            .process_group(0)
            .spawn()
            .unwrap(),
    )
}

fn wait_for(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}
