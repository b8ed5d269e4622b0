//! Issue 15 item 3 on a real native instance: `jrun pair --share` opens only the named
//! jails, a jail deployed later admits nobody until `--share` on the existing code names
//! it, and `mesh { allow }` puts exactly the allowed ports in the loaded nft ruleset
//! (`nft list table inet jrun` in each jail's namespace). Root; a fake relay on loopback
//! answers a fixed roster, so no second instance is needed.

mod local_env;
mod native_support;

use std::process::Command;

use native_support::{instance_id, Instance};

/// The loaded ruleset of a jail's `inet jrun` table.
fn ruleset(inst: &Instance, jail: &str) -> String {
    let ns = format!("jrun-{}-j-{jail}", instance_id(inst.home.path()));
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "inet", "jrun"])
        .output()
        .unwrap();
    assert!(out.status.success(), "no jrun table in {ns}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `mesh_peers` set's elements line of a ruleset, or `None` when the set is empty.
fn peers(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with("elements = "))
        .map(|l| l.trim().to_string())
}

/// The accept rules on ygg0 that name the peer set.
fn admits(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.contains("@mesh_peers"))
        .map(str::to_string)
        .collect()
}

const GOOD: &str = "200:848a:604f:bb7e:4384:65db:8db6:6895";
const CODE: &str = "7-apple-berry-cloud";

#[test]
fn share_and_mesh_allow_shape_the_loaded_rulesets() {
    let inst = Instance::new(true);
    inst.start();
    let three = "jail \"web\" { mesh { allow = [8000, \"53/udp\"]; } }\njail \"db\" { }\njail \"api\" { }\n";
    let cfg = inst.config(three);
    inst.up(&cfg);
    let web = ruleset(&inst, "web");
    assert_eq!(
        admits(&web),
        [
            "iifname \"ygg0\" ip6 saddr @mesh_peers tcp dport 8000 accept",
            "iifname \"ygg0\" ip6 saddr @mesh_peers udp dport 53 accept",
            "iifname \"ygg0\" ip6 saddr @mesh_peers icmpv6 type echo-request accept",
        ],
        "{web}"
    );
    assert_eq!(
        admits(&ruleset(&inst, "db")),
        ["iifname \"ygg0\" ip6 saddr @mesh_peers accept"]
    );

    // A jail that is not deployed cannot be shared.
    let relay = native_support::fake_relay::fixed_roster(format!(
        r#"{{"jails":[{{"name":"db","ygg_address":"{GOOD}"}}]}}"#
    ));
    let out = inst
        .command(&["pair", CODE, "--share", "web,nope"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope`, which is not a deployed jail"));

    let out = inst
        .command(&["pair", CODE, "--share", "web,db"])
        .env("JRUN_RELAY", relay.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = format!("elements = {{ {GOOD} }}");
    for j in ["web", "db"] {
        assert_eq!(
            peers(&ruleset(&inst, j)).as_deref(),
            Some(set.as_str()),
            "{j}"
        );
    }
    assert_eq!(peers(&ruleset(&inst, "api")), None, "api is not shared");
    // The ports stay as the config says after a pairing change.
    assert_eq!(admits(&ruleset(&inst, "web")), admits(&web));

    // A jail deployed later admits nobody; `--share` on the existing code opens it (and
    // here closes the others), without the relay.
    let cfg = inst.config(&format!("{three}jail \"late\" {{ }}\n"));
    inst.up(&cfg);
    assert_eq!(peers(&ruleset(&inst, "late")), None);
    drop(relay);
    inst.ok(&["pair", "--share", "late", CODE]);
    assert_eq!(
        peers(&ruleset(&inst, "late")).as_deref(),
        Some(set.as_str())
    );
    for j in ["web", "db", "api"] {
        assert_eq!(peers(&ruleset(&inst, j)), None, "{j}");
    }
    let list: serde_json::Value =
        serde_json::from_str(&inst.ok(&["pair", "--list", "--json"])).unwrap();
    assert_eq!(list[0]["shares"], serde_json::json!(["late"]));

    // Narrowing the ports reloads web's firewall; its peers set follows the pairing.
    inst.ok(&["pair", "--share", "web,late", CODE]);
    let cfg = inst.config(&format!(
        "{}jail \"late\" {{ }}\n",
        three.replace("[8000, \"53/udp\"]", "[9000]")
    ));
    inst.up(&cfg);
    let web = ruleset(&inst, "web");
    assert_eq!(peers(&web).as_deref(), Some(set.as_str()));
    assert!(
        web.contains("tcp dport 9000 accept") && !web.contains("8000"),
        "{web}"
    );
    inst.ok(&["pair", "--drop", CODE]);
    assert_eq!(peers(&ruleset(&inst, "web")), None);
}
