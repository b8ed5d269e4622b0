//! Processes that escaped a service's process group inside its jail: a service that
//! daemonises (`setsid`, a double fork) leaves its real work outside the group the
//! supervisor kills. Without a cgroup per service (cgroup v2 is not required by jrun) they
//! are found through the jail's network namespace: a process in it whose process group is
//! not led by one of the supervisor's children, and whose first ancestor outside the jail is
//! the supervisor or init (an orphan), was started by a service and then detached. A
//! `jrun cmd` or setup step is not one: its ancestry leaves the jail at a jrun process.

use std::path::Path;

use crate::sweep::in_netns;

/// The environment variable naming the service (`<jail>/<exec>`) that started a process;
/// every service gets it, and what it starts inherits it.
pub const SERVICE_MARK: &str = "JRUN_SERVICE";

/// [`escaped`], but only the processes that service `key` started (by their
/// [`SERVICE_MARK`]); one whose environment cannot be read or carries no mark is left out.
pub fn escaped_from(netns: &Path, key: &str) -> Vec<i32> {
    let mark = format!("{SERVICE_MARK}={key}");
    escaped(netns)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
        })
        .collect()
}

/// The `--net=<path>` a jail's argv enters (see `jailns::jail_argv`).
pub fn netns_of(argv: &[String]) -> Option<&Path> {
    argv.iter()
        .find_map(|a| a.strip_prefix("--net="))
        .map(Path::new)
}

/// (ppid, pgid) of `pid` from `/proc/<pid>/stat`; `None` when gone or a zombie.
fn ids(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// The processes in the network namespace at `netns` that escaped a service's group.
pub fn escaped(netns: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let (ino, pids) = crate::sweep::others_in_netns(netns);
    pids.into_iter()
        .filter(|&pid| {
            let Some((_, pgid)) = ids(pid) else {
                return false;
            };
            let group_is_ours = pgid == me || ids(pgid).is_some_and(|(ppid, _)| ppid == me);
            !group_is_ours && leaves_jail_at_supervisor_or_init(pid, ino, me)
        })
        .collect()
}

/// Whether the first ancestor of `pid` outside the jail is the supervisor or init.
fn leaves_jail_at_supervisor_or_init(pid: i32, ino: u64, me: i32) -> bool {
    let mut at = pid;
    // Bounded: a process tree is never this deep, and /proc may change under us.
    for _ in 0..64 {
        let Some((ppid, _)) = ids(at) else {
            return false;
        };
        if ppid == me || ppid <= 1 {
            return true;
        }
        if !in_netns(ppid, ino) {
            return false;
        }
        at = ppid;
    }
    false
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
