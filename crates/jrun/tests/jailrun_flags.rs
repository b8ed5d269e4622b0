//! Jailrun's short flags work as there: `stop -y`, `start -b/-m`, repeatable `status -s`,
//! `pair -l`. Run on the vm runtime with no VM, so nothing starts.

mod local_env;

use std::process::Output;

fn jrun(home: &std::path::Path, args: &[&str]) -> Output {
    local_env::jrun()
        .args(args)
        .env("JRUN_HOME", home)
        .env("JRUN_RUNTIME", "vm")
        .env("JRUN_RELAY", "http://127.0.0.1:9")
        .env("JRUN_BSD_MIRROR", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

#[test]
fn jailrun_short_flags_are_accepted() {
    let home = tempfile::tempdir().unwrap();
    let stop = jrun(home.path(), &["stop", "-y"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(String::from_utf8_lossy(&stop.stdout).contains("was not running"));

    let status = jrun(
        home.path(),
        &["status", "-s", "ip", "-s", "services", "--json"],
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["instance"]["running"], false);

    let list = jrun(home.path(), &["pair", "-l", "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );

    let help = jrun(home.path(), &["start", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("-b, --base <FILE>") && text.contains("-m, --mode <MODE>"),
        "{text}"
    );
}
