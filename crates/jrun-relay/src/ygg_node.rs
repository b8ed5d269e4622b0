//! The relay's own Yggdrasil node (`jrun relay --ygg-listen URI`): rendered from a
//! persistent key, started, restarted when it dies, stopped with the relay.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jrun_mesh::yggdrasil::{NodeConfig, RenderError, YggVersion};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A node that ran this long is considered healthy: its restart delay starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct YggNodeSpec {
    /// The `yggdrasil` binary.
    pub binary: PathBuf,
    /// Its config dialect.
    pub version: YggVersion,
    /// Where the rendered config is written (mode 0600: it may hold the key).
    pub config_path: PathBuf,
    /// The node.
    pub config: NodeConfig,
}

/// Why the node could not be started.
#[derive(Debug, thiserror::Error)]
pub enum YggNodeError {
    /// The config could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The config file could not be written.
    #[error("cannot write the Yggdrasil config {path}: {source}")]
    Write {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// A supervised node; dropping it without [`YggNode::stop`] kills the node.
pub struct YggNode {
    pid: watch::Receiver<Option<u32>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl YggNode {
    /// Writes the config and starts supervising the node.
    pub fn start(spec: YggNodeSpec) -> Result<YggNode, YggNodeError> {
        let text = spec.config.render(spec.version)?;
        write_private(&spec.config_path, text.as_bytes()).map_err(|source| {
            YggNodeError::Write {
                path: spec.config_path.clone(),
                source,
            }
        })?;
        let (pid_tx, pid) = watch::channel(None);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(spec, pid_tx, stop_rx));
        Ok(YggNode {
            pid,
            stop: Some(stop_tx),
            task,
        })
    }

    /// The pid of the running node, if one runs now.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    /// Waits until a node runs whose pid differs from `old` and returns it.
    pub async fn next_pid(&mut self, old: Option<u32>) -> Option<u32> {
        self.pid
            .wait_for(|p| p.is_some() && *p != old)
            .await
            .ok()
            .and_then(|p| *p)
    }

    /// Stops the node (SIGTERM, then SIGKILL after a grace period) and its supervision.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for YggNode {
    fn drop(&mut self) {
        // The child is spawned with kill_on_drop, so aborting the task kills it.
        self.task.abort();
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    // The config holds the private key (0.4 format): owner-only from the first byte.
    jrun_mesh::fsutil::write_atomic(path, bytes, 0o600)
}

fn spawn(spec: &YggNodeSpec) -> io::Result<Child> {
    let mut child = Command::new(&spec.binary)
        .arg("-useconffile")
        .arg(&spec.config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Yggdrasil's own log lines go to ours, so the relay has one log stream.
    for out in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                info!(target: "yggdrasil", "{line}");
            }
        });
    }
    Ok(child)
}

async fn supervise(
    spec: YggNodeSpec,
    pid: watch::Sender<Option<u32>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let mut child = match spawn(&spec) {
            Ok(c) => c,
            Err(e) => {
                warn!(binary = %spec.binary.display(), error = %e, "cannot start the Yggdrasil node");
                tokio::select! {
                    _ = &mut stop => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let _ = pid.send(child.id());
        info!(pid = child.id(), "Yggdrasil node started");
        tokio::select! {
            _ = &mut stop => {
                terminate(&mut child).await;
                let _ = pid.send(None);
                return;
            }
            status = child.wait() => {
                let _ = pid.send(None);
                warn!(?status, "Yggdrasil node exited; restarting in {backoff:?}");
            }
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn terminate(child: &mut Child) {
    if let Some(id) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(id), Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            info!("Yggdrasil node stopped");
            return;
        }
    }
    let _ = child.kill().await;
}
