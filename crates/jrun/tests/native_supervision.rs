//! Supervision edge cases, end to end (root): a setup step's background process neither
//! hangs `up` nor survives it; host unmounts reach a jail; `up` revives a failed service and
//! `--provision` restarts services after setup; a service that daemonises is failed and what
//! it detached is killed; `status` says when the supervisor does not answer; a port the
//! supervisor could not bind is busy for `up`.

mod local_env;
mod native_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use native_support::services::{folder, Jrun};
use native_support::{free_port, processes_mentioning};

#[test]
fn a_setup_step_that_backgrounds_a_process_ends_and_leaves_nothing_behind() {
    let j = Jrun::new();
    folder(
        j.home(),
        "steps",
        &[("bg.sh", "sleep 97531 &\necho left a sleep behind\n")],
    );
    let cfg = j.inst.config(
        r#"jail "bg" {
  setup { bg { type = "shell"; file = "steps/bg.sh"; } }
}
"#,
    );
    let mut up = j
        .inst
        .command(&["up", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = up.kill();
            let _ = up.wait();
            panic!("`jrun up` still waits on the step's background process");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    assert!(processes_mentioning("sleep 97531").is_empty());
}

/// A shared bind mount of `dir` on itself (this host may mount `/` private, and only a
/// shared mount propagates), undone on drop.
struct SharedMount(PathBuf);

impl SharedMount {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.to_str().unwrap();
        let guard = SharedMount(dir.to_path_buf());
        for args in [["--bind", d, d].as_slice(), &["--make-shared", d]] {
            assert!(std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap()
                .success());
        }
        guard
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l", self.0.to_str().unwrap()])
            .status();
    }
}

#[test]
fn a_host_unmount_reaches_a_jail_created_while_it_was_mounted() {
    let j = Jrun::new();
    let shared = SharedMount::new(&j.home().join("shared"));
    let inner = shared.0.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let i = inner.to_str().unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "jrun-e2e-tmpfs", i])
        .status()
        .unwrap()
        .success());
    let cfg = j.inst.config("jail \"m\" {}\n");
    j.inst.up(&cfg);
    let mountinfo = || j.inst.in_jail("m", &["cat", "/proc/self/mountinfo"]).1;
    assert!(mountinfo().contains(i), "the jail sees the host's mount");
    assert!(std::process::Command::new("umount")
        .arg(i)
        .status()
        .unwrap()
        .success());
    assert!(
        !mountinfo().contains(i),
        "the host's unmount reached the jail"
    );
}

#[test]
fn up_revives_a_failed_service_and_provision_restarts_services_after_setup() {
    let j = Jrun::new();
    let flag = j.home().join("ready");
    folder(j.home(), "steps", &[("noop.sh", "echo provisioned\n")]);
    let cfg = j.inst.config(&format!(
        r#"jail "rv" {{
  setup {{ noop {{ type = "shell"; file = "steps/noop.sh"; }} }}
  exec {{ svc {{ cmd = "test -e {} || exit 3; exec sleep 86421"; }} }}
}}
"#,
        flag.display()
    ));
    // `up` waits for the service, which fails: it says so, naming it.
    let out = j.inst.run(&["up", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rv/svc failed: exited"), "{err}");
    let failed = j.wait_service("rv", "svc", 60, |s| s["state"] == "failed");
    assert_eq!(failed["state"], "failed", "{failed}");

    // The cause is fixed; an `up` with the same config starts it again.
    std::fs::write(&flag, "").unwrap();
    let out = j.inst.up(&cfg);
    assert!(out.contains("rv/svc") && out.contains("restarted"), "{out}");
    let running = j.wait_service("rv", "svc", 30, |s| s["state"] == "running");
    assert_eq!(running["state"], "running", "{running}");
    let pid = running["pid"].clone();

    // --provision runs setup again, and the services restart after it.
    j.inst.ok(&["up", cfg.to_str().unwrap(), "--provision"]);
    let after = j.wait_service("rv", "svc", 30, |s| {
        s["state"] == "running" && s["pid"] != pid
    });
    assert_ne!(after["pid"], pid, "{after}");
}

#[test]
fn a_daemonising_service_is_failed_and_what_detached_goes_with_its_service() {
    let j = Jrun::new();
    let config = |second: &str| {
        j.inst.config(&format!(
            "jail \"dz\" {{\n  exec {{\n    keep {{ cmd = \"exec sleep 86430\"; }}\n    {second}\n  }}\n}}\n"
        ))
    };
    j.inst.up(&config(
        r#"detach { cmd = "setsid sleep 86431 & exec sleep 86432"; }"#,
    ));
    let detach = j.wait_service("dz", "detach", 30, |s| s["state"] == "running");
    assert_eq!(detach["state"], "running", "{detach}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_mentioning("sleep 86431").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning("sleep 86431").is_empty());
    // A user's `jrun cmd` in the jail is not a detached service process: it stays.
    let mut user = j
        .inst
        .command(&["cmd", "dz", "setsid", "sleep", "86434"])
        .spawn()
        .unwrap();
    while processes_mentioning("sleep 86434").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    // The exec goes; what it detached goes with it. A service that daemonises is failed
    // (not restarted in a loop) and what it left is killed. The other service stays.
    let out = j.inst.run(&[
        "up",
        config(r#"daemon { cmd = "setsid sleep 86433 & sleep 0.3"; }"#)
            .to_str()
            .unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dz/daemon failed") && err.contains("did it daemonise?"),
        "{err}"
    );
    assert!(processes_mentioning("sleep 86431").is_empty());
    assert!(processes_mentioning("sleep 86432").is_empty());
    let daemon = j.wait_service("dz", "daemon", 30, |s| s["state"] == "failed");
    let error = daemon["error"].as_str().unwrap_or_default();
    assert!(error.contains("did it daemonise?"), "{daemon}");
    assert!(processes_mentioning("sleep 86433").is_empty());
    assert!(!processes_mentioning("sleep 86430").is_empty());
    let still = !processes_mentioning("sleep 86434").is_empty();
    let _ = user.kill();
    let _ = user.wait();
    assert!(
        still,
        "a `jrun cmd` process was taken for a detached service"
    );
}

#[test]
fn status_says_when_the_supervisor_does_not_answer() {
    let j = Jrun::new();
    let cfg = j
        .inst
        .config("jail \"q\" { exec { s { cmd = \"exec sleep 86440\"; } } }\n");
    j.inst.up(&cfg);
    assert!(j.inst.status().get("supervisor_error").is_none());
    let socket = j.home().join("run/supervisor.sock");
    let moved = j.home().join("run/supervisor.sock.moved");
    std::fs::rename(&socket, &moved).unwrap();
    let status = j.inst.status();
    let text = j.inst.ok(&["status"]);
    std::fs::rename(&moved, &socket).unwrap();
    let error = status["supervisor_error"].as_str().unwrap_or_default();
    assert!(error.contains("supervisor socket"), "{status}");
    assert!(text.contains("supervisor: did not answer"), "{text}");
    assert!(!j.inst.ok(&["status"]).contains("did not answer"));
}

#[test]
fn a_port_the_supervisor_could_not_bind_is_busy_for_up() {
    let j = Jrun::new();
    // Someone else holds the port; the supervisor is asked for it (as after a forward that
    // failed to bind) and cannot take it.
    let port = free_port();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let spec_file = j.home().join("run/supervision.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();
    spec["forwards"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "proto": "tcp",
            "listen": format!("127.0.0.1:{port}"),
            "target": format!("127.0.0.1:{port}"),
        }));
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let pid: i32 = std::fs::read_to_string(j.home().join("run/supervisor.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();

    let cfg = j.inst.config(&format!(
        "jail \"p\" {{ forward {{ web {{ host = {port}; jail = 8080; }} }} }}\n"
    ));
    let out = j.inst.run(&["up", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("host port tcp/{port} is already in use")),
        "{err}"
    );
    assert!(j.inst.jails().is_empty(), "refused before anything changed");
}
