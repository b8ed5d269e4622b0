//! Services in native jails, end to end (root): an exec answers through its forward, comes
//! back after a kill, is restarted when its health check fails, logs and rotates; mounts are
//! shared both ways without touching the host's mount table; setup steps run once, again
//! with `--provision`, and a failing one is retried; `down` and `stop` leave no process.

mod local_env;
mod native_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use native_support::services::{folder, mount_points_under, Jrun};
use native_support::{free_port, processes_mentioning};
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match got {
            Ok(t) if t.starts_with("HTTP/") => return t,
            _ if Instant::now() > deadline => return String::new(),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn a_service_answers_comes_back_after_a_kill_restarts_when_unhealthy_and_logs_rotate() {
    let j = Jrun::new();
    let site = folder(
        j.home(),
        "site",
        &[("index.html", "hello from the web jail\n"), ("healthy", "")],
    );
    let port = free_port();
    // Jails share the host's root: a missing mount point is created there, so keep it
    // inside the test's home.
    let www = j.home().join("jail-www").display().to_string();
    let cfg = j.inst.config(&format!(
        r#"jail "web" {{
  mount {{ site {{ host = "site"; jail = "{www}"; }} }}
  forward {{ http {{ host = {port}; jail = 8080; }} }}
  exec {{
    http {{
      cmd = "exec python3 -m http.server 8080";
      dir = "{www}";
      env {{ PYTHONUNBUFFERED = "1"; }}
      healthcheck {{ test = "test -e healthy"; interval = "300ms"; timeout = "2s"; retries = 2; }}
    }}
  }}
}}
"#
    ));
    j.inst.up(&cfg);
    assert!(http_get(port, "/index.html").contains("hello from the web jail"));

    let first = j.wait_service("web", "http", 5, |s| s["health"] == "healthy");
    assert_eq!(first["state"], "running", "{first}");
    assert_eq!(first["restarts"], 0);
    let pid1 = first["pid"].as_u64().unwrap();

    // Killed: back within the backoff, answering through the forward again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid1 as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let back = j.wait_service("web", "http", 5, |s| {
        s["restarts"] == 1 && s["state"] == "running" && s["pid"].as_u64() != Some(pid1)
    });
    assert_eq!(back["restarts"], 1, "{back}");
    assert!(http_get(port, "/index.html").contains("hello from the web jail"));

    // The health check starts failing: restarted after two failures in a row.
    std::fs::remove_file(site.join("healthy")).unwrap();
    let sick = j.wait_service("web", "http", 8, |s| s["restarts"].as_u64() >= Some(2));
    assert!(sick["restarts"].as_u64() >= Some(2), "{sick}");
    assert!(
        sick["health"].as_str().unwrap().starts_with("unhealthy"),
        "{sick}"
    );
    std::fs::write(site.join("healthy"), "").unwrap();

    // Requests are logged (http.server logs to stderr), and the log rotates at 4000 bytes.
    for _ in 0..60 {
        assert!(http_get(port, "/index.html").contains("hello"));
    }
    let log = j.home().join("logs/web/http.log");
    let rotated = j.home().join("logs/web/http.log.1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rotated.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("GET /index.html"));
    assert!(std::fs::metadata(&log).unwrap().len() <= 4000);

    // `status web` shows the service and the last lines of its log.
    let text = j.inst.ok(&["status", "web"]);
    assert!(text.contains("http"), "{text}");
    assert!(text.contains("--- web/http"), "{text}");
    assert!(text.contains("GET /index.html"), "{text}");
    let table = j.inst.ok(&["status", "--show", "services"]);
    assert!(
        table.contains("RESTARTS") && table.contains("running"),
        "{table}"
    );
}

#[test]
fn a_mount_is_shared_both_ways_and_the_host_mount_table_is_untouched() {
    let j = Jrun::new();
    let data = folder(
        j.home(),
        "data",
        &[("from-host.txt", "written on the host\n")],
    );
    let target = j.home().join("jail-data").display().to_string();
    let cfg = j.inst.config(&format!(
        "jail \"box\" {{\n  mount {{ data {{ host = \"data\"; jail = \"{target}\"; }} }}\n}}\n"
    ));
    j.inst.up(&cfg);
    let (code, out) = j.inst.in_jail(
        "box",
        &[
            "sh",
            "-c",
            &format!("cat {target}/from-host.txt && echo jail > {target}/from-jail.txt"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "written on the host\n");
    assert_eq!(
        std::fs::read_to_string(data.join("from-jail.txt")).unwrap(),
        "jail\n"
    );
    // The bind lives in the jail's namespace only.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(&target), "{host_mounts}");
    assert!(!Path::new(&target).join("from-host.txt").exists());

    // A missing host folder is refused, naming it.
    let cfg2 = j.inst.config(&format!(
        "jail \"box\" {{\n  mount {{ data {{ host = \"nowhere\"; jail = \"{target}\"; }} }}\n}}\n"
    ));
    let out = j.inst.run(&["up", cfg2.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mount `data`") && err.contains("nowhere"),
        "{err}"
    );
    // Refused before anything changed: the jail still runs with its mount.
    assert_eq!(j.inst.jails()[0].1, "up");
    assert_eq!(
        j.inst
            .in_jail("box", &["cat", &format!("{target}/from-jail.txt")])
            .1,
        "jail\n"
    );

    j.inst.ok(&["stop"]);
    assert!(mount_points_under(j.home()).is_empty());
    // The mount point jrun had to create (on the shared root) is gone again.
    assert!(!Path::new(&target).exists());
}

#[test]
fn setup_runs_on_create_not_on_the_next_up_again_with_provision_and_a_failing_step_is_retried() {
    let j = Jrun::new();
    let marks = j.home().join("marks");
    let gate = j.home().join("gate");
    folder(
        j.home(),
        "steps",
        &[
            (
                "mark.sh",
                "echo \"marking $WHO\"\necho \"$WHO\" >> \"$MARKS\"\n",
            ),
            (
                "gated.sh",
                "echo checking the gate\ntest -e \"$GATE\" || { echo no gate >&2; exit 3; }\n",
            ),
        ],
    );
    let cfg = j.inst.config(&format!(
        r#"jail "one" {{
  setup {{ mark {{ type = "shell"; file = "steps/mark.sh"; vars {{ WHO = "one"; MARKS = "{}"; }} }} }}
}}
jail "two" {{
  setup {{ gated {{ type = "shell"; file = "steps/gated.sh"; vars {{ GATE = "{}"; }} }} }}
}}
"#,
        marks.display(),
        gate.display()
    ));
    let out = j.inst.run(&["up", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jail `two`, setup step `gated`"), "{err}");
    assert!(err.contains("no gate"), "the step's output is shown: {err}");
    assert!(err.contains("marking one"), "{err}");
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "one\n");
    let states: Vec<(String, String)> = j.inst.jails().into_iter().map(|j| (j.0, j.1)).collect();
    assert_eq!(
        states,
        [("one".into(), "up".into()), ("two".into(), "failed".into())]
    );

    // The next up retries the failed jail only; the step passes now.
    std::fs::write(&gate, "").unwrap();
    j.inst.up(&cfg);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "one\n");
    assert!(j.inst.jails().iter().all(|j| j.1 == "up"));
    j.inst.up(&cfg);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "one\n");
    j.inst.ok(&["up", cfg.to_str().unwrap(), "--provision"]);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "one\none\n");
}

#[test]
fn changes_restart_only_their_service_and_down_and_stop_leave_no_process() {
    let j = Jrun::new();
    // Each service forks a child: the whole group must go, not just the shell.
    let tag = free_port();
    let cfg_text = |a: &str| {
        format!(
            "jail \"w\" {{\n  exec {{\n    a {{ cmd = \"sleep {a}{tag} & sleep {a}{tag}; wait\"; }}\n    b {{ cmd = \"sleep 62{tag} & sleep 62{tag}; wait\"; }}\n  }}\n}}\n"
        )
    };
    let cfg = j.inst.config(&cfg_text("61"));
    j.inst.up(&cfg);
    let a1 = j.wait_service("w", "a", 5, |s| s["state"] == "running");
    let b1 = j.service("w", "b");
    // The shell and its two sleeps.
    assert_eq!(processes_mentioning(&format!("sleep 61{tag}")).len(), 3);

    let cfg = j.inst.config(&cfg_text("63"));
    j.inst.up(&cfg);
    let a2 = j.wait_service("w", "a", 5, |s| s["state"] == "running");
    assert_ne!(a2["pid"], a1["pid"]);
    assert_eq!(j.service("w", "b")["pid"], b1["pid"]);
    assert!(processes_mentioning(&format!("sleep 61{tag}")).is_empty());

    // An exec removed from the config is stopped, with its children; the other stays.
    let only_a = j.inst.config(&format!(
        "jail \"w\" {{\n  exec {{\n    a {{ cmd = \"sleep 63{tag} & sleep 63{tag}; wait\"; }}\n  }}\n}}\n"
    ));
    j.inst.up(&only_a);
    assert_eq!(j.service("w", "b"), serde_json::Value::Null);
    assert!(processes_mentioning(&format!("sleep 62{tag}")).is_empty());
    assert_eq!(j.service("w", "a")["pid"], a2["pid"]);
    // (`config` rewrites the same file.)
    let cfg = j.inst.config(&cfg_text("63"));
    j.inst.up(&cfg);

    j.inst.ok(&["down", "w"]);
    assert!(processes_mentioning(&format!("{tag}"))
        .iter()
        .all(|p| !p.contains("sleep")));
    assert_eq!(j.service("w", "a"), serde_json::Value::Null);

    j.inst.up(&cfg);
    assert_eq!(processes_mentioning(&format!("sleep 62{tag}")).len(), 3);
    j.inst.ok(&["stop"]);
    assert!(processes_mentioning(&format!("{tag}"))
        .iter()
        .all(|p| !p.contains("sleep")));
}

#[test]
fn a_dead_supervisor_takes_its_services_along_and_start_sweeps_the_rest() {
    let j = Jrun::new();
    let tag = free_port();
    let cfg = j.inst.config(&format!(
        "jail \"w\" {{\n  exec {{\n    lead {{ cmd = \"exec sleep 71{tag}\"; }}\n    kids {{ cmd = \"sleep 72{tag} & sleep 72{tag}; wait\"; }}\n  }}\n}}\n"
    ));
    j.inst.up(&cfg);
    let lead = j.wait_service("w", "lead", 5, |s| s["state"] == "running");
    let lead_pid = lead["pid"].as_u64().unwrap() as i32;
    let pid_file = std::fs::read_to_string(j.home().join("run/supervisor.pid")).unwrap();
    let supervisor: i32 = pid_file.split_whitespace().next().unwrap().parse().unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // PR_SET_PDEATHSIG: the services' leaders die with the supervisor.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{lead_pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(processes_mentioning(&format!("sleep 71{tag}")).is_empty());
    // Starting again (like `stop`) sweeps whatever is still inside the dead instance's jail
    // namespaces (the leaders' children) and its jails' mount namespaces.
    j.inst.start();
    assert!(processes_mentioning(&format!("sleep 72{tag}")).is_empty());
    assert!(mount_points_under(j.home()).is_empty());
}

/// Copies `examples/<name>` into the test's home, with its host ports moved to free ones.
fn example(j: &Jrun, name: &str, ports: &[(u16, u16)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let dst = j.home().join(name);
    let st = std::process::Command::new("cp")
        .args(["-r", &src.display().to_string(), &dst.display().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // Start the copy with an empty store: one left in the checkout by someone trying the
    // example by hand would otherwise change what it answers.
    let data = dst.join("data");
    if data.is_dir() {
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name() != Some(std::ffi::OsStr::new(".gitignore")) {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let cfg = dst.join("jrun.ucl");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    for (from, to) in ports {
        text = text.replace(&format!("host = {from};"), &format!("host = {to};"));
    }
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn the_examples_run_as_the_readme_says() {
    let j = Jrun::new();
    let web_port = free_port();
    let web = example(&j, "web", &[(8080, web_port)]);
    j.inst.up(&web);
    assert!(http_get(web_port, "/").contains("Hello from a jrun jail"));

    // `up` of another file replaces the first one's jails.
    let app_port = free_port();
    let app = example(&j, "app-db", &[(8081, app_port)]);
    j.inst.up(&app);
    let first = http_get(app_port, "/");
    assert!(
        first.contains("visit 1 (greeting: hello from setup)"),
        "{first}"
    );
    assert!(http_get(app_port, "/").contains("visit 2"));
    // The database keeps its store in the mounted `data` folder on the host.
    let store = std::fs::read_to_string(j.home().join("app-db/data/store.json")).unwrap();
    assert!(store.contains("\"visits\": \"2\""), "{store}");
}

#[test]
fn a_failing_step_on_a_running_jail_leaves_it_and_its_services_running() {
    let j = Jrun::new();
    let gate = j.home().join("gate");
    std::fs::write(&gate, "").unwrap();
    folder(
        j.home(),
        "steps",
        &[(
            "gated.sh",
            "test -e \"$GATE\" || { echo no gate >&2; exit 3; }\n",
        )],
    );
    let tag = free_port();
    let cfg = j.inst.config(&format!(
        r#"jail "w" {{
  setup {{ gated {{ type = "shell"; file = "steps/gated.sh"; vars {{ GATE = "{}"; }} }} }}
  exec {{ a {{ cmd = "sleep 64{tag}"; }} }}
}}
"#,
        gate.display()
    ));
    j.inst.up(&cfg);
    let before = j.wait_service("w", "a", 5, |s| s["state"] == "running");
    assert_eq!(before["state"], "running");
    let procs = processes_mentioning(&format!("sleep 64{tag}"));
    assert!(!procs.is_empty());

    std::fs::remove_file(&gate).unwrap();
    let out = j.inst.run(&["up", cfg.to_str().unwrap(), "--provision"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("left running"), "{err}");
    // The jail, its network and its service are untouched.
    assert_eq!(j.service("w", "a")["pid"], before["pid"]);
    assert_eq!(processes_mentioning(&format!("sleep 64{tag}")), procs);
    let (code, _) = j.inst.in_jail("w", &["true"]);
    assert_eq!(code, 0);
    assert_eq!(j.inst.jails()[0].1, "failed");
    // Its name still resolves (its records and forwards are kept while it runs).
    assert_eq!(j.inst.resolve("w", "w"), j.inst.ip_of("w"));

    // The next up retries the provisioning and records it deployed again; setup having
    // run to the end now, the service restarts after it (as any `--provision` does).
    std::fs::write(&gate, "").unwrap();
    j.inst.up(&cfg);
    assert_eq!(j.inst.jails()[0].1, "up");
    let after = j.wait_service("w", "a", 10, |s| {
        s["state"] == "running" && s["pid"] != before["pid"]
    });
    assert_ne!(after["pid"], before["pid"], "{after}");
}

#[test]
fn an_idle_control_client_does_not_freeze_the_supervisor() {
    let j = Jrun::new();
    let tag = free_port();
    let cfg = j.inst.config(&format!(
        "jail \"w\" {{\n  exec {{ a {{ cmd = \"exec sleep 65{tag}\"; }} }}\n}}\n"
    ));
    j.inst.up(&cfg);
    let first = j.wait_service("w", "a", 5, |s| s["state"] == "running");
    let pid1 = first["pid"].as_u64().unwrap();

    // Connected, sending nothing, kept open for the whole test; another writes no newline.
    let socket = j.home().join("run/supervisor.sock");
    let _silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut endless = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::Write;
    let _ = endless.write_all(&[b'x'; 4096]);

    // Still answers others, and still restarts a killed service.
    assert_eq!(j.service("w", "a")["pid"], first["pid"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid1 as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let back = j.wait_service("w", "a", 10, |s| {
        s["state"] == "running" && s["pid"].as_u64() != Some(pid1)
    });
    assert_eq!(back["restarts"], 1, "{back}");
}

/// `exec { … user = "nobody"; }`: the service runs as uid 65534 with no supplementary
/// group, inside its jail's network namespace, answers through its forward, its health
/// check passes only when it too runs as nobody, and it still dies with the supervisor
/// (the parent-death signal is set after the change of uid, which would clear it).
#[test]
fn a_service_with_user_nobody_runs_as_uid_65534_in_its_jail() {
    let j = Jrun::new();
    let port = free_port();
    let cfg = j.inst.config(&format!(
        r#"jail "u" {{
  forward {{ http {{ host = {port}; jail = 8080; }} }}
  exec {{
    http {{
      cmd = "exec python3 -m http.server 8080";
      user = "nobody";
      healthcheck {{ test = "grep -q '^Uid:[[:space:]]*65534[[:space:]]' /proc/self/status"; interval = "300ms"; timeout = "2s"; retries = 2; }}
    }}
  }}
}}
"#
    ));
    j.inst.up(&cfg);
    let s = j.wait_service("u", "http", 10, |s| s["health"] == "healthy");
    assert_eq!(s["health"], "healthy", "{s}");
    let pid = s["pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert!(field("Groups:").is_empty(), "{status}");
    let ns = |p: &str| std::fs::read_link(p).unwrap();
    assert_ne!(
        ns(&format!("/proc/{pid}/ns/net")),
        ns("/proc/self/ns/net"),
        "the service runs in its jail's network namespace"
    );
    assert!(http_get(port, "/").starts_with("HTTP/1.0 200"));

    let pid_file = std::fs::read_to_string(j.home().join("run/supervisor.pid")).unwrap();
    let supervisor: i32 = pid_file.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the service outlived the supervisor"
    );
}
