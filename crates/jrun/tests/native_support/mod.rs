//! Harness for the native end-to-end tests (root; CI runs as root). Each test gets its own
//! `JRUN_HOME`, hence its own instance id and namespace names, and a guard whose `Drop`
//! runs `jrun stop` and then force-removes anything left with the instance's prefix.
//! Nothing leaves the namespaces the test creates: the resolver's upstream is a local
//! fake DNS server on 127.0.0.1.
#![allow(dead_code)]

use super::local_env;

pub mod fake_relay;
pub mod pairing;
pub mod services;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The address every name the fake upstream is asked for resolves to.
pub const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

pub struct Instance {
    pub home: tempfile::TempDir,
    upstream: FakeUpstream,
    mesh: bool,
    extra_env: Vec<(String, String)>,
}

impl Instance {
    /// A fresh instance (not started); `mesh` runs Yggdrasil nodes.
    pub fn new(mesh: bool) -> Self {
        require_root();
        Instance {
            home: tempfile::Builder::new()
                .prefix("jrun-e2e-")
                .tempdir()
                .unwrap(),
            upstream: FakeUpstream::start(),
            mesh,
            extra_env: Vec::new(),
        }
    }

    /// An extra environment variable for every jrun this instance runs.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = local_env::jrun();
        cmd.args(args)
            .env("JRUN_HOME", self.home.path())
            .env("JRUN_RUNTIME", "native")
            .env("JRUN_DNS_UPSTREAM", self.upstream.addr.to_string())
            .env(
                "JRUN_MESH_NETWORK",
                if self.mesh { "true" } else { "false" },
            )
            .env_remove("JRUN_FAULT");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs jrun; returns its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs jrun and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "jrun {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `jrun cmd <jail> <argv…>`, returning (exit code, stdout).
    pub fn in_jail(&self, jail: &str, argv: &[&str]) -> (i32, String) {
        let mut args = vec!["cmd", jail];
        args.extend_from_slice(argv);
        let out = self.run(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The A record `name` has for a jail's resolver (`dig +search +short`).
    pub fn resolve(&self, jail: &str, name: &str) -> String {
        let (_, out) = self.in_jail(
            jail,
            &["dig", "+search", "+short", "+time=2", "+tries=1", name],
        );
        out.trim().to_string()
    }

    /// The network namespace of `jail`.
    pub fn jail_ns(&self, jail: &str) -> String {
        format!("jrun-{}-j-{jail}", self.id())
    }

    /// The instance's VM namespace (its bridge, resolver and uplink).
    pub fn vm_ns(&self) -> String {
        format!("jrun-{}-vm", self.id())
    }

    /// One DNS query for `name` from inside `jail`'s namespace straight to the instance's
    /// resolver, asked once (`+time=1 +tries=1`): the A record, or why there is none.
    pub fn dig_once(&self, jail: &str, name: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.jail_ns(jail), "dig"])
            .args(["+time=1", "+tries=1", "+short", name, "@10.17.89.1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !text.is_empty() {
            Ok(text)
        } else {
            Err(format!(
                "dig exited {}: {text} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The VM namespace's neighbour entries on the bridge that never got an answer
    /// (INCOMPLETE or FAILED), as `ip neigh` prints them.
    pub fn unanswered_neighbours(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.vm_ns(), "-4", "neigh", "show", "dev", "br0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ip neigh show failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("INCOMPLETE") || l.contains("FAILED"))
            .map(str::to_string)
            .collect()
    }

    /// The DNS status (`NOERROR`, `NXDOMAIN`…) of `name` asked from inside `jail`.
    pub fn dns_status(&self, jail: &str, name: &str) -> String {
        let (_, out) = self.in_jail(jail, &["dig", "+time=2", "+tries=1", name]);
        out.split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("none")
            .to_string()
    }

    /// The DNS status of `name` asked from the instance itself (no jail needed).
    pub fn dns_status_from_vm(&self, name: &str) -> String {
        let vm = format!("jrun-{}-vm", instance_id(self.home.path()));
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &vm,
                "dig",
                "@10.17.89.1",
                "+time=2",
                "+tries=1",
                name,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("none")
            .to_string()
    }

    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.home.path().join("stack.ucl");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn start(&self) {
        self.ok(&["start"]);
    }

    pub fn up(&self, config: &Path) -> String {
        self.ok(&["up", config.to_str().unwrap()])
    }

    /// `jrun status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Each jail's (name, state, ip) from `status --json`.
    pub fn jails(&self) -> Vec<(String, String, String)> {
        self.status()["jails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["name"].as_str().unwrap().to_string(),
                    j["state"].as_str().unwrap().to_string(),
                    j["ip"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The host's side of the running instance's link (`run/instance.json`): where a
    /// relay on this machine listens for it, instead of on every interface.
    pub fn host_address(&self) -> String {
        let path = self.home.path().join("run/instance.json");
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        info["link"]["host"].as_str().unwrap().to_string()
    }

    /// Restarts the VM's Yggdrasil node (the supervisor brings it back at once) so that it
    /// dials its relay peer now, not at its next retry a minute away: for a relay started
    /// after the instance.
    pub fn redial_vm_node(&self) {
        let status = self.status();
        let pid = status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "ygg-vm")
            .and_then(|c| c["pid"].as_u64())
            .expect("the VM node runs");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    pub fn ip_of(&self, jail: &str) -> String {
        self.jails()
            .into_iter()
            .find(|j| j.0 == jail)
            .unwrap_or_else(|| panic!("no jail {jail}"))
            .2
    }

    /// The instance id, as the VM namespace names it (`jrun-<id>-vm`).
    /// The packet counter of `jail`'s rule dropping mesh traffic from non-peers.
    pub fn mesh_drops(&self, jail: &str) -> u64 {
        let ns = format!("jrun-{}-j-{jail}", self.id());
        let out = Command::new("ip")
            .args([
                "netns", "exec", &ns, "nft", "list", "chain", "inet", "jrun", "input",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.contains("ygg0") && l.contains("drop"))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no drop counter in {ns}:\n{text}"))
    }

    pub fn id(&self) -> String {
        let out = local_env::jrun()
            .args(["status", "--json"])
            .env("JRUN_HOME", self.home.path())
            .env("JRUN_RUNTIME", "native")
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["instance"]["namespace"]
            .as_str()
            .and_then(|ns| ns.strip_prefix("jrun-"))
            .and_then(|ns| ns.strip_suffix("-vm"))
            .map(str::to_string)
            .unwrap_or_else(|| instance_id(self.home.path()))
    }

    /// Starts a server in `jail` answering every tcp connection or udp datagram with
    /// `reply`; it and its process group are killed when the guard drops.
    pub fn serve(&self, jail: &str, proto: &str, port: u16, reply: &str) -> Server {
        use std::os::unix::process::CommandExt;
        let port = port.to_string();
        let child = self
            .command(&["cmd", jail, "python3", "-c", SERVER_PY, proto, &port, reply])
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        Server(child)
    }
}

/// A tcp or udp server answering with a fixed line (python3 is in CI's packages).
const SERVER_PY: &str = r#"
import socket, sys
proto, port, reply = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\n"
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(reply, peer)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.sendall(reply)
        c.close()
"#;

/// Fails (never skips) when not root: these tests create network namespaces, and CI runs
/// them as root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the native runtime needs root (network namespaces); CI runs as root"
    );
}

/// Everything named after an instance id: what must be gone after `stop`.
pub fn leftovers(id: &str) -> Vec<String> {
    let prefix = format!("jrun-{id}-");
    let mut found = Vec::new();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&ns.stdout).lines() {
        if line.starts_with(&prefix) {
            found.push(format!("namespace {line}"));
        }
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        if line.contains(&format!("jr{id}h")) {
            found.push(format!("link {line}"));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(format!("file {}", e.path().display()));
            }
        }
    }
    found
}

/// Processes whose command line mentions `needle` (e.g. the instance's home).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

/// The id jrun derives from a home folder (FNV-1a of the canonical path, 24 bits).
pub fn instance_id(home: &Path) -> String {
    let canonical = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
        force_cleanup(self.home.path());
    }
}

/// Force-removes whatever a test left behind of the instance at `home`: its processes,
/// namespaces, host link and `/etc/netns` folders.
pub fn force_cleanup(home: &Path) {
    let id = instance_id(home);
    for p in processes_mentioning(&home.display().to_string()) {
        if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    let prefix = format!("jrun-{id}-");
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&ns.stdout).lines() {
        if let Some(name) = line
            .split_whitespace()
            .next()
            .filter(|n| n.starts_with(&prefix))
        {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    let _ = Command::new("ip")
        .args(["link", "del", &format!("jr{id}h")])
        .output();
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A server process inside a jail; killed on drop.
pub struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        // The server runs under `jrun cmd` → `ip netns exec`: kill its whole group.
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 (tcp and udp), for forwards.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Connects to 127.0.0.1:`port` over TCP and reads until EOF.
pub fn tcp_fetch(port: u16) -> String {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match attempt {
            Ok(text) if !text.is_empty() => return text,
            _ if Instant::now() > deadline => return String::new(),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends a datagram to 127.0.0.1:`port` and returns the first reply (empty on timeout).
pub fn udp_fetch(port: u16) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        s.send_to(b"ping\n", ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    String::new()
}

/// A tiny DNS server on 127.0.0.1 that answers every A question with [`UPSTREAM_ANSWER`]:
/// the instance's resolver forwards to it, so no query leaves the machine.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeUpstream {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if let Some(reply) = answer(&buf[..n]) {
                        let _ = socket.send_to(&reply, from);
                    }
                }
            }
        });
        FakeUpstream { addr, stop }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The reply to a one-question query: the question echoed and one A record.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // Walk the question name to find where the question ends.
    let mut i = 12;
    while *query.get(i)? != 0 {
        i += 1 + usize::from(query[i]);
    }
    let q_end = i + 5;
    let question = query.get(12..q_end)?;
    let mut r = Vec::with_capacity(q_end + 16);
    r.extend_from_slice(&query[0..2]);
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(question);
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&UPSTREAM_ANSWER.octets());
    Some(r)
}
