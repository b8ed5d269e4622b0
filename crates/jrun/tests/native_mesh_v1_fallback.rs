//! Native, end to end (root): a relay that speaks only pairing v1 (a tiny HTTP server on
//! 127.0.0.1 written here, as Jailrun's relay would answer). `jrun pair` falls back to v1
//! and warns that the relay could swap rosters; both sides print the same fingerprint
//! under an honest relay, and different ones when the relay swaps a roster.

mod local_env;
mod native_support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::sync::Mutex;

use native_support::Instance;

/// An address neither instance holds: what a swapping relay substitutes.
const FOREIGN: &str = "200:848a:604f:bb7e:4384:65db:8db6:6895";

#[derive(Default)]
struct Pairing {
    creator: Option<String>,
    joiner: Option<String>,
}

/// Serves v1 for one code; `swap` hands each side a made-up roster instead of the peer's.
fn v1_relay(code: &'static str, swap: bool) -> native_support::fake_relay::HttpStub {
    let state = Mutex::new(Pairing::default());
    native_support::fake_relay::HttpStub::start(move |request_line, body| {
        let fake = format!(r#"{{"jails":[{{"name":"evil","ygg_address":"{FOREIGN}"}}]}}"#);
        let pair_path = format!("/pair/{code} ");
        let mut p = state.lock().unwrap();
        if request_line.starts_with("POST /pair ") {
            p.creator = Some(body.to_string());
            ("200 OK", format!(r#"{{"code":"{code}"}}"#))
        } else if request_line.starts_with("POST ") && request_line.contains(&pair_path) {
            p.joiner = Some(body.to_string());
            let creator = p.creator.clone().unwrap_or_default();
            ("200 OK", if swap { fake } else { creator })
        } else if request_line.starts_with("GET ") && request_line.contains(&pair_path) {
            match &p.joiner {
                None => ("200 OK", r#"{"joined":false}"#.to_string()),
                Some(joiner) => {
                    let roster = if swap { &fake } else { joiner };
                    (
                        "200 OK",
                        roster.replacen("{\"jails\"", "{\"joined\":true,\"jails\"", 1),
                    )
                }
            }
        } else {
            // GET /v2 and anything else: unknown, as on a relay that speaks only v1.
            (
                "404 Not Found",
                r#"{"error":"no such endpoint"}"#.to_string(),
            )
        }
    })
}

fn instance(jail: &str) -> Instance {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config(&format!("jail \"{jail}\" {{ }}\n"));
    inst.up(&cfg);
    inst
}

fn json_line(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Pairs through `relay`; returns both sides' "paired" lines and stderrs.
fn pair(
    a: &Instance,
    b: &Instance,
    relay: &native_support::fake_relay::HttpStub,
    code: &str,
) -> [(serde_json::Value, String); 2] {
    let mut creator = a
        .command(&["pair", "--json", "--timeout", "60s"])
        .env("JRUN_RELAY", relay.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(creator.stdout.take().unwrap()).lines();
    let first = json_line(&lines.next().expect("a line with the code").unwrap());
    assert_eq!(first["event"], "created");
    assert_eq!(first["code"], code);
    let joined: Output = b
        .command(&["pair", code, "--json"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    let joined_err = String::from_utf8_lossy(&joined.stderr).into_owned();
    assert!(joined.status.success(), "{joined_err}");
    let last = json_line(&lines.next().expect("the paired line").unwrap());
    let mut creator_err = String::new();
    creator
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut creator_err)
        .unwrap();
    assert!(creator.wait().unwrap().success(), "{creator_err}");
    [
        (last, creator_err),
        (
            json_line(String::from_utf8_lossy(&joined.stdout).trim()),
            joined_err,
        ),
    ]
}

#[test]
fn a_v1_relay_gets_v1_with_a_warning_and_fingerprints_tell_a_swap() {
    let a = instance("web");
    let b = instance("app");

    let honest = v1_relay("7-apple-berry-cloud", false);
    let [(pa, ea), (pb, eb)] = pair(&a, &b, &honest, "7-apple-berry-cloud");
    for (paired, stderr) in [(&pa, &ea), (&pb, &eb)] {
        assert_eq!(paired["event"], "paired");
        assert_eq!(paired["protocol"], 1, "{paired}");
        assert!(
            stderr.contains("does not offer pairing v2") && stderr.contains("swap them"),
            "{stderr}"
        );
    }
    let fingerprint = pa["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.split(' ').count(), 4, "{fingerprint}");
    assert_eq!(pa["fingerprint"], pb["fingerprint"]);
    assert_eq!(pa["jails"][0]["name"], "app");
    assert_eq!(pb["jails"][0]["name"], "web");

    // A relay that swaps both rosters: each side pairs (v1 cannot tell), but the
    // fingerprints the two people read to each other differ.
    let swapping = v1_relay("8-apple-berry-cloud", true);
    let [(sa, _), (sb, _)] = pair(&a, &b, &swapping, "8-apple-berry-cloud");
    assert_eq!(sa["jails"][0]["name"], "evil");
    assert_eq!(sb["jails"][0]["name"], "evil");
    assert_ne!(sa["fingerprint"], sb["fingerprint"]);
    assert_ne!(sa["fingerprint"], pa["fingerprint"]);
}
