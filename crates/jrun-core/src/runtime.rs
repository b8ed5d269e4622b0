//! The one boundary between jrun's commands and the machine that runs jails.
//!
//! The planner decides *what* must change; a [`Runtime`] knows *how* on its OS (network
//! namespaces and nftables natively, FreeBSD jails and pf in the VM). The commands drive a
//! runtime through these primitives, in the planner's order, and record a jail as deployed
//! only after every primitive for it succeeded.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::PathBuf;

use jrun_mesh::YggAddress;
use serde::{Deserialize, Serialize};

use crate::config::{JailName, Proto};
use crate::net::{DnsRecords, JailFirewall, Redirect};
use crate::settings::RuntimeKind;
use crate::state::State;

/// Everything a runtime needs to bring one jail's network to life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailNetwork {
    pub name: JailName,
    pub ip: Ipv4Addr,
    /// This jail's forwards (host port → jail port).
    pub redirects: Vec<Redirect>,
    pub firewall: JailFirewall,
}

/// The steps of deploying one jail, in order; progress reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Namespace,
    Link,
    Address,
    Resolver,
    Firewall,
    Mesh,
    Records,
    Forwards,
    Remove,
}

impl Step {
    /// Every step, in the order a deploy runs them.
    pub const DEPLOY: [Step; 8] = [
        Step::Namespace,
        Step::Link,
        Step::Address,
        Step::Resolver,
        Step::Firewall,
        Step::Mesh,
        Step::Records,
        Step::Forwards,
    ];

    /// The name used in progress lines, errors and `JRUN_FAULT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Namespace => "namespace",
            Step::Link => "link",
            Step::Address => "address",
            Step::Resolver => "resolver",
            Step::Firewall => "firewall",
            Step::Mesh => "mesh",
            Step::Records => "records",
            Step::Forwards => "forwards",
            Step::Remove => "remove",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the instance (the VM, or the native supervisor) runs, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub running: bool,
    /// Seconds since the Unix epoch.
    pub since: Option<u64>,
    /// Where the instance lives on the host (namespace name, VM disk…), for humans.
    pub detail: Option<String>,
}

/// What the runtime observes about one jail right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailObserved {
    /// Its network namespace (or FreeBSD jail) exists.
    pub exists: bool,
    /// Its IPv4 address on the bridge, as seen on the machine.
    pub ip: Option<Ipv4Addr>,
    /// The jail's Yggdrasil node address, if its node answers.
    pub mesh_address: Option<YggAddress>,
}

/// What `start` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyRunning,
}

/// A runtime failure: which jail and step (when there is one), what failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this needs root: {what}. Run it with sudo (the native runtime creates network namespaces and nftables rules)")]
    NeedsRoot { what: String },
    #[error("the instance is not running; run `jrun start` first")]
    NotRunning,
    #[error("jail `{jail}`, step {step}: {message}")]
    Step {
        jail: JailName,
        step: Step,
        message: String,
    },
    #[error("host port {proto}/{port} is already in use on 127.0.0.1; free it or change the forward's `host` port")]
    PortBusy { proto: String, port: u16 },
    #[error("jail `{0}` does not exist on this instance; `jrun status` lists the jails")]
    NoSuchJail(String),
    #[error("{what}: {message}")]
    Other { what: String, message: String },
    #[error("{what} ({path}): {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The operations every runtime provides to jrun's commands.
pub trait Runtime {
    /// Which runtime this is.
    fn kind(&self) -> RuntimeKind;
    /// Creates the instance (VM or namespaces + supervisor); a running instance is left alone.
    fn start(&self) -> Result<StartOutcome, RuntimeError>;
    /// Tears the instance down, leaving the host as it was; jails are kept in state.
    fn stop(&self) -> Result<(), RuntimeError>;
    /// Whether the instance runs.
    fn instance(&self) -> Result<InstanceStatus, RuntimeError>;
    /// Addresses of the jail subnet that answer on the bridge right now (jails or not).
    fn probe_in_use(&self) -> Result<BTreeSet<Ipv4Addr>, RuntimeError>;
    /// Fails with [`RuntimeError::PortBusy`] when a host port that these redirects need is
    /// held by something other than this instance. Changes nothing.
    fn check_host_ports(&self, redirects: &[Redirect]) -> Result<(), RuntimeError>;
    /// Refuses a plan this runtime cannot carry out as asked, before anything changes
    /// (the vm runtime: a jail forward whose port inside the VM is taken). Changes nothing.
    fn check_plan(&self, plan: &crate::plan::Plan) -> Result<(), RuntimeError> {
        let _ = plan;
        Ok(())
    }
    /// Creates or converges one jail's network (idempotent); `progress` hears each step.
    /// On failure the jail's partial work is undone before the error returns.
    fn deploy_jail(
        &self,
        jail: &JailNetwork,
        progress: &mut dyn FnMut(&JailName, Step),
    ) -> Result<(), RuntimeError>;
    /// Removes one jail's network and everything it had; absent is fine. Keys are kept.
    fn remove_jail(&self, jail: &JailName) -> Result<(), RuntimeError>;
    /// Removes several jails ([`Runtime::remove_jail`] each), in order, stopping at the
    /// first that fails: one result per jail tried, so the jails past the returned ones
    /// were left alone. A runtime that can share the work between the jails (one
    /// supervisor reload for all) overrides it; it may then try every jail.
    fn remove_jails(&self, jails: &[JailName]) -> Vec<Result<(), RuntimeError>> {
        let mut results = Vec::new();
        for jail in jails {
            let result = self.remove_jail(jail);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }
    /// Replaces the resolver's whole record set (reloaded, not restarted).
    fn set_records(&self, records: &DnsRecords) -> Result<(), RuntimeError>;
    /// Applies the mesh pairings: every listed jail's `mesh_peers` set becomes exactly
    /// its firewall's (one transaction per jail, nothing else of its ruleset changes), then
    /// the resolver's whole record set is replaced. Jails whose network is absent are
    /// skipped (they get their set when deployed).
    fn apply_mesh(
        &self,
        firewalls: &[JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError>;
    /// [`Runtime::apply_mesh`] for the sets and records derived from `state`, which may be
    /// newer than `state.json` (a caller holding the lock and not yet saved). A runtime
    /// that re-renders the recorded jails to apply a pairing (the vm runtime) renders them
    /// from `state`; the default ignores it.
    fn apply_mesh_from(
        &self,
        state: &State,
        firewalls: &[JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError> {
        let _ = state;
        self.apply_mesh(firewalls, records)
    }
    /// Replaces the whole set of host forwards.
    fn set_forwards(&self, redirects: &[Redirect]) -> Result<(), RuntimeError>;
    /// The jails whose network exists on the machine right now (one cheap look).
    fn jails_present(&self) -> Result<BTreeSet<JailName>, RuntimeError>;
    /// What the machine says about one jail.
    fn observe_jail(&self, jail: &JailName) -> Result<JailObserved, RuntimeError>;
    /// Runs `argv` inside the jail, attached to this terminal; returns its exit code.
    fn exec_in_jail(&self, jail: &JailName, argv: &[String]) -> Result<i32, RuntimeError>;
    /// Runs `argv` in the instance itself (the VM, or the native VM namespace).
    fn exec_in_instance(&self, argv: &[String]) -> Result<i32, RuntimeError>;
    /// The command `jrun ssh` runs for an interactive shell in `jail` (the instance when
    /// `None`); empty: the login shell the instance gives its user. By default the host's
    /// `$SHELL` (the native runtime's jails share the host's files), else `/bin/sh`.
    fn shell(&self, jail: Option<&JailName>) -> Vec<String> {
        let _ = jail;
        vec![std::env::var("SHELL")
            .ok()
            .filter(|s| s.starts_with('/'))
            .unwrap_or_else(|| "/bin/sh".into())]
    }
}

/// The check behind [`Runtime::check_host_ports`], the same on every runtime: each
/// redirect's host port is either one the instance already listens on (`held`, as
/// (proto, port)) or free to bind on 127.0.0.1 right now. The first busy one fails with
/// [`RuntimeError::PortBusy`]. Binds and releases at once; changes nothing.
pub fn ensure_host_ports_free(
    redirects: &[Redirect],
    held: &BTreeSet<(Proto, u16)>,
) -> Result<(), RuntimeError> {
    for r in redirects {
        if held.contains(&(r.proto, r.host_port)) {
            continue;
        }
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, r.host_port);
        let free = match r.proto {
            Proto::Tcp => TcpListener::bind(addr).is_ok(),
            Proto::Udp => UdpSocket::bind(addr).is_ok(),
        };
        if !free {
            return Err(RuntimeError::PortBusy {
                proto: r.proto.to_string(),
                port: r.host_port,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(proto: Proto, host_port: u16) -> Redirect {
        Redirect {
            proto,
            host_port,
            jail: JailName::new("web").unwrap(),
            jail_ip: Ipv4Addr::new(10, 17, 89, 10),
            jail_port: 80,
        }
    }

    #[test]
    fn a_port_held_by_someone_else_is_busy_unless_the_instance_holds_it() {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let (tport, uport) = (
            tcp.local_addr().unwrap().port(),
            udp.local_addr().unwrap().port(),
        );
        let none = BTreeSet::new();

        let err = ensure_host_ports_free(&[redirect(Proto::Tcp, tport)], &none).unwrap_err();
        assert!(
            matches!(err, RuntimeError::PortBusy { ref proto, port } if proto == "tcp" && port == tport),
            "{err:?}"
        );
        let err = ensure_host_ports_free(&[redirect(Proto::Udp, uport)], &none).unwrap_err();
        assert!(
            matches!(err, RuntimeError::PortBusy { ref proto, port } if proto == "udp" && port == uport),
            "{err:?}"
        );

        // The instance's own listeners are not a conflict.
        let held = BTreeSet::from([(Proto::Tcp, tport), (Proto::Udp, uport)]);
        let both = [redirect(Proto::Tcp, tport), redirect(Proto::Udp, uport)];
        ensure_host_ports_free(&both, &held).unwrap();

        // Released ports are free again (another process on this machine may take an
        // ephemeral port for a moment: ask again briefly before calling it held).
        drop((tcp, udp));
        let mut free = ensure_host_ports_free(&both, &none);
        for _ in 0..40 {
            if free.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            free = ensure_host_ports_free(&both, &none);
        }
        free.unwrap();
    }
}
