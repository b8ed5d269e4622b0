//! Native, end to end (root): two instances pair through `jrun relay` (on 127.0.0.1, no
//! Yggdrasil node needed to pair) with protocol v2. A mistyped code ends with "the code
//! does not match" on both sides and changes nothing (firewall sets, DNS records, state
//! byte-identical); the right code pairs, both sides printing the same fingerprint.

mod local_env;
mod native_support;

use native_support::pairing::{instance, pair, snapshot, unwrapped, Relay};

#[test]
fn v2_pairs_with_the_right_code_and_a_typo_changes_nothing_on_either_side() {
    let relay = Relay::start();
    let a = instance(&relay.url, "web");
    let b = instance(&relay.url, "app");
    let (before_a, before_b) = (snapshot(&a, &["web"]), snapshot(&b, &["app"]));

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
    let p = pair(&a, &b, typo);
    assert!(!p.creator_ok && !p.joined.status.success());
    for said in [p.creator_said.as_str(), &p.joiner_said()] {
        let said = unwrapped(said);
        assert!(said.contains("the code does not match"), "{said}");
    }
    assert_eq!(snapshot(&a, &["web"]), before_a);
    assert_eq!(snapshot(&b, &["app"]), before_b);

    // The right code: v2 on both sides, the same fingerprint.
    let p = pair(&a, &b, |c| c.to_string());
    assert!(p.creator_ok, "{}", p.creator_said);
    assert!(p.joined.status.success(), "{}", p.joiner_said());
    let pa: serde_json::Value =
        serde_json::from_str(p.creator_said.lines().next().unwrap()).unwrap();
    let pb: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&p.joined.stdout).trim()).unwrap();
    assert_eq!((&pa["protocol"], &pb["protocol"]), (&2.into(), &2.into()));
    assert_eq!(pa["fingerprint"], pb["fingerprint"]);
    assert_eq!(pa["jails"][0]["name"], "app");
    assert_eq!(pb["jails"][0]["name"], "web");
    assert!(snapshot(&a, &["web"])[1].contains(&format!("app.{}.jrun", p.code)));
    // No warning about v1 on either side.
    assert!(!p.joiner_said().contains("warning"));
}
