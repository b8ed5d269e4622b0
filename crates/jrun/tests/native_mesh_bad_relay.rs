//! Native, end to end (root): a relay that answers with a hostile roster — a name that
//! would inject an unbound directive, an address outside `200::/8`, `::/0` — makes the
//! pairing fail with a clear message, and no firewall set, DNS record or state entry
//! changes. The "relay" is a tiny HTTP server on 127.0.0.1 written here.

mod local_env;
mod native_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use native_support::{instance_id, Instance};

/// Serves one fixed body for every request under `/pair/…` and a code for `POST /pair`.
struct FakeRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRelay {
    fn start(roster_body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let _ = answer(stream, &roster_body);
            }
        });
        FakeRelay {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn answer(stream: std::net::TcpStream, roster_body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let reply = if request_line.starts_with("POST /pair ") {
        r#"{"code":"5-hostile-relay-test"}"#.to_string()
    } else if request_line.starts_with("GET ") {
        // The creator's poll: the "joiner" is the hostile roster.
        roster_body.replacen("{\"jails\"", "{\"joined\":true,\"jails\"", 1)
    } else {
        roster_body.to_string()
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    )
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a pairing could change: each jail's `mesh_peers` set, the resolver's records, the
/// recorded pairings.
fn snapshot(inst: &Instance, jails: &[&str]) -> Vec<String> {
    let id = instance_id(inst.home.path());
    let mut out = Vec::new();
    for j in jails {
        let ns = format!("jrun-{id}-j-{j}");
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
        out.push(String::from_utf8_lossy(&set.stdout).into_owned());
    }
    let records = inst.home.path().join("run/unbound/records.conf");
    out.push(std::fs::read_to_string(&records).unwrap());
    out.push(inst.ok(&["pair", "--list", "--json"]));
    out
}

const GOOD: &str = "200:848a:604f:bb7e:4384:65db:8db6:6895";

#[test]
fn a_hostile_roster_changes_nothing() {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config("jail \"web\" { }\njail \"db\" { }\n");
    inst.up(&cfg);
    let before = snapshot(&inst, &["web", "db"]);
    assert!(before[2].contains("web.local.jrun"), "{}", before[2]);

    let hostile = [
        (
            "a name that injects a record",
            format!(r#"{{"jails":[{{"name":"x\" IN A 1.2.3.4","ygg_address":"{GOOD}"}}]}}"#),
        ),
        (
            "an address outside 200::/8",
            r#"{"jails":[{"name":"db","ygg_address":"fd00::1"}]}"#.to_string(),
        ),
        (
            "the whole address space",
            r#"{"jails":[{"name":"db","ygg_address":"::/0"}]}"#.to_string(),
        ),
        (
            "one name twice",
            format!(
                r#"{{"jails":[{{"name":"db","ygg_address":"{GOOD}"}},{{"name":"db","ygg_address":"201::1"}}]}}"#
            ),
        ),
    ];
    for (what, body) in hostile {
        let relay = FakeRelay::start(body);
        for args in [
            vec!["pair", "7-apple-berry-cloud"],
            vec!["pair", "--timeout", "20s"],
        ] {
            let out = inst
                .command(&args)
                .env("JRUN_RELAY", relay.url())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{what}: jrun {args:?} accepted it:\n{stderr}"
            );
            let said = stderr.replace("\n  │ ", " ").replace("\n  │", " ");
            assert!(
                said.contains("invalid answer") && said.contains("nothing was changed"),
                "{what}: jrun {args:?} said:\n{stderr}"
            );
            // The relay already has this side's roster: the message says what the
            // other side may have opened, and how to undo it there.
            assert!(
                said.contains("may have opened its jails to them")
                    && said.contains("jrun pair --drop"),
                "{what}: jrun {args:?} said:\n{stderr}"
            );
            assert_eq!(snapshot(&inst, &["web", "db"]), before, "{what}: {args:?}");
        }
    }

    // The control: the same relay with a valid roster pairs, and dropping that pairing
    // restores exactly the state before.
    let relay = FakeRelay::start(format!(
        r#"{{"jails":[{{"name":"db","ygg_address":"{GOOD}"}}]}}"#
    ));
    let out = inst
        .command(&["pair", "7-apple-berry-cloud", "--json"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paired = snapshot(&inst, &["web", "db"]);
    for set in &paired[..2] {
        assert!(set.contains(GOOD), "{set}");
    }
    assert!(
        paired[2].contains("db.7-apple-berry-cloud.jrun") && paired[2].contains(GOOD),
        "{}",
        paired[2]
    );
    let again = inst
        .command(&["pair", "7-apple-berry-cloud"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already paired"));
    inst.ok(&["pair", "--drop", "7-apple-berry-cloud"]);
    assert_eq!(snapshot(&inst, &["web", "db"]), before);

    // A pairing survives stop/start (rebuilt from state by `up`), and can be dropped
    // while the instance is stopped.
    let out = inst
        .command(&["pair", "8-apple-berry-cloud"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    assert!(out.status.success());
    let paired = snapshot(&inst, &["web", "db"]);
    inst.ok(&["stop"]);
    inst.start();
    inst.up(&cfg);
    assert_eq!(snapshot(&inst, &["web", "db"]), paired);
    inst.ok(&["stop"]);
    inst.ok(&["pair", "--drop", "8-apple-berry-cloud"]);
    inst.start();
    inst.up(&cfg);
    assert_eq!(snapshot(&inst, &["web", "db"]), before);
}

/// The pairing journal (security review, finding 9): `jrun pair` killed right after it
/// recorded a pairing, or right after it applied it, leaves a pairing that `--list`
/// shows; `up` finishes one that was not applied, and `--drop` removes one that was.
#[test]
fn crash_after_apply_before_save_is_reconciled() {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config("jail \"web\" { }\n");
    inst.up(&cfg);
    let set = |inst: &Instance| snapshot(inst, &["web"])[0].clone();
    let relay = FakeRelay::start(format!(
        r#"{{"jails":[{{"name":"db","ygg_address":"{GOOD}"}}]}}"#
    ));

    // Killed after recording, before any rule changed: listed, not yet applied.
    let out = inst
        .command(&["pair", "7-apple-berry-cloud"])
        .env("JRUN_RELAY", relay.url())
        .env("JRUN_FAULT", "after:pair-recorded")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point did not fire");
    assert!(inst
        .ok(&["pair", "--list", "--json"])
        .contains("7-apple-berry-cloud"));
    assert!(!set(&inst).contains(GOOD), "applied before the crash point");
    // The next `up` finishes it.
    let up = inst.run(&["up", cfg.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "{said}");
    assert!(
        said.contains("finished an interrupted pairing change"),
        "{said}"
    );
    assert!(set(&inst).contains(GOOD), "{}", set(&inst));

    // Killed after applying, before the journal was closed: listed, and `--drop` revokes.
    inst.ok(&["pair", "--drop", "7-apple-berry-cloud"]);
    assert!(!set(&inst).contains(GOOD));
    let out = inst
        .command(&["pair", "8-apple-berry-cloud"])
        .env("JRUN_RELAY", relay.url())
        .env("JRUN_FAULT", "after:pair-applied")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point did not fire");
    assert!(set(&inst).contains(GOOD), "applied before the crash point");
    assert!(inst
        .ok(&["pair", "--list", "--json"])
        .contains("8-apple-berry-cloud"));
    inst.ok(&["pair", "--drop", "8-apple-berry-cloud"]);
    assert!(!set(&inst).contains(GOOD), "{}", set(&inst));
    assert!(!inst
        .ok(&["pair", "--list", "--json"])
        .contains("8-apple-berry-cloud"));
}
