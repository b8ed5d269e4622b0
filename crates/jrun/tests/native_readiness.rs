//! `jrun up` waits for the services it started (root; CI runs as root): it returns once
//! each is ready, fails naming one that is not ready in time or has failed, and returns at
//! once with `--no-wait`.

mod local_env;
mod native_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use native_support::free_port;
use native_support::services::Jrun;

/// One HTTP request to the host port, tried once: the point is that the first try works.
fn get_once(port: u16) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

fn up_json(j: &Jrun, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = j.inst.run(args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), json, err)
}

#[test]
fn up_returns_once_a_slow_service_without_a_check_accepts_on_its_forward() {
    let j = Jrun::new();
    let port = free_port();
    let cfg = j.inst.config(&format!(
        r#"jail "slow" {{
  forward {{ http {{ host = {port}; jail = 8080; }} }}
  exec {{ http {{ cmd = "sleep 2; exec python3 -m http.server 8080"; dir = "/tmp"; }} }}
}}
"#
    ));
    let started = Instant::now();
    let (ok, json, err) = up_json(&j, &["up", cfg.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}\n{json}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "up did not wait"
    );
    let reply = get_once(port).expect("the first request after up is answered");
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    let s = &json["services"][0];
    assert_eq!(
        (s["jail"].as_str(), s["exec"].as_str()),
        (Some("slow"), Some("http"))
    );
    assert_eq!(s["ready"], true);
    assert!(s["waited_ms"].as_u64().unwrap() >= 1_900, "{s}");

    // jrun logs shows the service's output: python logged the request.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logs = String::new();
    while !logs.contains("\"GET / HTTP/1.0\" 200") && Instant::now() < deadline {
        logs = j.inst.ok(&["logs", "slow", "http", "-n", "5"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(logs.contains("\"GET / HTTP/1.0\" 200"), "{logs}");
    let unknown = j.inst.run(&["logs", "slow", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("jail `slow` runs: http"));

    // Nothing changed, nothing restarted: the next up waits for nothing.
    let (ok, json, err) = up_json(&j, &["up", cfg.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(json["services"], serde_json::json!([]));
}

#[test]
fn a_service_not_ready_in_time_fails_up_naming_it_with_its_log() {
    let j = Jrun::new();
    let cfg = j.inst.config(
        r#"jail "w" {
  exec { a {
    cmd = "echo booting slowly; exec sleep 600";
    healthcheck { test = "false"; interval = "1s"; retries = 30; }
  } }
}
"#,
    );
    let started = Instant::now();
    let (ok, json, err) = up_json(
        &j,
        &[
            "up",
            cfg.to_str().unwrap(),
            "--json",
            "--wait-timeout",
            "2s",
        ],
    );
    assert!(!ok);
    assert!(started.elapsed() < Duration::from_secs(20));
    let e = json["error"].as_str().unwrap_or_default();
    assert!(e.contains("w/a was not ready after 2.0s"), "{e}\n{err}");
    assert!(e.contains("health check: unhealthy (exit 1)"), "{e}");
    assert!(e.contains("booting slowly"), "the log's last lines: {e}");
    assert_eq!(json["services"][0]["ready"], false);
    // The jail itself is up and recorded; only the service is not ready.
    assert_eq!(j.inst.jails()[0].1, "up");

    // --no-wait returns at once, as before.
    let (ok, json, err) = up_json(
        &j,
        &[
            "up",
            cfg.to_str().unwrap(),
            "--provision",
            "--json",
            "--no-wait",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(json["services"], serde_json::json!([]));
}

#[test]
fn a_service_that_fails_ends_the_wait_with_its_error() {
    let j = Jrun::new();
    let cfg = j.inst.config(
        r#"jail "w" {
  exec { a { cmd = "echo no config found >&2; exit 3"; } }
}
"#,
    );
    let out = j.inst.run(&["up", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("w/a failed: exited 6 times"), "{err}");
    assert!(err.contains("no config found"), "{err}");
}
