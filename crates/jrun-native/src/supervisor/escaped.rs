//! Processes that escaped a service's process group inside its jail: a service that
//! daemonises (`setsid`, a double fork) leaves its real work outside the group the
//! supervisor kills. Without a cgroup per service (cgroup v2 is not required by jrun) they
//! are found through the jail's network namespace: a process in it whose process group is
//! not led by one of the supervisor's children, and whose session was started inside the
//! jail (or is gone), was started by a service and then detached. A `jrun cmd` shell is not
//! one: its session belongs to the user's terminal on the host.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The `--net=<path>` a jail's argv enters (see `jailns::jail_argv`).
pub fn netns_of(argv: &[String]) -> Option<&Path> {
    argv.iter()
        .find_map(|a| a.strip_prefix("--net="))
        .map(Path::new)
}

/// (ppid, pgid, sid) of `pid` from `/proc/<pid>/stat`; `None` when gone or a zombie.
fn ids(pid: i32) -> Option<(i32, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

fn in_netns(pid: i32, ino: u64) -> bool {
    std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ino)
}

/// The processes in the network namespace at `netns` that escaped a service's group.
pub fn escaped(netns: &Path) -> Vec<i32> {
    let Ok(ino) = std::fs::metadata(netns).map(|m| m.ino()) else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && in_netns(pid, ino))
        .filter(|&pid| {
            let Some((_, pgid, sid)) = ids(pid) else {
                return false;
            };
            let group_is_ours = pgid == me || ids(pgid).is_some_and(|(ppid, _, _)| ppid == me);
            let session_in_jail = sid != me && (ids(sid).is_none() || in_netns(sid, ino));
            !group_is_ours && session_in_jail
        })
        .collect()
}

/// SIGKILLs `pids`.
pub fn kill(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
