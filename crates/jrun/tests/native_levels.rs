//! Native, end to end (root): the jails of one dependency level deploy side by side. When
//! one of them fails, the others of its level are up, the jails that need it (and every
//! later level) are not deployed, and the error names the failed jail; the next `up`
//! deploys the rest.

mod local_env;
mod native_support;

use native_support::Instance;

fn states(inst: &Instance) -> Vec<(String, String)> {
    inst.jails().into_iter().map(|j| (j.0, j.1)).collect()
}

fn namespace_exists(inst: &Instance, jail: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(inst.jail_ns(jail).as_str()))
}

#[test]
fn a_failed_jail_stops_its_dependents_but_not_its_level() {
    let inst = Instance::new(false);
    inst.start();
    let gate = inst.home.path().join("gate");
    let steps = inst.home.path().join("steps");
    std::fs::create_dir_all(&steps).unwrap();
    std::fs::write(
        steps.join("gated.sh"),
        "test -e \"$GATE\" || { echo no gate >&2; exit 3; }\n",
    )
    .unwrap();
    // Level 0: bad and one (bad first, so a run that stopped at it would never reach one);
    // level 1: child (needs bad) and other (needs one).
    let cfg = inst.config(&format!(
        r#"jail "bad" {{
  setup {{ gated {{ type = "shell"; file = "steps/gated.sh"; vars {{ GATE = "{}"; }} }} }}
}}
jail "one" {{ }}
jail "child" {{
  depends ["bad"]
}}
jail "other" {{
  depends ["one"]
}}
"#,
        gate.display()
    ));

    let out = inst.run(&["up", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("jail `bad`, setup step `gated`"), "{err}");
    assert!(err.contains("the jail was rolled back"), "{err}");
    let states = states(&inst);
    assert!(
        states.contains(&("one".into(), "up".into())),
        "the other jail of its level is up: {states:?}"
    );
    for jail in ["bad", "child", "other"] {
        assert!(
            !states.iter().any(|(n, s)| n == jail && s == "up"),
            "{jail}: {states:?}"
        );
        assert!(!namespace_exists(&inst, jail), "{jail} was deployed");
    }
    assert!(namespace_exists(&inst, "one"));

    // With its cause fixed, the next `up` deploys the rest.
    std::fs::write(&gate, "").unwrap();
    inst.up(&cfg);
    assert!(
        inst.jails().iter().all(|j| j.1 == "up"),
        "{:?}",
        inst.jails()
    );
    assert_eq!(inst.jails().len(), 4);
}
