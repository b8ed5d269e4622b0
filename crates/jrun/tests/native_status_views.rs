//! `jrun status`'s views on the native runtime, end to end (root): the instance's vitals,
//! the mounts column, the dependency tree, and `--live` measuring a busy jail's CPU and
//! memory from its own processes while an idle jail stays near zero.

mod local_env;
mod native_support;

use native_support::Instance;

#[test]
fn status_shows_vitals_mounts_tree_live_cpu_and_escapes_jail_text() {
    let inst = Instance::new(false);
    let data = inst.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let in_jail = inst.home.path().join("jail-data").display().to_string();
    let cfg = inst.config(&format!(
        r#"jail "db" {{
  mount {{ data {{ host = "data"; jail = "{in_jail}"; }} }}
  exec {{ idle {{ cmd = "printf '\\033]0;pwned\\007 hello\\n'; exec sleep 600"; }} }}
}}
jail "api" {{
  depends ["db"]
  exec {{ spin {{ cmd = "while :; do :; done"; }} }}
}}
"#
    ));
    inst.start();
    inst.up(&cfg);

    // Vitals: the supervisor's pid and an uptime, in JSON and on the instance line.
    let status = inst.status();
    let vitals = &status["instance"]["vitals"];
    assert!(vitals["pid"].as_u64().unwrap() > 1, "{status}");
    assert!(vitals["uptime_secs"].is_u64(), "{status}");
    let db = status["jails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "db")
        .unwrap()
        .clone();
    assert_eq!(
        db["mounts"][0].as_str().unwrap(),
        format!("{}→{in_jail}", data.display())
    );
    let text = inst.ok(&["status", "-s", "mounts"]);
    assert!(text.contains(&format!("pid {}", vitals["pid"])), "{text}");
    assert!(text.contains("MOUNTS") && text.contains(&in_jail), "{text}");

    // The tree: api under db, with db's mount and each service as leaves.
    let tree = inst.ok(&["status", "--tree", "-s", "all"]);
    let lines: Vec<&str> = tree.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in\n{tree}"))
    };
    assert!(lines[at("── db  up")].starts_with("└── db"), "{tree}");
    assert!(
        at("mount ") > at("── db  up") && at("── api  up") > at("mount "),
        "{tree}"
    );
    assert!(lines[at("── api  up")].starts_with("    └── api"), "{tree}");
    assert!(tree.contains("service spin  running"), "{tree}");

    // A service's log is the jail's text: its escape sequences are shown, never sent to
    // the admin's terminal, in `status <jail>` and in `jrun logs` on a terminal.
    let detail = inst.ok(&["status", "db"]);
    assert!(detail.contains("\\x1b]0;pwned\\x07 hello"), "{detail}");
    assert!(
        !detail.contains('\x1b') && !detail.contains('\x07'),
        "{detail:?}"
    );
    let logs = inst.command(&["logs", "db", "idle", "-n", "5"]);
    let line = format!("{} logs db idle -n 5", logs.get_program().to_str().unwrap());
    let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = logs
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .envs(envs)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("\\x1b]0;pwned\\x07 hello"), "{shown:?}");
    assert!(!shown.contains("\x1b]0;pwned"), "{shown:?}");

    // Live: three refreshes 400 ms apart, one JSON line each; from the second on, the
    // spinning jail uses most of a core and the sleeping one next to nothing.
    let out = inst.ok(&[
        "status",
        "--live",
        "--json",
        "--count",
        "3",
        "--interval",
        "400ms",
    ]);
    let frames: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3, "{out}");
    let row = |f: &serde_json::Value, jail: &str| {
        f["jails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["jail"] == jail)
            .unwrap()
            .clone()
    };
    assert!(
        row(&frames[0], "api")["cpu_percent"].is_null(),
        "a rate needs two samples"
    );
    let (api, db) = (row(&frames[2], "api"), row(&frames[2], "db"));
    assert!(api["cpu_percent"].as_f64().unwrap() > 40.0, "{out}");
    assert!(db["cpu_percent"].as_f64().unwrap() < 10.0, "{out}");
    assert!(api["processes"].as_u64().unwrap() >= 1 && db["processes"].as_u64().unwrap() >= 1);
    assert!(db["rss_bytes"].as_u64().unwrap() > 0, "{out}");

    // The plain view, as a pipe sees it: one frame after another.
    let plain = inst.ok(&[
        "status",
        "--live",
        "--count",
        "2",
        "--interval",
        "200ms",
        "api",
    ]);
    assert_eq!(plain.matches("jrun status --live").count(), 2, "{plain}");
    assert!(plain.contains("api") && !plain.contains("\x1b["), "{plain}");
}
