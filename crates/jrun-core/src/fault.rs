//! Test-only fault injection, one mechanism for every crash point: with
//! `JRUN_FAULT=after:<point>` a debug build kills itself with SIGKILL right after that point
//! — exactly what `kill -9` does there. Release builds ignore it.

/// Dies here when `JRUN_FAULT` names `point` (debug builds only).
pub fn after(point: &str) {
    if cfg!(debug_assertions)
        && std::env::var("JRUN_FAULT")
            .ok()
            .as_deref()
            .and_then(|s| s.strip_prefix("after:"))
            == Some(point)
    {
        eprintln!("JRUN_FAULT: killing this process after step {point}");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}
