//! The instance's supervisor: a daemon (`jrun supervise`, started by `jrun start`) that owns
//! every long-lived child of the instance — unbound, Yggdrasil nodes and the jails'
//! services (from `run/services.json`) — plus the host's forward listeners. Its pid file is the instance's "running"
//! signal. Commands change `run/supervision.json` and ask it to `reload` over its socket;
//! SIGHUP reloads too, SIGTERM shuts it down.

mod children;
pub mod control;
mod escaped;
mod forward;
mod forward_udp;
mod group;
pub mod logfile;
pub mod service_spec;
mod services;
pub mod spec;

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

pub use children::ChildStatus;
use children::Children;
use control::{Failure, Request, Response};
use forward::Forward;
use service_spec::ServiceSet;
use services::Services;
pub use services::{ServiceState, ServiceStatus};
use spec::{ForwardSpec, Supervision};

use crate::names::Layout;

static TERMINATE: AtomicBool = AtomicBool::new(false);
static HANGUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: i32) {
    if sig == Signal::SIGHUP as i32 {
        HANGUP.store(true, Ordering::SeqCst);
    } else {
        TERMINATE.store(true, Ordering::SeqCst);
    }
}

struct Supervisor {
    layout: Layout,
    children: Children,
    services: Services,
    forwards: BTreeMap<ForwardSpec, Forward>,
}

impl Supervisor {
    /// Converges on the wanted files; `Err` when they cannot be read, else the items that
    /// could not be started (each keyed, so a caller can pick out its own).
    fn reload(&mut self) -> Result<Vec<Failure>, String> {
        let wanted = Supervision::read(&self.layout.supervision_file())?;
        let mut errors = self.children.converge(&wanted.children);
        let services = ServiceSet::read(&ServiceSet::path(&self.layout.run_dir()))?;
        errors.extend(self.services.converge(&services));
        self.forwards
            .retain(|spec, _| wanted.forwards.contains(spec));
        for spec in wanted.forwards {
            if self.forwards.contains_key(&spec) {
                continue;
            }
            match Forward::start(spec) {
                Ok(f) => {
                    self.forwards.insert(spec, f);
                }
                Err(e) => errors.push(Failure {
                    key: control::forward_key(&spec),
                    error: e.to_string(),
                }),
            }
        }
        Ok(errors)
    }

    fn shutdown(&mut self) {
        self.forwards.clear();
        self.services.stop_all();
        self.children.stop_all();
    }
}

/// The open-file limit the supervisor asks for (at most its hard limit).
const OPEN_FILES: u64 = 65536;

/// Raises the soft open-file limit to [`OPEN_FILES`] (or the hard limit, when lower): each
/// TCP connection through a forward holds two descriptors, and a forward takes up to 4096
/// (the common soft limit of 1024 would refuse them long before). The services inherit it.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = OPEN_FILES.min(hard);
    if soft < want {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
            tracing::warn!(error = %e, soft, want, "cannot raise the open-file limit");
        }
    }
}

/// Runs the supervisor until it is told to stop. Blocks; call it from the daemon process.
pub fn run(layout: &Layout) -> Result<(), String> {
    install_signal_handlers()?;
    raise_open_file_limit();
    let socket_path = layout.control_socket();
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .map_err(|e| format!("cannot listen on {}: {e}", socket_path.display()))?;
    // Owner only, whatever umask this process inherited: whoever can connect can stop
    // every service (`shutdown`).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set the mode of {}: {e}", socket_path.display()))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", socket_path.display()))?;
    let mut sup = Supervisor {
        layout: layout.clone(),
        children: Children::new(&layout.log_dir()),
        services: Services::default(),
        forwards: BTreeMap::new(),
    };
    if let Some(e) = Response::reloaded(sup.reload()).error {
        tracing::error!(error = %e, "initial reload incomplete");
    }
    // The pid file goes last: its presence means "ready".
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let pid_text = format!("{} {started}\n", std::process::id());
    crate::unbound::write_atomic(&layout.pid_file(), &pid_text)
        .map_err(|e| format!("cannot write {}: {e}", layout.pid_file().display()))?;
    tracing::info!(pid = std::process::id(), "supervisor ready");

    let mut last_tick = Instant::now();
    loop {
        if TERMINATE.load(Ordering::SeqCst) {
            break;
        }
        if HANGUP.swap(false, Ordering::SeqCst) {
            if let Some(e) = Response::reloaded(sup.reload()).error {
                tracing::error!(error = %e, "reload incomplete");
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let req = control::read_request(&stream);
                let resp = match req {
                    Ok(Request::Reload) => Response::reloaded(sup.reload()),
                    Ok(Request::Status) => Response {
                        ok: true,
                        children: sup.children.status(),
                        services: sup.services.status(),
                        forwards: sup.forwards.keys().copied().collect(),
                        ..Default::default()
                    },
                    Ok(Request::Revive(jails)) => Response {
                        ok: true,
                        services: sup.services.revive_failed(&jails),
                        ..Default::default()
                    },
                    Ok(Request::Shutdown) => {
                        sup.shutdown();
                        control::write_response(
                            &stream,
                            &Response {
                                ok: true,
                                ..Default::default()
                            },
                        );
                        break;
                    }
                    Err(e) => Response {
                        ok: false,
                        error: Some(e),
                        ..Default::default()
                    },
                };
                control::write_response(&stream, &resp);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Wait for the next request, but no longer than the next tick: every
                // command's round trip used to pay up to a fixed sleep here. A signal
                // interrupts the wait (poll is never restarted), so SIGTERM and SIGHUP
                // are seen at once too.
                let next_tick = TICK.saturating_sub(last_tick.elapsed());
                wait_readable(&listener, next_tick);
            }
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if last_tick.elapsed() >= TICK {
            sup.children.tick();
            sup.services.tick();
            last_tick = Instant::now();
        }
    }
    sup.shutdown();
    let _ = std::fs::remove_file(&socket_path);
    let _ = std::fs::remove_file(layout.pid_file());
    tracing::info!("supervisor stopped");
    Ok(())
}

/// How often children and services are checked (exits, restarts, health checks).
const TICK: Duration = Duration::from_millis(100);

/// Blocks until `listener` has a connection to accept or `timeout` passed (or a signal
/// came).
fn wait_readable(listener: &UnixListener, timeout: Duration) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    // At least 1 ms, so a tick that is due cannot turn this into a busy loop.
    let ms = timeout.as_millis().clamp(1, 100) as u16;
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

fn install_signal_handlers() -> Result<(), String> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(|e| format!("cannot handle {sig}: {e}"))?;
    }
    Ok(())
}
