//! Sweeping what an interrupted run left in a jail. A setup step's first process dies with
//! jrun (`PR_SET_PDEATHSIG`, see `setup.rs`), but what it forked does not; after a
//! `kill -9` of `jrun up` those processes keep running in the jail's network namespace,
//! reparented to init. When a jail is deployed again (before its setup steps run), they are
//! killed.
//!
//! The rule: a process in the jail's network namespace is a leftover when its first
//! ancestor outside the jail is init (pid 1, or 0 for a parent outside jrun's pid
//! namespace): nothing outside the jail started it or waits for it. Kept are:
//! - the supervisor's services, health checks and Yggdrasil node: their ancestry leaves the
//!   jail at the supervisor;
//! - a `jrun cmd`/`jrun shell` session or anything else a live process outside the jail
//!   runs there (its ancestry leaves the jail at that process).
//!
//! A daemon a service detached (`setsid` + exit, hence reparented to init) is a leftover
//! too; the supervisor already reports and kills those as escaped.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the sweep waits for the killed processes to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(2);

/// The ppid of `pid`; `None` when it is gone or a zombie.
fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    if f.next()? == "Z" {
        return None;
    }
    f.next()?.parse().ok()
}

pub(crate) fn in_netns(pid: i32, ino: u64) -> bool {
    std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ino)
}

/// Whether the first ancestor of `pid` outside the namespace `ino` is init.
fn orphaned(pid: i32, ino: u64) -> bool {
    let mut at = pid;
    // Bounded: a process tree is never this deep, and /proc may change under us.
    for _ in 0..64 {
        let Some(parent) = ppid(at) else {
            return false;
        };
        if parent <= 1 {
            return true;
        }
        if !in_netns(parent, ino) {
            return false;
        }
        at = parent;
    }
    false
}

/// The processes other than this one in the network namespace mounted at `netns`, with
/// that namespace's inode; nothing when it is gone.
pub(crate) fn others_in_netns(netns: &Path) -> (u64, Vec<i32>) {
    let Ok(ino) = std::fs::metadata(netns).map(|m| m.ino()) else {
        return (0, Vec::new());
    };
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return (ino, Vec::new());
    };
    let pids = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && in_netns(pid, ino))
        .collect();
    (ino, pids)
}

/// The live processes in the network namespace mounted at `netns` that nothing outside it
/// owns (the rule above).
pub fn leftovers(netns: &Path) -> Vec<i32> {
    let (ino, pids) = others_in_netns(netns);
    pids.into_iter().filter(|&pid| orphaned(pid, ino)).collect()
}

/// Kills the leftovers in the namespace mounted at `netns` and waits (briefly) until they
/// are gone; returns the pids killed.
pub fn sweep(netns: &Path) -> Vec<i32> {
    let pids = leftovers(netns);
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = Instant::now() + GONE_WITHIN;
    while pids.iter().any(|&p| ppid(p).is_some()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn an_orphan_is_a_leftover_a_child_of_a_live_process_is_not() {
        // A namespace inode no process has: every parent counts as "outside the jail".
        let elsewhere = u64::MAX;
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let out = Command::new("/bin/sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let orphan: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let kill = |pid: i32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        let reaped_by_init = ppid(orphan) == Some(1);
        let child_owned = orphaned(child.id() as i32, elsewhere);
        let orphan_left = orphaned(orphan, elsewhere);
        kill(orphan);
        let _ = child.kill();
        let _ = child.wait();
        assert!(!child_owned, "a live jrun's child is kept");
        if reaped_by_init {
            assert!(orphan_left, "an orphan is a leftover");
        } // else: a subreaper adopted it (not init): the rule keeps it, as documented.
        assert!(leftovers(Path::new("/nonexistent/netns")).is_empty());
    }
}
