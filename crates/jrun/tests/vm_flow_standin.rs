//! The vm runtime's whole flow through the real CLI, against the stand-in guest (a Linux
//! image built here, booted as the FreeBSD one is; FreeBSD's commands are recording shims:
//! crates/jrun-vm/tests/common/standin.rs). `jrun start` boots it from a local mirror,
//! then `up` (returns, its service ready), a forward change (live through QMP, reachable
//! from the host), `pair` (its apply script), `down`, and `stop` (ACPI power-off). The
//! FreeBSD commands the guest was asked to run are compared with a golden file.
//!
//! This proves the host side and the scripts' control flow end to end; what FreeBSD does
//! with those commands is proven by the renderers' tests and the review, not here.

mod local_env;
mod standin_flow;
mod static_http;

// The vm runtime's test support, shared as files (standin.rs reaches guest.rs as
// `super::guest`, hence both at the root).
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/guest.rs"]
mod guest;
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/standin.rs"]
mod standin;

use http::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use standin_flow::Flow;

/// A relay that answers every join with the creator's roster: one remote jail.
fn fake_relay(roster: &'static str) -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{roster}",
                roster.len()
            );
        }
    });
    url
}

fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

fn config(dir: &Path, host_port: u16) -> std::path::PathBuf {
    let path = dir.join("stack.ucl");
    std::fs::write(
        &path,
        format!(
            "jail \"web\" {{\n  forward {{ http {{ host = {host_port}; jail = 8080; }} }}\n  setup {{ nginx {{ type = \"ansible\"; url = \"hub://nginx/rolling\"; }} }}\n  exec {{ http {{ cmd = \"python3 -m http.server 8080\"; }} }}\n}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn start_up_forward_pair_down_stop_against_the_stand_in() {
    let work = tempfile::tempdir().unwrap();
    let image = standin::build_image(work.path());
    let server = http::serve_image(&std::fs::read(&image).unwrap());
    let mirror = server.base.trim_end_matches("/VM-IMAGES").to_string();
    let mirror_seen = mirror.clone();
    let relay = fake_relay(
        r#"{"jails":[{"name":"api","ygg_address":"200:848a:604f:bb7e:4384:65db:8db6:6895"}]}"#,
    );
    let (p1, p2) = (free_port(), free_port());
    // The hub's nginx playbook, from the fixture copy of Jailrun's hub.
    let hub = static_http::StaticServer::serve(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/jailrun/hub"),
    );
    let flow = Flow::new(&[
        ("JRUN_RUNTIME", "vm".to_string()),
        ("JRUN_BSD_MIRROR", mirror),
        ("JRUN_SSH_PORT", free_port().to_string()),
        ("JRUN_QEMU_MEMORY", "512M".into()),
        ("JRUN_QEMU_CPUS", "2".into()),
        ("JRUN_QEMU_DISK_SIZE", "256M".into()),
        ("JRUN_QEMU_ACCEL", "tcg".into()),
        ("JRUN_VM_BOOT_TIMEOUT", "180".into()),
        ("JRUN_RELAY", relay),
        ("JRUN_GITHUB_RAW", hub.base.clone()),
    ]);

    // start --mode tty: download, boot, and the serial console on this "terminal" until
    // Ctrl-]; the VM runs on.
    let mut start = local_env::jrun();
    start
        .args(["start", "--mode", "tty"])
        .env("JRUN_HOME", flow.home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &flow.env {
        start.env(k, v);
    }
    let mut child = start.spawn().unwrap();
    let mut console = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = String::new();
    while !seen.contains(standin::READY) {
        assert!(Instant::now() < deadline, "no console output: {seen}");
        let mut line = String::new();
        if console.read_line(&mut line).unwrap() == 0 {
            panic!("the console closed: {seen}");
        }
        seen.push_str(&line);
    }
    child.stdin.as_mut().unwrap().write_all(&[0x1d]).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("left the console"), "{err}");
    assert!(flow.runtime().process().is_some(), "the VM runs on");

    // start --base: the VM is running already; its base block's setup runs in it.
    std::fs::write(
        work.path().join("hello.sh"),
        "echo hello > /tmp/from-base\n",
    )
    .unwrap();
    let base = work.path().join("base.ucl");
    std::fs::write(
        &base,
        "base { setup { hello { type = \"shell\"; file = \"hello.sh\"; } } }\n",
    )
    .unwrap();
    let out = flow.ok(&["start", "--base", base.to_str().unwrap()]);
    assert!(out.contains("already running"), "{out}");
    assert_eq!(flow.guest("cat /tmp/from-base"), ["hello"]);

    // up: returns once the service is ready; the forward reaches the guest.
    let cfg = config(work.path(), p1);
    let started = Instant::now();
    let json: serde_json::Value =
        serde_json::from_str(&flow.ok(&["up", cfg.to_str().unwrap(), "--json"])).unwrap();
    assert!(started.elapsed() < Duration::from_secs(240));
    assert_eq!(json["deployed"][0]["name"], "web", "{json}");
    assert_eq!(json["services"][0]["ready"], true, "{json}");
    assert!(http_get(p1).unwrap().contains(&format!("standin {p1}")));

    // A forward change: QEMU's hostfwd moves live (no restart), pf's anchor follows.
    let pid = flow.runtime().process().unwrap().pid;
    flow.ok(&["up", config(work.path(), p2).to_str().unwrap()]);
    assert_eq!(flow.runtime().process().unwrap().pid, pid, "no restart");
    assert!(http_get(p2).unwrap().contains(&format!("standin {p2}")));
    assert!(http_get(p1).is_err(), "the old host port is closed");

    // pair: the jail's node answers with its key's address (the stand-in's node is a file).
    let key = flow.home.path().join("keys/jails/web.pem");
    let address = flow.ok(&["mesh", "address", key.to_str().unwrap()]);
    flow.guest(&format!(
        "mkdir -p /var/run/standin-ygg\nprintf '%s' '{}' > /var/run/standin-ygg/web",
        address.trim()
    ));
    let paired = flow.ok(&["pair", "a1b2c3", "--json"]);
    assert!(paired.contains("api"), "{paired}");
    let listed = flow.ok(&["pair", "-l", "--json"]);
    assert!(
        listed.contains("a1b2c3") && listed.contains("api"),
        "{listed}"
    );

    // logs: read in the jail, where its rc script writes them.
    flow.ok(&["logs", "web", "http", "-n", "3"]);

    // status: the VM's vitals (QEMU's pid and SSH from the host; disk and memory come from
    // the guest's df and sysctl, which the stand-in cannot answer as FreeBSD does: the
    // parsing of FreeBSD's output is unit-tested in jrun-vm's vitals.rs).
    let status: serde_json::Value = serde_json::from_str(&flow.ok(&["status", "--json"])).unwrap();
    let vitals = &status["instance"]["vitals"];
    assert_eq!(vitals["pid"].as_i64(), Some(pid as i64), "{status}");
    assert!(
        vitals["ssh"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{status}"
    );
    assert!(vitals["uptime_secs"].as_u64().is_some(), "{status}");
    let text = flow.ok(&["status"]);
    assert!(
        text.contains(&format!("pid {pid} · ssh 127.0.0.1:")),
        "{text}"
    );

    // down, then stop through the power button.
    flow.ok(&["down", "web"]);
    let log = flow.guest(&format!("cat {}", standin::SHIM_LOG));
    let out = flow.ok(&["stop"]);
    // It was running: a stop that found nothing to stop would say so instead.
    assert!(out.contains("instance stopped"), "{out}");
    assert!(flow.runtime().process().is_none());

    // What the guest was asked to do, in order, with the host ports made stable.
    let golden: String = log
        .iter()
        .map(|l| {
            l.replace(&mirror_seen, "<MIRROR>")
                .replace(&p1.to_string(), "<PORT1>")
                .replace(&p2.to_string(), "<PORT2>")
                .replace('\t', " ")
                + "\n"
        })
        .collect();
    insta::assert_snapshot!("vm_flow_guest_commands", golden);
}
