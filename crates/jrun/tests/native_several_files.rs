//! Native runtime, end to end (root): two config files deployed into one instance. Each
//! `up` adds or updates its own file's jails; the other file's jails keep running, keep
//! their names in the resolver and their forwards; a jail name another file deployed is
//! refused; dropping a jail from one file removes only that jail.

mod local_env;
mod native_support;

use native_support::{free_port, tcp_fetch, Instance};

fn names(inst: &Instance) -> Vec<(String, String)> {
    let mut jails: Vec<_> = inst.jails().into_iter().map(|(n, s, _)| (n, s)).collect();
    jails.sort();
    jails
}

fn up(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

#[test]
fn two_files_share_one_instance() {
    // The harness starts every jrun from local_env: nothing here reaches the network.
    let inst = Instance::new(false);
    inst.start();
    let (web_port, db_port) = (free_port(), free_port());
    let write = |file: &str, text: String| {
        let path = inst.home.path().join(file);
        std::fs::write(&path, text).unwrap();
        path.canonicalize().unwrap()
    };
    let a = write(
        "a.ucl",
        format!(
            "jail \"web\" {{ forward {{ http {{ host = {web_port}; jail = 8080; }} }} }}\n\
             jail \"worker\" {{ }}\n"
        ),
    );
    let b = write(
        "b.ucl",
        format!("jail \"db\" {{ forward {{ pg {{ host = {db_port}; jail = 5432; }} }} }}\n"),
    );
    inst.up(&a);
    inst.up(&b);
    assert_eq!(
        names(&inst),
        [up("db", "up"), up("web", "up"), up("worker", "up")]
    );

    // Names resolve across files, both ways; both files' forwards work.
    let (db_ip, web_ip) = (inst.ip_of("db"), inst.ip_of("web"));
    assert_eq!(inst.resolve("web", "db"), db_ip);
    assert_eq!(inst.resolve("db", "web.local.jrun"), web_ip);
    let _web = inst.serve("web", "tcp", 8080, "from-web");
    let _db = inst.serve("db", "tcp", 5432, "from-db");
    assert_eq!(tcp_fetch(web_port).trim(), "from-web");
    assert_eq!(tcp_fetch(db_port).trim(), "from-db");

    // Each file's plan leaves the other's jails alone, and says so.
    let plan = inst.ok(&["plan", a.to_str().unwrap()]);
    assert!(plan.starts_with("Nothing to do"), "{plan}");
    assert!(
        plan.contains(&format!("untouched: db (from {})", b.display())),
        "{plan}"
    );
    let plan = inst.ok(&["plan", b.to_str().unwrap()]);
    assert!(
        plan.contains(&format!("untouched: web, worker (from {})", a.display())),
        "{plan}"
    );

    // A third file naming db: refused, naming b.ucl, and nothing changes.
    let before = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    let c = write("c.ucl", "jail \"db\" { }\n".to_string());
    let out = inst.run(&["up", c.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).replace(['\n', '│', ' '], "");
    assert!(
        err.contains(&format!("jaildbwasdeployedfrom{}", b.display()).replace(' ', "")),
        "{err}"
    );
    let after = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    assert_eq!(before, after);

    // a.ucl without worker: only worker goes; db (b.ucl) keeps running, resolving and
    // forwarding.
    write(
        "a.ucl",
        format!("jail \"web\" {{ forward {{ http {{ host = {web_port}; jail = 8080; }} }} }}\n"),
    );
    let out = inst.up(&a);
    assert!(out.contains("worker"), "{out}");
    assert_eq!(names(&inst), [up("db", "up"), up("web", "up")]);
    assert_eq!(inst.resolve("web", "db"), db_ip);
    assert_eq!(inst.dns_status("db", "worker.local.jrun"), "NXDOMAIN");
    assert_eq!(tcp_fetch(db_port).trim(), "from-db");
    assert_eq!(tcp_fetch(web_port).trim(), "from-web");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(inst.home.path().join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["jails"]["db"]["file"], b.to_str().unwrap());
    assert_eq!(state["jails"]["web"]["file"], a.to_str().unwrap());
}
