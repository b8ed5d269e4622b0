//! Native, end to end (root): `jrun pair` waiting for its peer does not hold the state
//! lock (another command runs meanwhile), Ctrl-C ends the wait with exit code 130 and
//! changes nothing, and a joiner with a bad or used code gets a clear message.

mod local_env;

mod native_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use native_support::pairing::{instance, Relay};
use native_support::Instance;

fn state(inst: &Instance) -> String {
    std::fs::read_to_string(inst.home.path().join("state.json")).unwrap()
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `jrun pair --json` started on `inst`, once it has shown its code; its stdout is kept
/// open (returned) so that what it prints later is not written to a closed pipe.
fn creator_showing_its_code(inst: &Instance) -> (std::process::Child, Lines) {
    let mut creator = inst
        .command(&["pair", "--json", "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(creator.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "created");
    (creator, lines)
}

/// Ctrl-C to `child`: it exits with 130.
fn ctrl_c(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "Ctrl-C exits with 130: {status:?}"
    );
}

#[test]
fn the_wait_holds_no_lock_and_ctrl_c_changes_nothing() {
    let relay = Relay::start();
    let inst = instance(&relay.url, "web");
    let before = state(&inst);

    let (mut creator, _lines) = creator_showing_its_code(&inst);

    // While it waits, commands that need the lock run (and do not wait for it).
    let cfg = inst.home.path().join("stack.ucl");
    let out = inst.ok(&["up", cfg.to_str().unwrap()]);
    assert!(out.contains("Nothing to change"), "{out}");
    let down = inst.run(&["pair", "--drop", "1-not-paired-here"]);
    assert!(String::from_utf8_lossy(&down.stderr).contains("no pairing 1-not-paired-here"));

    ctrl_c(&mut creator);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut creator.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("cancelled") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(state(&inst), before);

    // A joiner with an unknown code, and with something that is no code at all.
    let unknown = inst.run(&["pair", "9-never-issued-code"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("expired or already used"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let garbage = inst.run(&["pair", "x; rm -rf /"]);
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("is not a pairing code"));
    assert_eq!(state(&inst), before);
}

/// Ctrl-C the moment the code is shown (the pairing's key exchange may still be computing)
/// cancels too: jrun catches it before it prints the code.
#[test]
fn ctrl_c_as_soon_as_the_code_is_shown_cancels() {
    let relay = Relay::start();
    let inst = instance(&relay.url, "web");
    let before = state(&inst);
    for _ in 0..5 {
        let (mut creator, _lines) = creator_showing_its_code(&inst);
        ctrl_c(&mut creator);
    }
    assert_eq!(state(&inst), before);
}
