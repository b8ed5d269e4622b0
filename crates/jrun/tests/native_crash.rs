//! Native runtime, end to end (root): `jrun up` killed after each step of a deployment
//! (test-only `JRUN_FAULT=after:<step>`, honoured by debug builds) and run again converges
//! to exactly what a clean run gives.

mod local_env;
mod native_support;

use native_support::{free_port, instance_id, leftovers, tcp_fetch, Instance};

const STEPS: [&str; 8] = [
    "namespace",
    "link",
    "address",
    "resolver",
    "firewall",
    "mesh",
    "records",
    "forwards",
];

#[test]
fn killed_up_converges_on_rerun_after_every_step() {
    let inst = Instance::new(true);
    inst.start();
    let port = free_port();
    let cfg = inst.config(&format!(
        "jail \"front\" {{ forward {{ web {{ host = {port}; jail = 8080; }} }} }}\n\
         jail \"back\" {{ }}\n"
    ));
    let id = instance_id(inst.home.path());
    let clean = |inst: &Instance| (inst.jails(), leftovers(&id));

    inst.up(&cfg);
    let baseline = clean(&inst);
    assert!(baseline.0.iter().all(|j| j.1 == "up"), "{baseline:?}");

    for step in STEPS {
        inst.ok(&["down", "--yes"]);
        let out = inst
            .command(&["up", cfg.to_str().unwrap()])
            .env("JRUN_FAULT", format!("after:{step}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "up was not interrupted after {step}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("after step {step}")),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The interrupted jail is not recorded as deployed.
        assert!(
            inst.jails().iter().any(|j| j.1 != "up"),
            "after {step}: {:?}",
            inst.jails()
        );

        inst.up(&cfg);
        assert_eq!(clean(&inst), baseline, "after a kill at {step}");
        let front_ip = inst.ip_of("front");
        assert_eq!(inst.resolve("back", "front"), front_ip, "after {step}");
        let _srv = inst.serve("front", "tcp", 8080, "front-ok");
        assert_eq!(tcp_fetch(port).trim(), "front-ok", "after {step}");
        let again = inst.up(&cfg);
        assert!(again.contains("Nothing to change"), "after {step}: {again}");
    }
}

#[test]
fn a_failed_step_rolls_the_jail_back_and_names_the_step() {
    let inst = Instance::new(false);
    inst.start();
    let cfg = inst.config("jail \"solo\" { }\n");
    let id = instance_id(inst.home.path());
    let out = inst
        .command(&["up", cfg.to_str().unwrap()])
        .env("JRUN_FAULT", "fail:firewall")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jail `solo`, step firewall"), "{err}");
    // Rolled back: no namespace, no resolv.conf; recorded as failed, not deployed.
    assert!(
        leftovers(&id).iter().all(|l| !l.contains("-j-solo")),
        "{:?}",
        leftovers(&id)
    );
    let jails = inst.jails();
    assert_eq!(jails.len(), 1);
    assert_eq!(jails[0].1, "failed");
    assert_eq!(inst.dns_status_from_vm("solo.local.jrun"), "NXDOMAIN");
    // The next up retries it at the same address.
    let ip = jails[0].2.clone();
    inst.up(&cfg);
    assert_eq!(inst.jails(), [("solo".to_string(), "up".to_string(), ip)]);
}
