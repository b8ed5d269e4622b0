//! Native, end to end (root): a relay that answers with a hostile roster — a name that
//! would inject an unbound directive, an address outside `200::/8`, `::/0` — makes the
//! pairing fail with a clear message, and no firewall set, DNS record or state entry
//! changes. The "relay" is a tiny HTTP server on 127.0.0.1 written here.

mod local_env;
mod native_support;

use native_support::pairing::snapshot;
use native_support::Instance;

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
        let relay = native_support::fake_relay::fixed_roster(body);
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
    let relay = native_support::fake_relay::fixed_roster(format!(
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
    let relay = native_support::fake_relay::fixed_roster(format!(
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
