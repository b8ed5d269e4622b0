//! `jrun relay` as a process: serves the protocol on loopback, runs its Yggdrasil node, and
//! shuts down cleanly on SIGTERM.

mod local_env;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use jrun_mesh::protocol::{Roster, RosterJail};
use jrun_mesh::{PollOptions, RelayClient};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the relay if a test fails before it is stopped.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], home: &std::path::Path) -> (RelayProcess, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = local_env::jrun()
        .args(["relay", "--listen", &listen])
        .args(args)
        .env("JRUN_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "jrun relay did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (RelayProcess(child), port)
}

/// Sends SIGTERM and returns the exit status and stderr.
fn terminate(mut relay: RelayProcess) -> (std::process::ExitStatus, String) {
    let pid = nix::unistd::Pid::from_raw(relay.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = relay.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "jrun relay ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    for line in BufReader::new(relay.0.stderr.take().unwrap()).lines() {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    (status, log)
}

fn roster(name: &str, addr: &str) -> Roster {
    Roster {
        jails: vec![RosterJail {
            name: name.to_string().try_into().unwrap(),
            ygg_address: addr.parse().unwrap(),
        }],
    }
}

#[tokio::test]
async fn pairs_two_clients_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let (relay, port) = start(&["--ttl", "1m", "-v"], home.path());
    let url = format!("http://127.0.0.1:{port}");
    let a = RelayClient::new(&url).unwrap();
    let b = RelayClient::new(&url).unwrap();
    let pairing = a.create(&roster("web", "200::a")).await.unwrap();
    let code = pairing.code.clone();
    assert_eq!(
        b.join(&code, &roster("db", "200::b")).await.unwrap(),
        roster("web", "200::a")
    );
    let got = a
        .wait_for_join(&pairing, &PollOptions::default(), std::future::pending())
        .await
        .unwrap();
    assert_eq!(got, roster("db", "200::b"));

    let (status, log) = terminate(relay);
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("pairing created"), "{log}");
    // Logs name codes and counts, never the rosters themselves.
    assert!(!log.contains("200::a") && !log.contains("200::b"), "{log}");
}

#[tokio::test]
async fn runs_and_stops_its_yggdrasil_node() {
    let home = tempfile::tempdir().unwrap();
    let ygg_port = free_port();
    let ygg = format!("tcp://127.0.0.1:{ygg_port}");
    let (relay, _) = start(&["--ygg-listen", &ygg], home.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", ygg_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the relay's Yggdrasil node does not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = home.path().join("keys/relay.pem");
    assert!(key.is_file());
    let (status, log) = terminate(relay);
    assert!(status.success(), "{log}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", ygg_port)).is_err(),
        "{log}"
    );

    // The key is kept: a restarted relay has the same node address.
    let address = |log: &str| {
        log.lines()
            .find_map(|l| {
                l.split(" node ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no address in {log}"))
    };
    let first = address(&log);
    let (relay, _) = start(&["--ygg-listen", &ygg], home.path());
    // The HTTP port listens before the node is started: a SIGTERM sent then would find
    // no handler yet and end the relay before it printed anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", ygg_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the restarted node does not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, log) = terminate(relay);
    assert_eq!(address(&log), first);
}

#[tokio::test]
async fn codes_and_tokens_are_never_logged() {
    let home = tempfile::tempdir().unwrap();
    // The most verbose level: nothing at any level may carry a code or a token.
    let (relay, port) = start(&["-vvv"], home.path());
    let url = format!("http://127.0.0.1:{port}");
    let a = RelayClient::new(&url).unwrap();
    let b = RelayClient::new(&url).unwrap();
    let pairing = a.create(&roster("web", "200::a")).await.unwrap();
    let token = pairing.token.clone().expect("jrun's relay issues a token");
    // A stranger's poll (no token), the join, the creator's collect, a lookup of an
    // unknown code and one over the rate limit's way: every path that could log one.
    let stranger = jrun_mesh::protocol::Created::from(pairing.code.clone());
    assert!(b.poll(&stranger).await.is_err());
    b.join(&pairing.code, &roster("db", "200::b"))
        .await
        .unwrap();
    a.wait_for_join(&pairing, &PollOptions::default(), std::future::pending())
        .await
        .unwrap();
    let unknown: jrun_mesh::PairCode = "7-zoo-zoo-zoo".parse().unwrap();
    assert!(b.poll(&unknown.clone().into()).await.is_err());
    assert!(b.join(&unknown, &roster("db", "200::b")).await.is_err());
    let (status, log) = terminate(relay);
    assert!(status.success(), "{log}");
    assert!(log.contains("pairing created"), "{log}");
    for secret in [pairing.code.as_str(), token.as_str(), unknown.as_str()] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn http_relay_off_loopback_is_refused() {
    // 192.0.2.1 (TEST-NET-1) is never contacted: `jrun pair` refuses the URL before it
    // reads any state or opens any connection.
    let home = tempfile::tempdir().unwrap();
    for args in [vec!["pair"], vec!["pair", "81-zephyr-night-climb"]] {
        let out = local_env::jrun()
            .args(&args)
            .env("JRUN_HOME", home.path())
            .env("JRUN_RUNTIME", "native")
            .env("JRUN_RELAY", "http://192.0.2.1:8080")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("refusing the relay http://192.0.2.1:8080")
                && stderr.contains("--insecure-relay"),
            "{args:?}: {stderr}"
        );
    }
    // A bad value of the setting is an error, not a silent "no".
    let out = local_env::jrun()
        .args(["pair"])
        .env("JRUN_HOME", home.path())
        .env("JRUN_RELAY_INSECURE", "maybe")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JRUN_RELAY_INSECURE"), "{stderr}");
}

#[test]
fn refuses_bad_flags() {
    for args in [
        vec!["relay", "--ygg-listen", "http://x:1"],
        vec!["relay", "--ttl", "10 years"],
        vec!["relay", "--listen", "nowhere"],
        vec!["relay", "--max-failed-lookups", "0"],
        vec!["relay", "--max-requests-per-connection", "0"],
        vec!["relay", "--network-rate", "0"],
        vec!["relay", "--trusted-proxy", "proxy.example"],
        vec!["relay", "--max-connection-lifetime", "25h"],
    ] {
        let out = local_env::jrun().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
