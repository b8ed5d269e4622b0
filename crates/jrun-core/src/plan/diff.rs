//! What must happen to one jail, or to the VM, to go from what state records to what
//! the config describes — and why.

use std::collections::BTreeMap;
use std::path::Path;

use super::ip::{Assigned, IpSource};
use super::model::{Action, Op, Reason, VmAction, VmOp};
use crate::config::{Base, Jail};
use crate::net::redirects_for;
use crate::state::JailState;

/// The actions for `jail`, resolved to `assigned`, given its record (if it exists).
pub(crate) fn jail_actions(
    jail: &Jail,
    assigned: &Assigned,
    old: Option<&JailState>,
    provision: bool,
    file: Option<&Path>,
) -> Vec<Action> {
    let Some(old) = old else {
        return vec![act(Op::Create, Reason::NewJail)];
    };
    if let Some(reason) = rebuild_reason(jail, assigned, old, provision) {
        return vec![act(Op::Recreate, reason)];
    }
    let mut actions = changes(jail, assigned, old);
    // Taken over from a file that is gone, or from no recorded file.
    if old.file.as_deref() != file {
        actions.push(act(
            Op::Record,
            Reason::Adopted {
                from: old.file.clone(),
            },
        ));
    }
    actions
}

/// What changes in place for a deployed jail.
fn changes(jail: &Jail, assigned: &Assigned, old: &JailState) -> Vec<Action> {
    let mut actions = Vec::new();
    let old_fwd = redirects_for(&old.name, old.ip, &old.forwards);
    let new_fwd = redirects_for(&jail.name, assigned.ip, &jail.forwards);
    let old_fwd = by_name(old.forwards.iter().map(|f| &f.name).zip(old_fwd));
    let new_fwd = by_name(jail.forwards.iter().map(|f| &f.name).zip(new_fwd));
    compare(
        &old_fwd,
        &new_fwd,
        &mut actions,
        |name, change| match change {
            Change::Added(r) => vec![act(
                Op::AddForward(r.clone()),
                Reason::ForwardAdded { name },
            )],
            Change::Removed(r) => vec![act(
                Op::RemoveForward(r.clone()),
                Reason::ForwardRemoved { name },
            )],
            Change::Changed(o, n) => vec![
                act(
                    Op::RemoveForward(o.clone()),
                    Reason::ForwardChanged { name: name.clone() },
                ),
                act(Op::AddForward(n.clone()), Reason::ForwardChanged { name }),
            ],
        },
    );
    let old_mounts = by_name(old.mounts.iter().map(|m| (&m.name, m.clone())));
    let new_mounts = by_name(jail.mounts.iter().map(|m| (&m.name, m.clone())));
    compare(
        &old_mounts,
        &new_mounts,
        &mut actions,
        |name, change| match change {
            Change::Added(m) => vec![act(Op::AddMount(m.clone()), Reason::MountAdded { name })],
            Change::Removed(m) => vec![act(
                Op::RemoveMount(m.clone()),
                Reason::MountRemoved { name },
            )],
            Change::Changed(o, n) => vec![
                act(
                    Op::RemoveMount(o.clone()),
                    Reason::MountChanged { name: name.clone() },
                ),
                act(Op::AddMount(n.clone()), Reason::MountChanged { name }),
            ],
        },
    );
    if old.setup != jail.setup {
        actions.push(act(Op::RunSetup, Reason::SetupChanged));
    }
    let old_execs = by_name(old.execs.iter().map(|e| (&e.name, e.clone())));
    let new_execs = by_name(jail.execs.iter().map(|e| (&e.name, e.clone())));
    compare(
        &old_execs,
        &new_execs,
        &mut actions,
        |name, change| match change {
            Change::Added(e) => vec![act(Op::StartExec(e.clone()), Reason::ExecAdded { name })],
            Change::Removed(e) => vec![act(Op::StopExec(e.clone()), Reason::ExecRemoved { name })],
            Change::Changed(_, n) => vec![act(
                Op::RestartExec(n.clone()),
                Reason::ExecChanged { name },
            )],
        },
    );
    if old.mesh_allow != jail.mesh_allow {
        actions.push(act(Op::SetFirewall, Reason::MeshAllowChanged));
    }
    if old.depends != jail.depends {
        actions.push(act(Op::Record, Reason::DependsChanged));
    }
    // Anything else that differs is the order of declarations: nothing runs, but the
    // record must follow the file, or the next plan would not be empty.
    let same_file = JailState {
        file: old.file.clone(),
        ..JailState::from_jail(jail, assigned.ip, true)
    };
    if actions.is_empty() && same_file != *old {
        actions.push(act(Op::Record, Reason::OrderChanged));
    }
    actions
}

/// Why the jail must be built again from nothing, if it must.
fn rebuild_reason(
    jail: &Jail,
    assigned: &Assigned,
    old: &JailState,
    provision: bool,
) -> Option<Reason> {
    if old.from_jailrun {
        return Some(Reason::FromJailrun);
    }
    if provision {
        return Some(Reason::Provision);
    }
    if !old.deployed {
        return Some(Reason::IncompleteDeployment);
    }
    if old.release != jail.release {
        return Some(Reason::ReleaseChanged {
            from: old.release.clone(),
            to: jail.release.clone(),
        });
    }
    if old.base != jail.base {
        return Some(Reason::BaseChanged {
            from: old.base.clone(),
            to: jail.base.clone(),
        });
    }
    if old.ip != assigned.ip {
        return Some(match &assigned.source {
            IpSource::Displaced { from, by } => Reason::IpTaken {
                from: *from,
                to: assigned.ip,
                by: by.clone(),
            },
            _ => Reason::IpChanged {
                from: old.ip,
                to: assigned.ip,
            },
        });
    }
    None
}

/// The VM's actions: base setup, shares and base forwards.
pub(crate) fn vm_actions(old: Option<&Base>, new: Option<&Base>, provision: bool) -> Vec<VmAction> {
    let vm = |op, reason| VmAction { op, reason };
    let first = old.is_none();
    let old = old.cloned().unwrap_or_default();
    let new = new.cloned().unwrap_or_default();
    let mut actions = Vec::new();
    if !new.setup.is_empty() && (first || provision || old.setup != new.setup) {
        let reason = if provision {
            Reason::Provision
        } else if first {
            Reason::NewBase
        } else {
            Reason::SetupChanged
        };
        actions.push(vm(VmOp::RunSetup, reason));
    }
    let old_shares = by_name(old.mounts.iter().map(|m| (&m.name, m.clone())));
    let new_shares = by_name(new.mounts.iter().map(|m| (&m.name, m.clone())));
    compare(
        &old_shares,
        &new_shares,
        &mut actions,
        |name, change| match change {
            Change::Added(m) => vec![vm(VmOp::AddShare(m.clone()), Reason::ShareAdded { name })],
            Change::Removed(m) => vec![vm(
                VmOp::RemoveShare(m.clone()),
                Reason::ShareRemoved { name },
            )],
            Change::Changed(o, n) => vec![
                vm(
                    VmOp::RemoveShare(o.clone()),
                    Reason::ShareChanged { name: name.clone() },
                ),
                vm(VmOp::AddShare(n.clone()), Reason::ShareChanged { name }),
            ],
        },
    );
    let old_fwd = by_name(old.forwards.iter().map(|f| (&f.name, f.clone())));
    let new_fwd = by_name(new.forwards.iter().map(|f| (&f.name, f.clone())));
    compare(
        &old_fwd,
        &new_fwd,
        &mut actions,
        |name, change| match change {
            Change::Added(f) => vec![vm(
                VmOp::AddForward(f.clone()),
                Reason::ForwardAdded { name },
            )],
            Change::Removed(f) => vec![vm(
                VmOp::RemoveForward(f.clone()),
                Reason::ForwardRemoved { name },
            )],
            Change::Changed(o, n) => vec![
                vm(
                    VmOp::RemoveForward(o.clone()),
                    Reason::ForwardChanged { name: name.clone() },
                ),
                vm(VmOp::AddForward(n.clone()), Reason::ForwardChanged { name }),
            ],
        },
    );
    actions
}

fn act(op: Op, reason: Reason) -> Action {
    Action { op, reason }
}

enum Change<'a, T> {
    Added(&'a T),
    Removed(&'a T),
    Changed(&'a T, &'a T),
}

fn by_name<'a, T>(items: impl Iterator<Item = (&'a String, T)>) -> BTreeMap<&'a str, T> {
    items.map(|(k, v)| (k.as_str(), v)).collect()
}

/// Removals first (so a port or path is free before it is claimed again), then
/// additions and changes, each in name order.
fn compare<T: PartialEq, A>(
    old: &BTreeMap<&str, T>,
    new: &BTreeMap<&str, T>,
    out: &mut Vec<A>,
    mut emit: impl FnMut(String, Change<'_, T>) -> Vec<A>,
) {
    for (name, o) in old {
        if !new.contains_key(name) {
            out.extend(emit(name.to_string(), Change::Removed(o)));
        }
    }
    for (name, n) in new {
        match old.get(name) {
            None => out.extend(emit(name.to_string(), Change::Added(n))),
            Some(o) if o != n => out.extend(emit(name.to_string(), Change::Changed(o, n))),
            Some(_) => {}
        }
    }
}
