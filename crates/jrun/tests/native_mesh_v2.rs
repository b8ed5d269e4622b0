//! Native, end to end (root): two instances pair through `jrun relay` (on 127.0.0.1, no
//! Yggdrasil node needed to pair) with protocol v2. A mistyped code ends with "the code
//! does not match" on both sides and changes nothing (firewall sets, DNS records, state
//! byte-identical); the right code pairs, both sides printing the same fingerprint.

mod local_env;
mod native_support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use native_support::{free_port, instance_id, Instance};

struct Relay {
    child: Child,
    url: String,
}

impl Relay {
    fn start() -> Self {
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

fn instance(relay: &Relay, jail: &str) -> Instance {
    let mut inst = Instance::new(true);
    inst.set_env("JRUN_RELAY", &relay.url);
    inst.start();
    let cfg = inst.config(&format!("jail \"{jail}\" {{ }}\n"));
    inst.up(&cfg);
    inst
}

/// What a pairing could change: the jail's `mesh_peers` set, the records, the pairings.
fn snapshot(inst: &Instance, jail: &str) -> Vec<String> {
    let ns = format!("jrun-{}-j-{jail}", instance_id(inst.home.path()));
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
    vec![
        String::from_utf8_lossy(&set.stdout).into_owned(),
        std::fs::read_to_string(inst.home.path().join("run/unbound/records.conf")).unwrap(),
        inst.ok(&["pair", "--list", "--json"]),
    ]
}

/// Starts `jrun pair` on `creator`, then joins with `typed(code)`; returns the creator's
/// outcome (last stdout line or stderr) and the joiner's output.
fn pair(
    creator: &Instance,
    joiner: &Instance,
    typed: impl Fn(&str) -> String,
) -> (String, bool, String, std::process::Output) {
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
        .command(&["pair", &typed(&code), "--json"])
        .output()
        .unwrap();
    let last = lines.next().map(|l| l.unwrap()).unwrap_or_default();
    let ok = child.0.wait().unwrap().success();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, ok, format!("{last}\n{err}"), joined)
}

#[test]
fn v2_pairs_with_the_right_code_and_a_typo_changes_nothing_on_either_side() {
    let relay = Relay::start();
    let a = instance(&relay, "web");
    let b = instance(&relay, "app");
    let (before_a, before_b) = (snapshot(&a, "web"), snapshot(&b, "app"));

    // One word mistyped (still a list word): both sides fail the key confirmation.
    let typo = |code: &str| {
        let (head, last) = code.rsplit_once('-').unwrap();
        let other = if last == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        format!("{head}-{other}")
    };
    let (_, creator_ok, creator_said, joined) = pair(&a, &b, typo);
    let joiner_said = String::from_utf8_lossy(&joined.stderr);
    assert!(!creator_ok && !joined.status.success());
    for said in [creator_said.as_str(), &joiner_said] {
        let said = said.replace("\n  │ ", " ").replace("\n  │", " ");
        assert!(said.contains("the code does not match"), "{said}");
    }
    assert_eq!(snapshot(&a, "web"), before_a);
    assert_eq!(snapshot(&b, "app"), before_b);

    // The right code: v2 on both sides, the same fingerprint.
    let (code, creator_ok, creator_said, joined) = pair(&a, &b, |c| c.to_string());
    assert!(creator_ok, "{creator_said}");
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let pa: serde_json::Value = serde_json::from_str(creator_said.lines().next().unwrap()).unwrap();
    let pb: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&joined.stdout).trim()).unwrap();
    assert_eq!((&pa["protocol"], &pb["protocol"]), (&2.into(), &2.into()));
    assert_eq!(pa["fingerprint"], pb["fingerprint"]);
    assert_eq!(pa["jails"][0]["name"], "app");
    assert_eq!(pb["jails"][0]["name"], "web");
    assert!(snapshot(&a, "web")[1].contains(&format!("app.{code}.jrun")));
    // No warning about v1 on either side.
    assert!(!String::from_utf8_lossy(&joined.stderr).contains("warning"));
}
