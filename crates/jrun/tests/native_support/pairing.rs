//! Pairing two native instances through a relay on 127.0.0.1: a real `jrun relay`, the
//! `jrun pair` processes on both sides, and a snapshot of everything a pairing could
//! change on an instance.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, instance_id, local_env, Instance};

/// `jrun relay` on 127.0.0.1 (generous rates: the tests poll fast); killed on drop.
pub struct Relay {
    child: Child,
    pub url: String,
}

impl Relay {
    pub fn start() -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = local_env::jrun()
            .args(["relay", "--listen", &listen])
            .args(["--rate", "1000", "--burst", "1000"])
            .args(["--network-rate", "1000", "--network-burst", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(Instant::now() < deadline, "jrun relay did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Relay {
            child,
            url: format!("http://{listen}"),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `jrun pair` running in the background; killed on drop if still running.
struct Creator(Child);

impl Drop for Creator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started instance with the mesh on, pairing through `relay_url`, running one empty
/// jail named `jail`.
pub fn instance(relay_url: &str, jail: &str) -> Instance {
    let mut inst = Instance::new(true);
    inst.set_env("JRUN_RELAY", relay_url);
    inst.start();
    let cfg = inst.config(&format!("jail \"{jail}\" {{ }}\n"));
    inst.up(&cfg);
    inst
}

/// What a pairing could change: each jail's `mesh_peers` set, the resolver's records, the
/// recorded pairings.
pub fn snapshot(inst: &Instance, jails: &[&str]) -> Vec<String> {
    let id = instance_id(inst.home.path());
    let mut out: Vec<String> = jails
        .iter()
        .map(|jail| {
            let ns = format!("jrun-{id}-j-{jail}");
            let set = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "nft",
                    "list",
                    "set",
                    "inet",
                    "jrun",
                    "mesh_peers",
                ])
                .output()
                .unwrap();
            assert!(set.status.success(), "no mesh_peers set in {ns}");
            String::from_utf8_lossy(&set.stdout).into_owned()
        })
        .collect();
    out.push(std::fs::read_to_string(inst.home.path().join("run/unbound/records.conf")).unwrap());
    out.push(inst.ok(&["pair", "--list", "--json"]));
    out
}

/// How one pairing went.
pub struct Pairing {
    pub code: String,
    pub creator_ok: bool,
    /// The creator's last stdout line, then its stderr.
    pub creator_said: String,
    pub joined: Output,
}

impl Pairing {
    /// The joiner's stderr.
    pub fn joiner_said(&self) -> String {
        String::from_utf8_lossy(&self.joined.stderr).into_owned()
    }
}

/// An error as one line: miette wraps long messages over `  │ ` continuation lines.
pub fn unwrapped(said: &str) -> String {
    said.replace("\n  │ ", " ").replace("\n  │", " ")
}

/// Starts `jrun pair` on `creator`, then joins on `joiner` with `typed(code)`; both give up
/// after a minute.
pub fn pair(creator: &Instance, joiner: &Instance, typed: impl Fn(&str) -> String) -> Pairing {
    let mut child = Creator(
        creator
            .command(&["pair", "--json", "--timeout", "60s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line with the code").unwrap()).unwrap();
    assert_eq!(first["event"], "created");
    let code = first["code"].as_str().unwrap().to_string();
    let number: u32 = code.split('-').next().unwrap().parse().unwrap();
    assert!(number >= 1000, "a v2 nameplate: {code}");
    let joined = joiner
        .command(&["pair", &typed(&code), "--json", "--timeout", "60s"])
        .output()
        .unwrap();
    let last = lines.next().map(|l| l.unwrap()).unwrap_or_default();
    let creator_ok = child.0.wait().unwrap().success();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    Pairing {
        code,
        creator_ok,
        creator_said: format!("{last}\n{err}"),
        joined,
    }
}
