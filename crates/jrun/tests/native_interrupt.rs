//! An interrupted `jrun up` leaves nothing running in a jail (review `native-faults.md`,
//! D5), end to end (root): Ctrl-C (SIGINT) during a setup step kills the step's processes
//! before jrun exits, and after a `kill -9` of `up` mid-step, the next `up` sweeps what the
//! dead step left in the jail.

mod local_env;
mod native_support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use native_support::Instance;

/// A step that ignores TERM and INT, leaves a child in the background and never ends; it
/// writes `started` next to itself once it runs.
const HANG: &str =
    "trap '' TERM INT\nsleep 100020 &\necho started > started\nwhile :; do sleep 1; done\n";

/// `jrun up` running in the background; killed (and reaped) on drop if still there.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The jail `hang` with the never-ending step, its folder and config under the home.
fn hang_config(inst: &Instance) -> std::path::PathBuf {
    let steps = inst.home.path().join("steps");
    std::fs::create_dir_all(&steps).unwrap();
    std::fs::write(steps.join("hang.sh"), HANG).unwrap();
    inst.config(
        "jail \"hang\" {\n  setup { hang { type = \"shell\"; file = \"steps/hang.sh\"; } }\n}\n",
    )
}

/// Starts `jrun up` and waits until the step runs.
fn up_until_step_runs(inst: &Instance, cfg: &Path) -> Running {
    let child = inst
        .command(&["up", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let started = inst.home.path().join("steps/started");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the setup step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

/// The live (not zombie) processes whose network namespace is `ns`'s.
fn pids_in(ns: &str) -> Vec<i32> {
    let Ok(ino) = std::fs::metadata(Path::new("/run/netns").join(ns)).map(|m| m.ino()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && std::fs::metadata(e.path().join("ns/net")).is_ok_and(|m| m.ino() == ino) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `within` for no process to be left in `ns`; returns what is left.
fn left_in(ns: &str, within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let left = pids_in(ns);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn interrupted_setup_step_is_killed() {
    let inst = Instance::new(false);
    let cfg = hang_config(&inst);
    inst.start();
    let ns = format!("jrun-{}-j-hang", inst.id());
    let mut up = up_until_step_runs(&inst, &cfg);
    assert!(!pids_in(&ns).is_empty(), "the step runs in the jail");

    kill(Pid::from_raw(up.0.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = up.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "jrun up did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let left = left_in(&ns, Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "the interrupted step still runs in the jail: {}",
        describe(&left)
    );
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn redeploy_sweeps_leftover_step_processes() {
    let inst = Instance::new(false);
    let cfg = hang_config(&inst);
    inst.start();
    let ns = format!("jrun-{}-j-hang", inst.id());
    let mut up = up_until_step_runs(&inst, &cfg);
    up.0.kill().unwrap();
    up.0.wait().unwrap();
    // What the step left in the background outlives a kill -9 of jrun.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pids_in(&ns).is_empty(), "the step left nothing behind");

    // The step fixed, a service beside it: the next up finishes the jail, kills the
    // leftovers and keeps what the supervisor runs.
    std::fs::write(inst.home.path().join("steps/hang.sh"), "exit 0\n").unwrap();
    let cfg = inst.config(
        "jail \"hang\" {\n  setup { hang { type = \"shell\"; file = \"steps/hang.sh\"; } }\n  exec { s { cmd = \"exec sleep 600\"; } }\n}\n",
    );
    inst.up(&cfg);
    let service = inst.status()["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "s")
        .and_then(|s| s["pid"].as_u64())
        .expect("the service runs") as i32;
    let deadline = Instant::now() + Duration::from_secs(3);
    let left = loop {
        // The service runs as nsenter → env → sh → sleep, all one process (exec).
        let left: Vec<i32> = pids_in(&ns).into_iter().filter(|&p| p != service).collect();
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        left.is_empty(),
        "the dead step's processes still run in the jail: {}",
        describe(&left)
    );
    assert!(pids_in(&ns).contains(&service), "the service was kept");
}
