//! Process groups jrun starts (setup steps, services, helper daemons): a group is signalled
//! only while its leader is known not to be reaped yet, so its id cannot have been reused.

use std::process::Child;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Whether `child` has exited, without reaping it (`waitid(WNOWAIT)`): its pid, hence its
/// process group id, stays reserved until [`Child::wait`]/`try_wait` reaps it.
pub fn leader_exited(child: &Child) -> bool {
    let pid = Pid::from_raw(child.id() as i32);
    match waitid(
        Id::Pid(pid),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    ) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        // ECHILD: already reaped by someone else; treat as gone.
        Err(_) => true,
    }
}

/// Signals the group led by `child` (its pgid is its pid); call before reaping it.
pub fn signal_group(child: &Child, sig: Signal) {
    let _ = killpg(Pid::from_raw(child.id() as i32), sig);
}
