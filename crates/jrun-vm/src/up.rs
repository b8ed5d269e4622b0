//! One `jrun up` on the vm runtime: render everything, wire forwards live through QMP,
//! then send the one provisioning script over one SSH connection.
//!
//! QEMU forwards host port P to guest port P (`hostfwd`); the guest's pf redirects P to
//! the jail. So QEMU only needs to know which host ports exist: a forward whose target
//! moved changes pf, not QEMU. Only new 9p shares need a restart (QEMU cannot add them
//! to a running VM), and [`restart_reason`] says so before anything happens.

use std::collections::BTreeSet;

use jrun_core::config::Proto;
use jrun_core::plan::Plan;

use crate::qemu::HostFwd;
use crate::qmp::{Qmp, QmpError};
use crate::render::{Rendered, Share};
use crate::ssh::{Progress, RemoteExec, ScriptError};

/// The guest's SSH port behind QEMU's forward.
pub const GUEST_SSH_PORT: u16 = 22;

/// Every `hostfwd` the VM needs: SSH first, then base forwards (host → VM port), then one
/// per jail forward (host P → guest P, which pf redirects).
pub fn hostfwds(plan: &Plan, ssh_port: u16) -> Vec<HostFwd> {
    let mut out = vec![HostFwd {
        proto: Proto::Tcp,
        host_port: ssh_port,
        guest_port: GUEST_SSH_PORT,
    }];
    if let Some(base) = &plan.base {
        out.extend(base.forwards.iter().map(|f| HostFwd {
            proto: f.proto,
            host_port: f.host,
            guest_port: f.target,
        }));
    }
    out.extend(jail_hostfwds(plan));
    out
}

/// A jail forward reaches the VM on its host port P (QEMU forwards host P to guest P) and
/// pf redirects guest port P to the jail: P must not be a port the VM itself serves there
/// (its SSH on 22, a base forward's `target`), or that port would be redirected into the
/// jail, and with 22 jrun would lock itself out of the VM. The clash, if any.
pub fn guest_port_clash(plan: &Plan) -> Option<String> {
    let base: Vec<(Proto, u16, String)> = plan
        .base
        .iter()
        .flat_map(|b| b.forwards.iter())
        .map(|f| (f.proto, f.target, format!("base forward `{}`", f.name)))
        .chain([(Proto::Tcp, GUEST_SSH_PORT, "the VM's own SSH".to_string())])
        .collect();
    plan.vm_firewall.redirects.iter().find_map(|r| {
        base.iter()
            .find(|(proto, port, _)| *proto == r.proto && *port == r.host_port)
            .map(|(_, _, what)| {
                format!(
                    "jail `{}` forwards host {}/{}, but inside the VM that port is {what}'s; choose another `host` port",
                    r.jail, r.proto, r.host_port
                )
            })
    })
}

/// The `hostfwd`s that serve jail forwards: host P → guest P, which pf redirects.
pub fn jail_hostfwds(plan: &Plan) -> Vec<HostFwd> {
    plan.vm_firewall
        .redirects
        .iter()
        .map(|r| HostFwd {
            proto: r.proto,
            host_port: r.host_port,
            guest_port: r.host_port,
        })
        .collect()
}

/// What QEMU must add and remove to go from `running` to `desired`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFwdChanges {
    pub add: Vec<HostFwd>,
    pub remove: Vec<HostFwd>,
}

impl HostFwdChanges {
    pub fn between(running: &[HostFwd], desired: &[HostFwd]) -> Self {
        let old: BTreeSet<&HostFwd> = running.iter().collect();
        let new: BTreeSet<&HostFwd> = desired.iter().collect();
        HostFwdChanges {
            add: new.difference(&old).map(|f| **f).collect(),
            remove: old.difference(&new).map(|f| **f).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Why the VM must restart to apply `desired` shares, or `None` when it need not.
pub fn restart_reason(running: &[Share], desired: &[Share]) -> Option<String> {
    let new: Vec<String> = desired
        .iter()
        .filter(|d| !running.iter().any(|r| r.tag == d.tag))
        .map(|d| d.host.display().to_string())
        .collect();
    (!new.is_empty()).then(|| {
        format!(
            "the VM restarts to share {} with it: QEMU cannot add 9p shares to a running VM",
            new.join(", ")
        )
    })
}

/// Adds and removes port forwards on a running VM.
pub trait ForwardControl {
    fn add(&mut self, f: &HostFwd) -> Result<(), QmpError>;
    fn remove(&mut self, f: &HostFwd) -> Result<(), QmpError>;
}

/// Records forward changes instead of sending them to QEMU (for tests, like
/// `jrun_core::exec::RecordingRunner`): `add <spec>` and `remove <spec>` in order.
#[derive(Debug, Default)]
pub struct RecordingForwards(pub Vec<String>);

impl ForwardControl for RecordingForwards {
    fn add(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.0.push(format!("add {f}"));
        Ok(())
    }
    fn remove(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.0.push(format!("remove {}", f.remove_spec()));
        Ok(())
    }
}

impl ForwardControl for Qmp {
    fn add(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.hostfwd_add(f)
    }
    fn remove(&mut self, f: &HostFwd) -> Result<(), QmpError> {
        self.hostfwd_remove(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("cannot change the VM's port forwards: {0}")]
    Forward(#[from] QmpError),
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// Removes, then adds, forwards (a port that moves is freed before it is taken again).
pub fn apply_forwards(
    ctl: &mut dyn ForwardControl,
    changes: &HostFwdChanges,
) -> Result<(), QmpError> {
    for f in &changes.remove {
        ctl.remove(f)?;
    }
    for f in &changes.add {
        ctl.add(f)?;
    }
    Ok(())
}

/// Applies a rendered change: forwards live, then the script over one connection.
pub fn apply(
    rendered: &Rendered,
    forwards: &HostFwdChanges,
    ctl: &mut dyn ForwardControl,
    remote: &dyn RemoteExec,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), UpError> {
    apply_forwards(ctl, forwards)?;
    remote.run_script(&rendered.script, progress)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(proto: Proto, host: u16, guest: u16) -> HostFwd {
        HostFwd {
            proto,
            host_port: host,
            guest_port: guest,
        }
    }

    fn plan_of(src: &str) -> Plan {
        let config = jrun_core::config::load_str(std::path::Path::new("t.ucl"), src, 2222)
            .unwrap()
            .config;
        jrun_core::plan::plan(
            &config,
            &jrun_core::state::State::default(),
            &jrun_core::plan::Probe::default(),
            &jrun_core::plan::Options {
                only: vec![],
                provision: false,
                ssh_port: 2222,
                file: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_jail_forward_on_a_port_the_vm_serves_is_refused() {
        let ssh = plan_of("jail \"w\" { forward { s { host = 22; jail = 22; } } }\n");
        let why = guest_port_clash(&ssh).unwrap();
        assert!(
            why.contains("host tcp/22") && why.contains("the VM's own SSH"),
            "{why}"
        );
        let base = plan_of(
            "base { forward { admin { host = 2200; target = 8080; } } }\njail \"w\" { forward { h { host = 8080; jail = 80; } } }\n",
        );
        let why = guest_port_clash(&base).unwrap();
        assert!(why.contains("base forward `admin`"), "{why}");
        // udp/22 and a port nobody serves in the VM are fine.
        let fine = plan_of("jail \"w\" { forward { d { host = 22; jail = 53; proto = \"udp\"; } h { host = 8080; jail = 80; } } }\n");
        assert_eq!(guest_port_clash(&fine), None);
    }

    #[test]
    fn only_changed_host_ports_touch_qemu() {
        let running = [
            fwd(Proto::Tcp, 2222, 22),
            fwd(Proto::Tcp, 8080, 8080),
            fwd(Proto::Udp, 53, 53),
        ];
        let desired = [
            fwd(Proto::Tcp, 2222, 22),
            fwd(Proto::Tcp, 8080, 8080),
            fwd(Proto::Tcp, 9000, 9000),
        ];
        let c = HostFwdChanges::between(&running, &desired);
        let mut rec = RecordingForwards::default();
        apply_forwards(&mut rec, &c).unwrap();
        assert_eq!(
            rec.0,
            ["remove udp:127.0.0.1:53", "add tcp:127.0.0.1:9000-:9000"]
        );
        assert!(HostFwdChanges::between(&desired, &desired).is_empty());
    }

    #[test]
    fn only_new_shares_restart() {
        let s = |t: &str| Share {
            tag: t.into(),
            host: format!("/h/{t}").into(),
        };
        assert_eq!(restart_reason(&[s("a"), s("b")], &[s("a")]), None);
        let why = restart_reason(&[s("a")], &[s("a"), s("c")]).unwrap();
        assert!(
            why.contains("/h/c") && why.contains("cannot add 9p shares"),
            "{why}"
        );
    }
}
