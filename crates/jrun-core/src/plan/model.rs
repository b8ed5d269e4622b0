//! The Plan: everything a runtime needs to act, without re-deriving anything.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Base, BaseForward, BaseMount, Exec, Jail, JailName, Mount};
use crate::net::{DnsRecords, ForwardChanges, JailFirewall, Redirect, VmFirewall};

/// What `jrun up` would do, in the order to do it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The base the VM should have after this plan: the config's `base`, or the recorded
    /// one when the config has none and another file (or no recorded file) applied it.
    pub base: Option<Base>,
    /// The config file `base` comes from (canonical path), recorded with it.
    #[serde(default)]
    pub base_file: Option<PathBuf>,
    /// The config file planned ([`Options::file`]); `None`: the whole state.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Changes to the VM itself (base setup, shares, base forwards), done first.
    pub vm: VmPlan,
    /// Jails that exist but are no longer wanted, removed before anything is created.
    pub removals: Vec<JailRemoval>,
    /// Every jail in scope, in dependency order (dependencies first), including the
    /// unchanged ones (with no actions), so a runtime knows every address and rule.
    pub jails: Vec<JailPlan>,
    /// The whole DNS record set after this plan: every local jail and every remote one.
    pub dns: DnsRecords,
    /// Whether `dns` differs from the set the current state implies.
    pub dns_changed: bool,
    /// The whole VM firewall after this plan (NAT out, one redirect per forward, deny in).
    pub vm_firewall: VmFirewall,
    /// Jail forwards to add and remove, compared with the wiring in effect.
    pub forwards: ForwardChanges,
    /// Recorded jails this plan leaves exactly as they are (deployed from another file,
    /// from no recorded file, or not named in a partial run), by name. Their addresses,
    /// DNS records and forwards are part of `dns` and `vm_firewall`.
    #[serde(default)]
    pub untouched: Vec<Untouched>,
}

/// A recorded jail the plan leaves alone, and the file that deployed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untouched {
    pub name: JailName,
    /// The config file that deployed it; `None`: not recorded (older state, or Jailrun's).
    pub file: Option<PathBuf>,
}

/// What happens to the VM itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmPlan {
    pub actions: Vec<VmAction>,
}

/// One change to the VM, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmAction {
    pub op: VmOp,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "arg")]
pub enum VmOp {
    /// Run every base setup step, in order.
    RunSetup,
    /// Share a host folder into the VM (the vm runtime restarts the VM for it).
    AddShare(BaseMount),
    RemoveShare(BaseMount),
    /// Forward a host port to a port of the VM itself.
    AddForward(BaseForward),
    RemoveForward(BaseForward),
}

/// A jail leaving: stop its services, drop its forwards, DNS name and network, destroy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailRemoval {
    pub name: JailName,
    /// The address it held (freed once it is gone).
    pub ip: Ipv4Addr,
    pub reason: Reason,
}

/// One jail of the desired config, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JailPlan {
    /// The jail as the config describes it.
    pub jail: Jail,
    /// The config file it is recorded as deployed from (canonical path).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Its resolved address (static, kept from state, or newly assigned).
    pub ip: Ipv4Addr,
    /// Its forwards, as VM redirects to `ip`.
    pub redirects: Vec<Redirect>,
    /// Its own firewall: the mesh peers it accepts.
    pub firewall: JailFirewall,
    /// What to do, in order; empty when the jail is unchanged.
    pub actions: Vec<Action>,
}

/// One step for one jail, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub op: Op,
    pub reason: Reason,
}

/// What to do to a jail. `Create` and `Recreate` stand alone: they include the jail's
/// network, mounts, forwards, setup and services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "arg")]
pub enum Op {
    /// Build the jail from nothing.
    Create,
    /// Destroy what exists of it and build it again.
    Recreate,
    /// Set up one host port redirect to the jail.
    AddForward(Redirect),
    /// Tear down one host port redirect.
    RemoveForward(Redirect),
    AddMount(Mount),
    RemoveMount(Mount),
    /// Run every setup step of the jail again, in order.
    RunSetup,
    StartExec(Exec),
    StopExec(Exec),
    /// Stop the old definition, start the new one.
    RestartExec(Exec),
    /// Load the jail's firewall again (its `mesh { allow }` changed).
    SetFirewall,
    /// Nothing runs; only the record in state changes (e.g. its `depends`).
    Record,
}

/// Why an action is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Reason {
    NewJail,
    NotInConfig,
    /// `--provision` forces everything.
    Provision,
    /// Its last deployment did not complete.
    IncompleteDeployment,
    /// Converted from Jailrun's state: it does not exist in this instance yet.
    FromJailrun,
    /// Recorded from another file that no longer exists, or from no recorded file: this
    /// file takes it over.
    Adopted {
        from: Option<PathBuf>,
    },
    ReleaseChanged {
        from: Option<String>,
        to: Option<String>,
    },
    BaseChanged {
        from: Option<JailName>,
        to: Option<JailName>,
    },
    /// Its address changed (its static `ip` moved).
    IpChanged {
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
    /// Its kept address was taken by another jail's static `ip`.
    IpTaken {
        from: Ipv4Addr,
        to: Ipv4Addr,
        by: JailName,
    },
    ForwardAdded {
        name: String,
    },
    ForwardRemoved {
        name: String,
    },
    ForwardChanged {
        name: String,
    },
    MountAdded {
        name: String,
    },
    MountRemoved {
        name: String,
    },
    MountChanged {
        name: String,
    },
    ExecAdded {
        name: String,
    },
    ExecRemoved {
        name: String,
    },
    ExecChanged {
        name: String,
    },
    SetupChanged,
    DependsChanged,
    /// The ports peers may reach (`mesh { allow }`) changed.
    MeshAllowChanged,
    /// Only the order of its forwards, mounts or execs in the file changed.
    OrderChanged,
    /// The VM has never had the config's base applied.
    NewBase,
    ShareAdded {
        name: String,
    },
    ShareRemoved {
        name: String,
    },
    ShareChanged {
        name: String,
    },
}

/// Inputs about the running system, probed by the runtime (empty when nothing runs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Probe {
    /// Addresses in the jail subnet that answer, whoever holds them.
    pub in_use: std::collections::BTreeSet<Ipv4Addr>,
    /// Config files recorded in state that no longer exist ([`crate::state::State::missing_files`]):
    /// a file may take over their jails.
    #[serde(default)]
    pub missing_files: std::collections::BTreeSet<PathBuf>,
}

/// How to plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Only these jails and what they depend on (`jrun up cfg name…`); empty: all, and
    /// jails no longer in the config are removed.
    pub only: Vec<JailName>,
    /// Redeploy every jail in scope and rerun the base setup.
    pub provision: bool,
    /// The host port that reaches the VM (`JRUN_SSH_PORT`); no forward may take it.
    pub ssh_port: u16,
    /// The config file being planned (canonical path): the plan speaks for its jails only.
    /// Jails recorded from other files stay as they are, and only jails this file deployed
    /// are removed when it no longer lists them. `None`: the config is the whole state
    /// ([`crate::state::State::as_config`]), every recorded jail keeps its file.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            provision: false,
            ssh_port: 2222,
            file: None,
        }
    }
}

impl Plan {
    /// Whether applying this plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.vm.actions.is_empty()
            && self.removals.is_empty()
            && self.jails.iter().all(|j| j.actions.is_empty())
            && !self.dns_changed
            && self.forwards.is_empty()
    }

    /// The plan of one jail, by name.
    pub fn jail(&self, name: &str) -> Option<&JailPlan> {
        self.jails.iter().find(|j| j.jail.name.as_str() == name)
    }
}

impl JailPlan {
    pub fn name(&self) -> &JailName {
        &self.jail.name
    }

    /// Whether the jail is built (again) from nothing.
    pub fn is_rebuild(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a.op, Op::Create | Op::Recreate))
    }
}
