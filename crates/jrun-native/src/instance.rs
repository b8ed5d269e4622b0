//! Starting and stopping one native instance: the VM namespace, its resolver and VM node,
//! and the supervisor daemon that owns them.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jrun_core::config::Proto;
use jrun_core::runtime::RuntimeError;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::link::Link;
use crate::names::Layout;
use crate::runtime::{other, NativeRuntime};
use crate::supervisor::control::{self, Request};
use crate::supervisor::spec::{ChildSpec, ForwardSpec, Supervision};
use crate::unbound::{self, UnboundFiles};
use crate::{link, nft, plumbing, ygg};

/// What `start` decided, kept in `run/instance.json` while the instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub link: Link,
    /// The host-side UDP relay unbound forwards to.
    pub dns_relay: SocketAddrV4,
    pub upstream: SocketAddrV4,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// Whether Yggdrasil nodes run (`JRUN_MESH_NETWORK`), and for which version.
    pub ygg_version: Option<String>,
    /// The Yggdrasil binary that version was asked of ([`ygg_binary_stamp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ygg_binary: Option<String>,
}

/// What tells one installed Yggdrasil binary from another (device, inode, size, change
/// time): a package upgrade replaces the file.
pub fn ygg_binary_stamp() -> Option<String> {
    file_stamp(Path::new(ygg::YGGDRASIL))
}

fn file_stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

impl InstanceInfo {
    /// The Yggdrasil version `start` found, while the binary it asked is still the one
    /// installed: asking again runs the binary and then dpkg (Debian's build does not say
    /// its version), most of a one-jail `up`'s mesh step.
    pub fn ygg_version_unchanged(&self) -> Option<jrun_mesh::yggdrasil::YggVersion> {
        self.ygg_version_if_stamp(ygg_binary_stamp())
    }

    fn ygg_version_if_stamp(
        &self,
        stamp: Option<String>,
    ) -> Option<jrun_mesh::yggdrasil::YggVersion> {
        use jrun_mesh::yggdrasil::YggVersion;
        let recorded = self.ygg_version.as_deref()?;
        if self.ygg_binary.is_none() || self.ygg_binary != stamp {
            return None;
        }
        [YggVersion::V0_4, YggVersion::V0_5]
            .into_iter()
            .find(|v| format!("{v:?}") == recorded)
    }
}

impl InstanceInfo {
    pub fn read(layout: &Layout) -> Result<Self, RuntimeError> {
        let path = layout.instance_file();
        let bytes = std::fs::read(&path).map_err(|source| RuntimeError::Io {
            what: "cannot read the running instance's description".into(),
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| other(format!("{} is not valid", path.display()), e))
    }
}

/// The name of the unbound child.
pub const UNBOUND_CHILD: &str = "unbound";

/// The supervisor's pid, if its pid file names a live supervisor of this instance.
pub fn supervisor_pid(layout: &Layout) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(layout.pid_file()).ok()?;
    let mut parts = text.split_whitespace();
    let pid: i32 = parts.next()?.parse().ok()?;
    let since: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    is_supervisor_of(&cmdline, &layout.home).then_some((pid, since))
}

/// Whether a `/proc/<pid>/cmdline` is the supervisor of the instance in `home`: it runs
/// `supervise --home <home>` (see [`SUPERVISOR_HOME_FLAG`]). A stale pid file whose pid
/// was reused, even by another instance's supervisor, does not match.
pub fn is_supervisor_of(cmdline: &[u8], home: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&&b"supervise"[..])
        && args
            .windows(2)
            .any(|w| w[0] == SUPERVISOR_HOME_FLAG.as_bytes() && w[1] == home.as_os_str().as_bytes())
}

/// The flag naming the instance's home in the supervisor's argv.
pub const SUPERVISOR_HOME_FLAG: &str = "--home";

/// Where the home that owns an instance id is recorded while its instance exists: the id
/// is a hash of the home, and two homes can share one.
const OWNERS_DIR: &str = "/run/jrun/instances";

fn owner_file(layout: &Layout) -> std::path::PathBuf {
    Path::new(OWNERS_DIR).join(layout.id.as_str())
}

/// The other home whose running instance holds this id, if any. A record whose instance
/// is gone (or that names this home) is no obstacle.
fn id_taken_by(layout: &Layout) -> Option<std::path::PathBuf> {
    let owner = std::path::PathBuf::from(std::fs::read_to_string(owner_file(layout)).ok()?);
    (owner != layout.home && supervisor_pid(&Layout::new(&owner)).is_some()).then_some(owner)
}

fn refuse_taken_id(layout: &Layout) -> Result<(), RuntimeError> {
    match id_taken_by(layout) {
        Some(owner) => Err(other(
            "cannot use this home's instance",
            format!(
                "its id {} (a hash of the home's path) is also that of the running instance of {}; the two would share namespaces. Stop that one, or use another JRUN_HOME (any other path gives another id)",
                layout.id.as_str(),
                owner.display()
            ),
        )),
        None => Ok(()),
    }
}

pub fn start(rt: &NativeRuntime) -> Result<(), RuntimeError> {
    let layout = &rt.layout;
    let runner = rt.runner.as_ref();
    check_home(&layout.home)?;
    // Another home whose path hashes to the same id must not lose its instance to ours.
    refuse_taken_id(layout)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        let record = owner_file(layout);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(OWNERS_DIR)
            .and_then(|()| {
                jrun_core::fs::write_atomic(
                    &record,
                    layout.home.as_os_str().as_encoded_bytes(),
                    0o600,
                )
            })
            .map_err(|source| RuntimeError::Io {
                what: "cannot record which home owns the instance".into(),
                path: record,
                source,
            })?;
    }
    // Leftovers of an instance that died without `stop` would collide with the new one.
    let _ = plumbing::teardown_instance(runner, layout);
    let _ = crate::jailns::teardown(runner, layout);
    let _ = std::fs::remove_dir_all(layout.run_dir());
    for dir in [
        layout.run_dir(),
        layout.log_dir(),
        layout.unbound_dir(),
        layout.ygg_dir(),
    ] {
        // 0700 whatever the caller's umask: logs hold services' output, run/ the control
        // socket and the specs the supervisor runs.
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|source| RuntimeError::Io {
                what: "cannot create the instance's folders".into(),
                path: dir.clone(),
                source,
            })?;
    }
    // Instances starting at the same moment must not pick the same link subnet: the
    // choice and the veth creation happen under a host-wide lock.
    let host_lock = lock_host()?;
    let slot = u8::from_str_radix(&layout.id.as_str()[..2], 16).unwrap_or(0);
    let link = link::choose(runner, slot).map_err(|e| other("cannot pick the host link", e))?;
    let result = start_inner(rt, link, host_lock);
    if result.is_err() {
        stop(rt);
    }
    result
}

fn start_inner(rt: &NativeRuntime, link: Link, host_lock: Flock<File>) -> Result<(), RuntimeError> {
    let layout = &rt.layout;
    let runner = rt.runner.as_ref();
    plumbing::create_vm(runner, layout, link)
        .map_err(|e| other("cannot create the VM namespace", e))?;
    drop(host_lock);
    let ruleset = nft::render_vm(link.host, link.vm, &[]);
    // Through `vmfw` (run/ was emptied above, so it loads) to record what it loaded: the
    // first `up` then does not load the same ruleset again.
    crate::vmfw::load(runner, layout, &ruleset)?;

    let upstream = match rt.options.dns_upstream {
        Some(u) => u,
        None => host_resolver(Path::new("/etc/resolv.conf"))?,
    };
    let dns_relay = dns_relay_address(link.host)?;
    let files = UnboundFiles::new(layout.unbound_dir());
    write(&files.conf(), &unbound::render_conf(&files, dns_relay))?;
    write(
        &files.records(),
        &unbound::render_records(&Default::default()),
    )?;
    files
        .check(runner)
        .map_err(|e| other("the resolver's config does not pass unbound-checkconf", e))?;

    let mut children = vec![ChildSpec {
        name: UNBOUND_CHILD.into(),
        argv: [
            vec![
                "ip".to_string(),
                "netns".into(),
                "exec".into(),
                layout.vm_ns(),
            ],
            files.command(),
        ]
        .concat(),
    }];
    let (mut ygg_version, mut ygg_binary) = (None, None);
    if rt.options.mesh {
        // Before asking: a binary replaced in between must not pass for the one asked.
        ygg_binary = ygg_binary_stamp();
        let version = ygg::detect_version().map_err(|e| other("cannot run Yggdrasil", e))?;
        let node = ygg::vm_node(layout, version, rt.options.relay_peer.as_deref(), link.host)
            .map_err(|e| other("cannot configure the VM's Yggdrasil node", e))?;
        children.push(node.child);
        ygg_version = Some(format!("{version:?}"));
    }
    let supervision = Supervision {
        children,
        forwards: vec![ForwardSpec {
            proto: Proto::Udp,
            listen: dns_relay,
            target: upstream,
            only_from: Some(link.vm),
        }],
    };
    supervision
        .write(&layout.supervision_file())
        .map_err(|source| RuntimeError::Io {
            what: "cannot write the supervisor's spec".into(),
            path: layout.supervision_file(),
            source,
        })?;
    let info = InstanceInfo {
        id: layout.id.as_str().into(),
        link,
        dns_relay,
        upstream,
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ygg_version,
        ygg_binary,
    };
    write(
        &layout.instance_file(),
        &serde_json::to_string_pretty(&info).expect("plain data serialises"),
    )?;
    spawn_supervisor(rt)?;
    wait_for_resolver(rt, &files)
}

/// An exclusive lock on the host's lock folder (`/run/lock`, else `/run`), held while an
/// instance picks and creates its link. (Not `/run/netns`: `ip netns add` locks that one.)
fn lock_host() -> Result<Flock<File>, RuntimeError> {
    let dir = ["/run/lock", "/run"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .ok_or_else(|| other("cannot lock the host", "neither /run/lock nor /run exists"))?;
    let file = File::open(dir).map_err(|source| RuntimeError::Io {
        what: "cannot open".into(),
        path: dir.into(),
        source,
    })?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| other(format!("cannot lock {}", dir.display()), e))
}

/// Starts `jrun supervise` in its own session, detached from this terminal.
fn spawn_supervisor(rt: &NativeRuntime) -> Result<(), RuntimeError> {
    let layout = &rt.layout;
    let log_path = layout.log_dir().join("supervisor.log");
    let log = crate::supervisor::logfile::open_private_append(&log_path).map_err(|source| {
        RuntimeError::Io {
            what: "cannot open the supervisor's log".into(),
            path: log_path.clone(),
            source,
        }
    })?;
    let err_log = log.try_clone().map_err(|source| RuntimeError::Io {
        what: "cannot open the supervisor's log".into(),
        path: log_path.clone(),
        source,
    })?;
    let (program, args) = rt
        .options
        .supervisor_argv
        .split_first()
        .ok_or_else(|| other("cannot start the supervisor", "no command given"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(SUPERVISOR_HOME_FLAG)
        .arg(&layout.home)
        .env("JRUN_HOME", &layout.home)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| other(format!("cannot start the supervisor ({program})"), e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if supervisor_pid(layout).is_some() {
            // The daemon lives on in its own session; nothing waits for it here.
            std::mem::drop(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(other(
                "the supervisor exited at start",
                format!("{status}; see {}", log_path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    Err(other(
        "the supervisor did not become ready within 10s",
        format!("see {}", log_path.display()),
    ))
}

/// Waits until unbound answers its control socket, so the first `up` can reload it.
fn wait_for_resolver(rt: &NativeRuntime, files: &UnboundFiles) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = [
        "unbound-control".to_string(),
        "-c".into(),
        files.conf().display().to_string(),
        "status".into(),
    ];
    loop {
        match rt.runner.run(&jrun_core::exec::Cmd::new(status.clone())) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(other(
                    "the resolver (unbound) did not come up within 10s",
                    format!(
                        "{e}; see {}",
                        rt.layout.log_dir().join("unbound.log").display()
                    ),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Stops the supervisor (and with it every child), then removes everything the instance
/// created on the host. Best effort; safe to repeat.
pub fn stop(rt: &NativeRuntime) -> Vec<String> {
    let layout = &rt.layout;
    let mut errors = Vec::new();
    // The namespaces by this id are another home's running instance: not ours to remove.
    if let Err(e) = refuse_taken_id(layout) {
        errors.push(e.to_string());
        return errors;
    }
    if let Some((pid, _)) = supervisor_pid(layout) {
        let _ = control::request(&layout.control_socket(), &Request::Shutdown);
        // Checked again before the kill: after 10 s the pid may belong to someone else.
        let ours = || {
            is_alive(pid)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| is_supervisor_of(&c, &layout.home))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && ours() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if ours() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    // The jails' mount namespaces (their services died with the supervisor).
    errors.extend(crate::jailns::teardown(rt.runner.as_ref(), layout));
    if let Err(e) = plumbing::teardown_instance(rt.runner.as_ref(), layout) {
        errors.push(e);
    }
    if let Err(e) = std::fs::remove_dir_all(layout.run_dir()) {
        if e.kind() != std::io::ErrorKind::NotFound {
            errors.push(format!("cannot remove {}: {e}", layout.run_dir().display()));
        }
    }
    if std::fs::read_to_string(owner_file(layout)).is_ok_and(|o| Path::new(&o) == layout.home) {
        let _ = std::fs::remove_file(owner_file(layout));
    }
    errors
}

/// Alive and not a zombie.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Paths under `JRUN_HOME` are written into unbound's and Yggdrasil's config files (quoted
/// strings), so the folder must be plain: UTF-8, no quotes, backslashes or control characters.
fn check_home(home: &Path) -> Result<(), RuntimeError> {
    match home.to_str() {
        Some(s) if !s.chars().any(|c| c.is_control() || c == '"' || c == '\\') => Ok(()),
        _ => Err(other(
            format!("JRUN_HOME={}", home.display()),
            "the native runtime needs a folder name without quotes, backslashes or control characters",
        )),
    }
}

/// The first IPv4 nameserver of the host's resolv.conf.
pub fn host_resolver(path: &Path) -> Result<SocketAddrV4, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
        what: "cannot read the host's resolver for the upstream (set JRUN_DNS_UPSTREAM)".into(),
        path: path.into(),
        source,
    })?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ns| ns.trim().parse::<Ipv4Addr>().ok())
        .map(|ip| SocketAddrV4::new(ip, 53))
        .next()
        .ok_or_else(|| {
            other(
                "no IPv4 nameserver in /etc/resolv.conf to forward to",
                "set JRUN_DNS_UPSTREAM=<ip>[:port]",
            )
        })
}

/// Port 53 on the host's side of the link when it is free, else any free port there.
fn dns_relay_address(host: Ipv4Addr) -> Result<SocketAddrV4, RuntimeError> {
    for port in [53, 0] {
        if let Ok(s) = UdpSocket::bind(SocketAddrV4::new(host, port)) {
            if let Ok(std::net::SocketAddr::V4(a)) = s.local_addr() {
                return Ok(a);
            }
        }
    }
    Err(other(
        "cannot bind the resolver's upstream relay",
        format!("no free UDP port on {host}"),
    ))
}

fn write(path: &Path, text: &str) -> Result<(), RuntimeError> {
    unbound::write_atomic(path, text).map_err(|source| RuntimeError::Io {
        what: "cannot write".into(),
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_yggdrasil_version_holds_only_for_the_binary_it_was_asked_of() {
        use jrun_mesh::yggdrasil::YggVersion;
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("yggdrasil");
        std::fs::write(&binary, "old").unwrap();
        let info = |version: Option<YggVersion>, stamp: Option<String>| InstanceInfo {
            id: "abc123def456".into(),
            link: Link {
                host: Ipv4Addr::new(10, 200, 90, 1),
                vm: Ipv4Addr::new(10, 200, 90, 2),
            },
            dns_relay: "10.200.90.1:5353".parse().unwrap(),
            upstream: "127.0.0.1:53".parse().unwrap(),
            started_at: 0,
            ygg_version: version.map(|v| format!("{v:?}")),
            ygg_binary: stamp,
        };
        let asked = file_stamp(&binary);
        assert!(asked.is_some());
        for v in [YggVersion::V0_4, YggVersion::V0_5] {
            assert_eq!(
                info(Some(v), asked.clone()).ygg_version_if_stamp(file_stamp(&binary)),
                Some(v)
            );
        }
        // No mesh, or an instance.json from before the stamp: ask the binary.
        assert_eq!(
            info(None, asked.clone()).ygg_version_if_stamp(asked.clone()),
            None
        );
        let old = info(Some(YggVersion::V0_4), None);
        assert_eq!(old.ygg_version_if_stamp(asked.clone()), None);
        // The binary replaced (an upgrade writes a new file), or gone.
        std::fs::remove_file(&binary).unwrap();
        std::fs::write(&binary, "newer").unwrap();
        let recorded = info(Some(YggVersion::V0_4), asked);
        assert_eq!(recorded.ygg_version_if_stamp(file_stamp(&binary)), None);
        assert_eq!(recorded.ygg_version_if_stamp(None), None);
        // The field is optional in the file, both ways.
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("ygg_binary"), "{text}");
        assert_eq!(serde_json::from_str::<InstanceInfo>(&text).unwrap(), old);
    }

    #[test]
    fn home_must_be_plain() {
        assert!(check_home(Path::new("/root/.jrun")).is_ok());
        assert!(check_home(Path::new("/tmp/a\"b")).is_err());
        assert!(check_home(Path::new("/tmp/a\nb")).is_err());
    }

    #[test]
    fn only_this_instances_supervisor_matches() {
        let home = Path::new("/root/.jrun");
        let argv = |args: &[&str]| args.join("\0").into_bytes();
        assert!(is_supervisor_of(
            &argv(&["/usr/bin/jrun", "supervise", "--home", "/root/.jrun", ""]),
            home
        ));
        // Another instance's supervisor, an old-style one, and an unrelated process.
        for other in [
            argv(&["/usr/bin/jrun", "supervise", "--home", "/tmp/other", ""]),
            argv(&["/usr/bin/jrun", "supervise", "--home", "/root/.jrun/x", ""]),
            argv(&["/usr/bin/jrun", "supervise", ""]),
            argv(&["/usr/bin/vim", "supervise", "/root/.jrun", ""]),
            argv(&["/usr/bin/grep", "--home", "/root/.jrun", ""]),
        ] {
            assert!(!is_supervisor_of(&other, home), "{other:?}");
        }
    }

    #[test]
    fn upstream_is_the_first_ipv4_nameserver() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(
            &p,
            "# x\nnameserver ::1\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n",
        )
        .unwrap();
        assert_eq!(host_resolver(&p).unwrap(), "10.0.0.53:53".parse().unwrap());
        std::fs::write(&p, "search x\n").unwrap();
        assert!(host_resolver(&p).is_err());
    }
}
