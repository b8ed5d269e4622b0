//! [`NativeRuntime`]: the native implementation of [`Runtime`].

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use jrun_core::config::{JailName, Proto};
use jrun_core::exec::Runner;
use jrun_core::net::{DnsRecords, JailFirewall, Redirect};
use jrun_core::runtime::{
    ensure_host_ports_free, InstanceStatus, JailNetwork, JailObserved, Runtime, RuntimeError,
    StartOutcome, Step,
};
use jrun_core::settings::RuntimeKind;

use crate::instance::{self, InstanceInfo};
use crate::names::Layout;
use crate::supervisor::control::{self, Request, Response};
use crate::supervisor::spec::{ChildSpec, ForwardSpec, Supervision};
use crate::unbound::{self, UnboundFiles};
use crate::{deploy, nft, plumbing, probe, ygg};

/// How the native runtime is set up; the binary fills it from `Settings`.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Run Yggdrasil nodes (`JRUN_MESH_NETWORK`).
    pub mesh: bool,
    /// The relay's Yggdrasil peer URI for the VM node (`JRUN_RELAY_PEER`).
    pub relay_peer: Option<String>,
    /// Where unbound forwards names outside `jrun.` (`JRUN_DNS_UPSTREAM`); default: the
    /// host's first IPv4 nameserver.
    pub dns_upstream: Option<SocketAddrV4>,
    /// The command that runs the supervisor (`[<jrun>, "supervise"]`).
    pub supervisor_argv: Vec<String>,
}

/// Jails as network namespaces on this machine. Needs root.
pub struct NativeRuntime {
    pub(crate) layout: Layout,
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) options: NativeOptions,
    /// Nodes of jails deployed in this run, not started yet (see
    /// [`NativeRuntime::start_mesh_nodes`]).
    pub(crate) pending_nodes: std::sync::Mutex<Vec<(JailName, ChildSpec)>>,
    /// Held while the supervisor's spec files (services, children) are read, changed,
    /// written and reloaded: jails deploy side by side, and each change is a
    /// read-modify-write of a file they share.
    pub(crate) spec_lock: std::sync::Mutex<()>,
}

pub(crate) fn other(what: impl Into<String>, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other {
        what: what.into(),
        message: e.to_string(),
    }
}

impl NativeRuntime {
    pub fn new(home: &std::path::Path, runner: Arc<dyn Runner>, options: NativeOptions) -> Self {
        NativeRuntime {
            layout: Layout::new(home),
            runner,
            options,
            pending_nodes: std::sync::Mutex::default(),
            spec_lock: std::sync::Mutex::default(),
        }
    }

    /// Those of `jails` whose firewall table is missing from the kernel (deleted behind
    /// jrun's back: a jail without it is open to every mesh node). Asked over netlink, one
    /// thread per jail: this runs on every `up`. A jail whose answer cannot be had counts
    /// as missing its table (it is deployed again).
    pub fn jails_without_firewall(&self, jails: &[JailName]) -> BTreeSet<JailName> {
        let checks: Vec<_> = jails
            .iter()
            .map(|j| {
                let ns = self.layout.jail_ns(j);
                (
                    j,
                    std::thread::spawn(move || {
                        probe::in_netns(&ns, || crate::nl::nft_inet_table_exists(nft::TABLE))
                    }),
                )
            })
            .collect();
        checks
            .into_iter()
            .filter_map(|(j, check)| (!matches!(check.join(), Ok(Ok(true)))).then(|| j.clone()))
            .collect()
    }

    /// See [`NativeRuntime::spec_lock`].
    pub(crate) fn lock_specs(&self) -> std::sync::MutexGuard<'_, ()> {
        self.spec_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Everything but reading needs root: namespaces, nftables, `/etc/netns`.
    pub fn require_root(&self, what: &str) -> Result<(), RuntimeError> {
        if nix::unistd::geteuid().is_root() {
            Ok(())
        } else {
            Err(RuntimeError::NeedsRoot { what: what.into() })
        }
    }

    pub(crate) fn require_running(&self) -> Result<InstanceInfo, RuntimeError> {
        if instance::supervisor_pid(&self.layout).is_none() {
            return Err(RuntimeError::NotRunning);
        }
        InstanceInfo::read(&self.layout)
    }

    pub(crate) fn read_supervision(&self) -> Result<Supervision, RuntimeError> {
        Supervision::read(&self.layout.supervision_file()).map_err(|e| other("supervisor spec", e))
    }

    /// Writes the spec and has the supervisor converge to it. `Err` when the supervisor
    /// cannot be asked or the reload failed as a whole; otherwise its answer, whose
    /// per-item failures each caller filters for its own ([`Response::items_error`]).
    pub(crate) fn write_supervision(&self, s: &Supervision) -> Result<Response, RuntimeError> {
        // An unchanged spec is not written again (a durable write costs more than the rest
        // of a no-op `up`); the supervisor is asked to converge all the same.
        let path = self.layout.supervision_file();
        if Supervision::read(&path).ok().as_ref() != Some(s) {
            s.write(&path).map_err(|source| RuntimeError::Io {
                what: "cannot write the supervisor's spec".into(),
                path: path.clone(),
                source,
            })?;
        }
        let resp = control::request(&self.layout.control_socket(), &Request::Reload)
            .map_err(|e| other("cannot reach the supervisor", e))?;
        if !resp.ok && resp.failures.is_empty() {
            return Err(other(
                "the supervisor could not apply the change",
                resp.error.unwrap_or_default(),
            ));
        }
        Ok(resp)
    }

    /// The forwards the supervisor holds bound now (none when it does not answer).
    fn bound_forwards(&self) -> Vec<ForwardSpec> {
        control::request(&self.layout.control_socket(), &Request::Status)
            .map(|r| r.forwards)
            .unwrap_or_default()
    }

    /// This machine as the running instance's VM namespace reaches it (the host's side of
    /// the link): where a relay on the same machine is dialled.
    pub fn host_address(&self) -> Option<Ipv4Addr> {
        InstanceInfo::read(&self.layout).ok().map(|i| i.link.host)
    }

    /// The supervisor's children (name, pid, restarts), for status; `Err` says why it did
    /// not answer.
    pub fn children(&self) -> Result<Vec<crate::supervisor::ChildStatus>, String> {
        control::request(&self.layout.control_socket(), &Request::Status).map(|r| r.children)
    }

    /// Has the supervisor stop the services and the Yggdrasil nodes of `jails`: both specs
    /// are written, then one reload for all (a node dropped from the spec is killed at once,
    /// see `Children::converge`). The errors of each jail.
    fn stop_jail_processes(&self, jails: &[JailName]) -> Vec<Vec<String>> {
        let _spec = self.lock_specs();
        let mut errors: Vec<Vec<String>> = vec![Vec::new(); jails.len()];
        let services = self.drop_services(jails);
        let nodes = self.read_supervision().and_then(|mut s| {
            let before = s.children.len();
            for jail in jails {
                s.remove_child(&ygg::jail_child_name(jail));
            }
            if s.children.len() == before {
                return Ok(false);
            }
            let path = self.layout.supervision_file();
            s.write(&path).map_err(|source| RuntimeError::Io {
                what: "cannot write the supervisor's spec".into(),
                path,
                source,
            })?;
            Ok(true)
        });
        let with_services = match &services {
            Ok(with) => with.clone(),
            Err(e) => {
                errors.iter_mut().for_each(|errs| errs.push(e.clone()));
                vec![false; jails.len()]
            }
        };
        if let Err(e) = &nodes {
            errors.iter_mut().for_each(|errs| errs.push(e.to_string()));
        }
        let nodes_dropped = matches!(nodes, Ok(true));
        if !nodes_dropped && !with_services.contains(&true) {
            return errors;
        }
        // Whose the reload's trouble is: a jail's own services', and the whole reload's
        // (it could not be asked, or failed as a whole) for every jail it concerned.
        let concerned = |i: usize| nodes_dropped || with_services[i];
        match control::request(&self.layout.control_socket(), &Request::Reload) {
            Err(e) => {
                for (i, errs) in errors.iter_mut().enumerate() {
                    if concerned(i) {
                        errs.push(format!("cannot reach the supervisor: {e}"));
                    }
                }
            }
            Ok(resp) => {
                for (i, (jail, errs)) in jails.iter().zip(&mut errors).enumerate() {
                    if !resp.ok && resp.failures.is_empty() && concerned(i) {
                        errs.push(format!(
                            "the supervisor could not apply the change: {}",
                            resp.error.clone().unwrap_or_default()
                        ));
                    } else if with_services[i] {
                        if let Some(e) = resp.jail_error(jail.as_str()) {
                            errs.push(format!(
                                "jail `{jail}`: the supervisor could not start every service: {e}"
                            ));
                        }
                    }
                }
            }
        }
        errors
    }
}

impl Runtime for NativeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Native
    }

    fn start(&self) -> Result<StartOutcome, RuntimeError> {
        self.require_root("jrun start")?;
        if instance::supervisor_pid(&self.layout).is_some() {
            return Ok(StartOutcome::AlreadyRunning);
        }
        instance::start(self)?;
        Ok(StartOutcome::Started)
    }

    fn stop(&self) -> Result<(), RuntimeError> {
        self.require_root("jrun stop")?;
        let errors = instance::stop(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(other("stop left something behind", errors.join("; ")))
        }
    }

    fn instance(&self) -> Result<InstanceStatus, RuntimeError> {
        Ok(match instance::supervisor_pid(&self.layout) {
            Some((_, since)) => InstanceStatus {
                running: true,
                since: Some(since),
                detail: Some(self.layout.vm_ns()),
            },
            None => InstanceStatus {
                running: false,
                since: None,
                detail: None,
            },
        })
    }

    fn probe_in_use(&self) -> Result<BTreeSet<Ipv4Addr>, RuntimeError> {
        self.require_running()?;
        probe::addresses_in_use(self.runner.as_ref(), &self.layout.vm_ns())
            .map_err(|e| other("cannot probe the bridge", e))
    }

    fn check_host_ports(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        // Only a port our supervisor really holds is ours; one it is merely asked to hold
        // (and could not bind) is as busy as any other.
        let held: BTreeSet<(Proto, u16)> = self
            .bound_forwards()
            .iter()
            .filter(|f| f.listen.ip().is_loopback())
            .map(|f| (f.proto, f.listen.port()))
            .collect();
        ensure_host_ports_free(redirects, &held)
    }

    fn deploy_jail(
        &self,
        jail: &JailNetwork,
        progress: &mut dyn FnMut(&JailName, Step),
    ) -> Result<(), RuntimeError> {
        self.require_root("jrun up")?;
        let info = self.require_running()?;
        deploy::deploy_jail(self, &info, jail, progress)
    }

    fn remove_jail(&self, jail: &JailName) -> Result<(), RuntimeError> {
        self.remove_jails(std::slice::from_ref(jail))
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Every jail is tried, together: their services and Yggdrasil nodes stopped in one
    /// supervisor reload, their namespaces deleted without a process.
    fn remove_jails(&self, jails: &[JailName]) -> Vec<Result<(), RuntimeError>> {
        if self.require_root("jrun down").is_err() {
            return jails
                .iter()
                .map(|_| self.require_root("jrun down"))
                .collect();
        }
        // A node not started yet never will be.
        self.pending_nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(jail, _)| !jails.contains(jail));
        let namespaces: Vec<String> = jails.iter().map(|j| self.layout.jail_ns(j)).collect();
        // Links down before the Yggdrasil nodes are killed: each node's exit unregisters its
        // tun device under the kernel's rtnl lock, which every link change waits for too;
        // that teardown then overlaps with the steps that need no rtnl (unmounts, the
        // state's save, the resolver's reload).
        plumbing::take_jail_links_down(&self.layout, &namespaces);
        // Processes next: none may outlive its jail's namespaces. Each part is best
        // effort so that one failure (a services reload) never keeps a namespace alive.
        let mut errors: Vec<Vec<String>> = if instance::supervisor_pid(&self.layout).is_some() {
            self.stop_jail_processes(jails)
        } else {
            vec![Vec::new(); jails.len()]
        };
        for jail in jails {
            let _ = std::fs::remove_file(self.layout.ygg_dir().join(format!("j-{jail}.conf")));
        }
        // The mount namespaces and the network namespaces side by side: each removal is
        // mostly a wait on the kernel.
        let (mounts, networks) = std::thread::scope(|scope| {
            let networks = scope.spawn(|| plumbing::delete_downed_namespaces(&namespaces));
            let mounts = self.remove_mount_namespaces(jails);
            let networks = networks.join().unwrap_or_else(|_| {
                vec![Err("the removal panicked".to_string()); namespaces.len()]
            });
            (mounts, networks)
        });
        for ((errs, mount), network) in errors.iter_mut().zip(mounts).zip(networks) {
            errs.extend(mount.err());
            errs.extend(network.err());
        }
        jails
            .iter()
            .zip(errors)
            .map(|(jail, errs)| {
                if errs.is_empty() {
                    Ok(())
                } else {
                    Err(RuntimeError::Step {
                        jail: jail.clone(),
                        step: Step::Remove,
                        message: errs.join("; "),
                    })
                }
            })
            .collect()
    }

    fn set_records(&self, records: &DnsRecords) -> Result<(), RuntimeError> {
        self.require_running()?;
        let files = UnboundFiles::new(self.layout.unbound_dir());
        let text = unbound::render_records(records);
        let old = std::fs::read_to_string(files.records()).unwrap_or_default();
        if old == text {
            return Ok(());
        }
        let io = |source| RuntimeError::Io {
            what: "cannot write the resolver's records".into(),
            path: files.records(),
            source,
        };
        unbound::write_atomic(&files.records(), &text).map_err(io)?;
        // Records come from validated types and unbound parses each one it is handed: the
        // running resolver takes the difference without a check or a reload. Only when
        // it refuses (or cannot be asked) is the file checked and the resolver reloaded.
        if files.apply_records(&old, &text).is_ok() {
            return Ok(());
        }
        // The file on disk always passed the check (it is put back when a change fails it),
        // and each record is one self-contained `local-data` line: keeping only some of its
        // lines (jails removed) cannot make it invalid, so only new lines need the check.
        let removals_only = {
            let before: BTreeSet<&str> = old.lines().collect();
            text.lines().all(|line| before.contains(line))
        };
        let checked = if removals_only {
            Ok(())
        } else {
            files.check(self.runner.as_ref())
        };
        if let Err(e) = checked {
            unbound::write_atomic(&files.records(), &old).map_err(io)?;
            return Err(other(
                "the new DNS records do not pass unbound-checkconf",
                e,
            ));
        }
        if let Err(e) = files.reload() {
            // Put the old records back: the file must say what the resolver serves, or the
            // next call sees no change and never retries the reload.
            unbound::write_atomic(&files.records(), &old).map_err(io)?;
            return Err(other("cannot reload the resolver", e));
        }
        Ok(())
    }

    fn apply_mesh(
        &self,
        firewalls: &[JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError> {
        crate::mesh::apply(self, firewalls, records)
    }

    fn set_forwards(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        let info = self.require_running()?;
        let ruleset = nft::render_vm(info.link.host, info.link.vm, redirects);
        crate::vmfw::load(self.runner.as_ref(), &self.layout, &ruleset)?;
        let mut s = self.read_supervision()?;
        let mut wanted: Vec<ForwardSpec> = s
            .forwards
            .iter()
            .filter(|f| !f.listen.ip().is_loopback())
            .copied()
            .collect();
        wanted.extend(redirects.iter().map(|r| ForwardSpec {
            proto: r.proto,
            listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, r.host_port),
            target: SocketAddrV4::new(info.link.vm, r.host_port),
            only_from: None,
        }));
        // Reloaded even when the spec is unchanged: a listener that could not bind before
        // is retried, and its failure is reported again rather than hidden.
        let mine: BTreeSet<String> = wanted
            .iter()
            .filter(|f| f.listen.ip().is_loopback())
            .map(control::forward_key)
            .collect();
        s.forwards = wanted;
        let resp = self.write_supervision(&s)?;
        match resp.items_error(|key| mine.contains(key)) {
            None => Ok(()),
            Some(e) => Err(other("the supervisor could not bind every forward", e)),
        }
    }

    fn jails_present(&self) -> Result<BTreeSet<JailName>, RuntimeError> {
        Ok(plumbing::mounted_namespaces()
            .iter()
            .filter_map(|ns| self.layout.jail_of_ns(ns))
            .collect())
    }

    fn observe_jail(&self, jail: &JailName) -> Result<JailObserved, RuntimeError> {
        let ns = self.layout.jail_ns(jail);
        let exists = plumbing::namespace_exists(&ns);
        Ok(JailObserved {
            exists,
            ip: if exists {
                plumbing::jail_address(&ns)
            } else {
                None
            },
            mesh_address: if self.options.mesh {
                ygg::jail_address(&self.layout, jail)
            } else {
                None
            },
        })
    }

    fn exec_in_jail(&self, jail: &JailName, argv: &[String]) -> Result<i32, RuntimeError> {
        self.require_root("jrun cmd")?;
        let ns = self.layout.jail_ns(jail);
        if !plumbing::namespace_exists(&ns) {
            return Err(RuntimeError::NoSuchJail(jail.to_string()));
        }
        // Inside the jail's mount namespace too, so `jrun cmd` sees its mounts.
        let status = crate::jailns::exec_attached(&self.layout, jail, argv)
            .map_err(|e| other("cannot enter the jail", e))?;
        Ok(exit_code(status))
    }

    fn exec_in_instance(&self, argv: &[String]) -> Result<i32, RuntimeError> {
        self.require_root("jrun ssh")?;
        self.require_running()?;
        exec_in_ns(&self.layout.vm_ns(), argv)
    }
}

/// Runs `argv` in `ns` attached to this terminal. Interactive, so it bypasses the capturing
/// Runner (still argv, no shell). A signal death maps to 128 + signal, as shells do.
fn exec_in_ns(ns: &str, argv: &[String]) -> Result<i32, RuntimeError> {
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .status()
        .map_err(|e| other("cannot run ip netns exec", e))?;
    Ok(exit_code(status))
}

/// The exit code, or 128 + signal for a signal death (as shells do).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
