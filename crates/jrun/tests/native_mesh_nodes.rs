//! Native, end to end (root): the Yggdrasil nodes of the jails an `up` deploys start
//! together, in one supervisor reload. A node that cannot start fails its own jail alone:
//! that jail is rolled back and named with the mesh step, the others of the run are up
//! with their nodes running, and the next `up` deploys it.

mod local_env;
mod native_support;

use native_support::{processes_mentioning, Instance};

/// The running Yggdrasil node of `jail`, if any (its command line names its config).
fn node_running(inst: &Instance, jail: &str) -> bool {
    let conf = inst.home.path().join(format!("run/ygg/j-{jail}.conf"));
    !processes_mentioning(&conf.display().to_string()).is_empty()
}

#[test]
fn a_node_that_cannot_start_fails_its_jail_alone() {
    let inst = Instance::new(true);
    inst.start();
    let cfg = inst.config("jail \"one\" { }\njail \"bad\" { }\njail \"two\" { }\n");
    // The supervisor cannot open the node's log (a folder stands where it goes), so it
    // cannot start that node.
    let log = inst.home.path().join("logs/ygg-j-bad.log");
    std::fs::create_dir_all(&log).unwrap();

    let out = inst.run(&["up", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("jail `bad`, step mesh"), "{stderr}");
    assert!(stderr.contains("the jail was rolled back"), "{stderr}");
    let states: Vec<(String, String)> = inst
        .jails()
        .into_iter()
        .map(|(name, state, _)| (name, state))
        .collect();
    for good in ["one", "two"] {
        assert!(
            states.contains(&(good.to_string(), "up".to_string())),
            "{good}: {states:?}"
        );
        assert!(node_running(&inst, good), "{good}'s node is not running");
    }
    assert!(
        !states
            .iter()
            .any(|(name, state)| name == "bad" && state == "up"),
        "{states:?}"
    );
    assert!(!node_running(&inst, "bad"));
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&inst.jail_ns("bad")),
        "the failed jail's namespace was not rolled back"
    );

    // Once the node can start, the next `up` deploys the jail.
    std::fs::remove_dir(&log).unwrap();
    inst.up(&cfg);
    assert!(
        inst.jails().iter().all(|j| j.1 == "up"),
        "{:?}",
        inst.jails()
    );
    for jail in ["one", "bad", "two"] {
        assert!(node_running(&inst, jail), "{jail}'s node is not running");
    }
}
