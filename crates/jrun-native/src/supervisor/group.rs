//! A process the supervisor starts (a service, a health check, unbound or a Yggdrasil
//! node): the leader of its own process group, killed by the kernel if the supervisor dies
//! (`PR_SET_PDEATHSIG`), its output in a log that rotates. The group is signalled only
//! while its leader is unreaped, so its id cannot name someone else's group.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

use super::logfile::{self, RotatingLog};
use super::service_spec::RunAs;

/// Between SIGTERM to a group and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The first restart delay; it doubles per quick exit up to `MAX_BACKOFF`.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long before exiting restarts after `MIN_BACKOFF` again.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The one restart policy of the supervisor: the delay before restarting a process that
/// ran for `ran`, given its current `backoff` (which it updates for the next exit).
pub fn restart_delay(backoff: &mut Duration, ran: Duration) -> Duration {
    if ran > STABLE_AFTER {
        *backoff = MIN_BACKOFF;
    }
    let delay = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    delay
}

/// Stack of a log thread: it only copies bytes, so a small one keeps 20 idle services cheap.
const LOG_THREAD_STACK: usize = 64 * 1024;

/// A process group we started: its leader and the group id (the leader's pid).
pub struct Group {
    pub child: Child,
    pgid: Pid,
}

impl Group {
    /// Signals the group. Only called while the leader is unreaped, so `pgid` is still ours
    /// (a reaped leader's pid could already name someone else's group).
    pub fn signal(&self, sig: Signal) {
        let _ = killpg(self.pgid, sig);
    }

    /// When the leader has exited: kills what it left in its group, then reaps it.
    pub fn reap_if_exited(&mut self) -> Option<std::process::ExitStatus> {
        if !crate::procgroup::leader_exited(&self.child) {
            return None;
        }
        self.signal(Signal::SIGKILL);
        self.child.wait().ok()
    }

    /// Kills the whole group and reaps the leader.
    pub fn kill_and_reap(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A jail's namespaces and a user, resolved and opened by the supervisor before it forks,
/// applied by the child between fork and exec (see [`RunAs`]).
pub struct Identity {
    net: OwnedFd,
    mount: OwnedFd,
    uid: Uid,
    gid: Gid,
}

impl Identity {
    /// Looks the user up (a name, or a numeric uid) and opens the namespace files.
    pub fn resolve(run_as: &RunAs) -> Result<Identity, String> {
        let found = match run_as.user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(&run_as.user),
        };
        let user = found
            .map_err(|e| format!("cannot look up user {:?}: {e}", run_as.user))?
            .ok_or_else(|| format!("there is no user {:?} on this host", run_as.user))?;
        let open = |p: &Path| {
            std::fs::File::open(p)
                .map(OwnedFd::from)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))
        };
        Ok(Identity {
            net: open(&run_as.net)?,
            mount: open(&run_as.mount)?,
            uid: user.uid,
            gid: user.gid,
        })
    }
}

/// Starts `argv` as the leader of a new process group, with exactly `env`, killed by the
/// kernel if the supervisor dies; with an `identity`, inside its jail as its user.
pub fn spawn_group(
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdout: Stdio,
    stderr: Stdio,
    identity: Option<&Identity>,
) -> std::io::Result<Group> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty argv"))?;
    let parent = nix::unistd::getpid();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    // The namespace files stay open in the parent (`identity` outlives the spawn); the
    // child uses their numbers. They are close-on-exec, so the service never holds them.
    let drop_to = identity.map(|i| (i.net.as_raw_fd(), i.mount.as_raw_fd(), i.uid, i.gid));
    // SAFETY: between fork and exec this only calls setns, setgroups, setgid, setuid,
    // prctl and getppid, all async-signal-safe system calls, and allocates nothing (the
    // group list is empty).
    unsafe {
        cmd.pre_exec(move || {
            if let Some((net, mount, uid, gid)) = drop_to {
                let io = std::io::Error::from;
                nix::sched::setns(BorrowedFd::borrow_raw(net), CloneFlags::CLONE_NEWNET)
                    .map_err(io)?;
                // Entering the mount namespace also moves the root and working folder to
                // its root; `env --chdir` in argv then goes to the exec's `dir`.
                nix::sched::setns(BorrowedFd::borrow_raw(mount), CloneFlags::CLONE_NEWNS)
                    .map_err(io)?;
                // Groups first, then the gid, then the uid: after setuid none is allowed.
                nix::unistd::setgroups(&[]).map_err(io)?;
                nix::unistd::setgid(gid).map_err(io)?;
                nix::unistd::setuid(uid).map_err(io)?;
            }
            // After the credentials changed: a change of uid or gid clears the
            // parent-death signal, so it is set last.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The supervisor may have died before the line above: then nobody would kill us.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pgid = Pid::from_raw(child.id() as i32);
    Ok(Group { child, pgid })
}

/// [`spawn_group`] with stdout and stderr going to the rotating log at `log`. A log thread
/// that cannot start takes the group down with it (the process would block on a full pipe).
pub fn spawn_logged(
    argv: &[String],
    env: &BTreeMap<String, String>,
    log: &Path,
    max_bytes: u64,
    identity: Option<&Identity>,
) -> Result<Group, String> {
    let file = RotatingLog::open(log, max_bytes)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let pipe = |e: std::io::Error| format!("cannot make a pipe: {e}");
    let (reader, writer) = std::io::pipe().map_err(pipe)?;
    let err_writer = writer.try_clone().map_err(pipe)?;
    let mut group = spawn_group(
        argv,
        env,
        Stdio::from(writer),
        Stdio::from(err_writer),
        identity,
    )
    .map_err(|e| {
        let program = argv.first().map_or("(empty command)", String::as_str);
        format!("cannot start {program}: {e}")
    })?;
    let logging = std::thread::Builder::new()
        .name(format!("log {}", log.display()))
        .stack_size(LOG_THREAD_STACK)
        .spawn(move || logfile::pump(reader, file));
    if let Err(e) = logging {
        group.kill_and_reap();
        return Err(format!("cannot start its log thread: {e}"));
    }
    Ok(group)
}

/// SIGTERM to every group, then waits (in parallel) up to the grace period, then SIGKILL.
pub fn stop_groups(mut groups: Vec<Group>) {
    for g in &groups {
        g.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        groups.retain_mut(|g| g.reap_if_exited().is_none());
        if groups.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut g in groups {
        g.kill_and_reap();
    }
}
