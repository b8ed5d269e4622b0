//! Native runtime, end to end (root): names resolve inside jails, jails reach each other by
//! name, host forwards reach jails over tcp and udp and follow config changes, and a busy
//! host port is refused before anything changes.

mod local_env;
mod native_support;

use native_support::{free_port, tcp_fetch, udp_fetch, Instance, UPSTREAM_ANSWER};

#[test]
fn jails_resolve_and_reach_each_other_by_name() {
    let inst = Instance::new(false);
    inst.start();
    let cfg = inst
        .config("jail \"web\" { }\njail \"db\" { }\njail \"cache\" { ip = \"10.17.89.60\"; }\n");
    inst.up(&cfg);
    let db_ip = inst.ip_of("db");
    let web_ip = inst.ip_of("web");
    assert_eq!(inst.ip_of("cache"), "10.17.89.60");

    // Full and short names, from another jail.
    assert_eq!(inst.resolve("web", "db.local.jrun"), db_ip);
    assert_eq!(inst.resolve("web", "db"), db_ip);
    assert_eq!(inst.resolve("db", "web"), web_ip);
    assert_eq!(inst.resolve("db", "cache.local.jrun"), "10.17.89.60");
    // Unknown names under jrun. do not exist; everything else goes to the (local) upstream.
    assert_eq!(inst.dns_status("web", "nosuch.local.jrun"), "NXDOMAIN");
    assert_eq!(inst.dns_status("web", "nosuch.jrun"), "NXDOMAIN");
    assert_eq!(
        inst.resolve("web", "example.org."),
        UPSTREAM_ANSWER.to_string()
    );

    // A TCP server in one jail, reached from another by its short name.
    let _srv = inst.serve("db", "tcp", 5432, "hello-from-db");
    let (code, out) = inst.in_jail("web", &["busybox", "nc", "-w", "3", "db", "5432"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "hello-from-db");
    // The exit code of the command is passed through.
    assert_eq!(inst.in_jail("web", &["sh", "-c", "exit 7"]).0, 7);
}

#[test]
fn forwards_reach_jails_move_with_the_config_and_refuse_busy_ports() {
    let inst = Instance::new(false);
    inst.start();
    let (tcp_port, udp_port, moved_port) = (free_port(), free_port(), free_port());
    let cfg = inst.config(&format!(
        "jail \"app\" {{ forward {{ http {{ host = {tcp_port}; jail = 8080; }} \
         dns {{ proto = \"udp\"; host = {udp_port}; jail = 5353; }} }} }}\n\
         jail \"other\" {{ }}\n"
    ));
    inst.up(&cfg);
    let _tcp = inst.serve("app", "tcp", 8080, "tcp-from-app");
    let _udp = inst.serve("app", "udp", 5353, "udp-from-app");
    assert_eq!(tcp_fetch(tcp_port).trim(), "tcp-from-app");
    assert_eq!(udp_fetch(udp_port).trim(), "udp-from-app");
    let status = inst.ok(&["status"]);
    assert!(status.contains(&format!("tcp/{tcp_port}→8080")), "{status}");

    // Move the tcp forward to another host port: the old one stops, the new one works.
    let cfg = inst.config(&format!(
        "jail \"app\" {{ forward {{ http {{ host = {moved_port}; jail = 8080; }} \
         dns {{ proto = \"udp\"; host = {udp_port}; jail = 5353; }} }} }}\n\
         jail \"other\" {{ }}\n"
    ));
    inst.up(&cfg);
    assert_eq!(tcp_fetch(moved_port).trim(), "tcp-from-app");
    assert!(std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_err());

    // A host port held by someone else: refused, and nothing changes.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let busy = squatter.local_addr().unwrap().port();
    let before = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    let cfg = inst.config(&format!(
        "jail \"app\" {{ forward {{ http {{ host = {moved_port}; jail = 8080; }} \
         dns {{ proto = \"udp\"; host = {udp_port}; jail = 5353; }} }} }}\n\
         jail \"other\" {{ forward {{ web {{ host = {busy}; jail = 80; }} }} }}\n\
         jail \"newcomer\" {{ }}\n"
    ));
    let out = inst.run(&["up", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("tcp/{busy}")) && err.contains("in use"),
        "{err}"
    );
    let after = std::fs::read_to_string(inst.home.path().join("state.json")).unwrap();
    assert_eq!(before, after);
    assert!(inst.jails().iter().all(|j| j.0 != "newcomer"));
    assert_eq!(tcp_fetch(moved_port).trim(), "tcp-from-app");
}

/// How many queries the instance's resolver has answered since it (re)loaded its config:
/// a reload starts the count again.
fn resolver_queries(inst: &Instance) -> u64 {
    let conf = inst.home.path().join("run/unbound/unbound.conf");
    let out = std::process::Command::new("unbound-control")
        .arg("-c")
        .arg(&conf)
        .arg("stats_noreset")
        .output()
        .unwrap();
    assert!(out.status.success(), "unbound-control: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("total.num.queries="))
        .expect("a total.num.queries line")
        .parse()
        .unwrap()
}

#[test]
fn a_jail_added_or_removed_changes_the_names_at_once_without_a_resolver_reload() {
    let inst = Instance::new(false);
    inst.start();
    let two = inst.config("jail \"a\" { }\njail \"b\" { }\n");
    inst.up(&two);
    assert_eq!(inst.dig_once("a", "b.local.jrun"), Ok(inst.ip_of("b")));
    let asked = resolver_queries(&inst);
    assert!(asked > 0);

    // Added to the running instance: its name answers on the first query, from it and
    // from the others, and the resolver kept its state (no reload).
    inst.up(&inst.config("jail \"a\" { }\njail \"b\" { }\njail \"c\" { }\n"));
    let c = inst.ip_of("c");
    assert_eq!(inst.dig_once("c", "c.local.jrun"), Ok(c.clone()));
    assert_eq!(inst.dig_once("a", "c.local.jrun"), Ok(c));
    let after_add = resolver_queries(&inst);
    assert!(after_add >= asked + 2, "{asked} then {after_add}");

    // Removed: its name is gone at once; the others still answer.
    inst.ok(&["down", "c"]);
    assert_eq!(inst.dns_status("a", "c.local.jrun"), "NXDOMAIN");
    assert_eq!(inst.dig_once("a", "b.local.jrun"), Ok(inst.ip_of("b")));
    assert!(resolver_queries(&inst) >= after_add + 2);

    // What a restarted resolver reads says the same: the file holds a and b only.
    let records =
        std::fs::read_to_string(inst.home.path().join("run/unbound/records.conf")).unwrap();
    let names: Vec<&str> = records
        .lines()
        .filter_map(|l| l.strip_prefix("local-data: \"")?.split('.').next())
        .collect();
    assert_eq!(names, ["a", "b"]);
}
