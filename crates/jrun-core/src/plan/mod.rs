//! The planner: pure functions from (desired config, current state, probed facts) to an
//! ordered [`Plan`]. Nothing here touches the OS.
//!
//! A runtime executes the plan in this order: [`Plan::vm`] actions, [`Plan::removals`],
//! then [`Plan::jails`] (dependencies first), recording each jail with
//! [`State::begin_jail`] before and [`State::mark_deployed`] after its actions, and
//! [`State::record_vm`] once the VM wiring ([`Plan::vm_firewall`], [`Plan::dns`]) is in
//! place.

mod diff;
mod ip;
mod model;
mod order;
mod report;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use ip::{assign_ips, Assigned, IpError, IpSource};
pub use model::{
    Action, JailPlan, JailRemoval, Op, Options, Plan, Probe, Reason, Untouched, VmAction, VmOp,
    VmPlan,
};
pub use order::{dependencies, dependency_order, levels, with_dependencies, OrderError};
pub use report::Summary;

use crate::config::{Config, JailName};
use crate::net::{
    check_host_ports, redirects_for, DnsRecords, ForwardChanges, JailFirewall, PortConflict,
    VmFirewall,
};
use crate::state::State;

/// Why no plan can be made; nothing has changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Ip(#[from] IpError),
    #[error(transparent)]
    Ports(#[from] PortConflict),
    #[error("jail {jail} has ip = \"{ip}\", but jail {holder} holds that address and this run leaves it alone (another file deployed it, or this partial run does not name it); choose another address, or name {holder} too")]
    HeldByUntouched {
        jail: JailName,
        ip: std::net::Ipv4Addr,
        holder: JailName,
    },
    #[error("jail {jail} was deployed from {}, and a jail belongs to one config file; rename it in {}, or drop it from the other file and run `jrun up {}` (or `jrun down {jail}`) first", .other.display(), .this.display(), .other.display())]
    OtherFile {
        jail: JailName,
        /// The file that deployed it.
        other: PathBuf,
        /// The file being planned.
        this: PathBuf,
    },
}

/// Plans the way from `state` to `config`.
pub fn plan(
    config: &Config,
    state: &State,
    probe: &Probe,
    options: &Options,
) -> Result<Plan, PlanError> {
    let order = dependency_order(config)?;
    let owner = options.file.as_deref();
    let mut scope: BTreeSet<JailName> = if options.only.is_empty() {
        config.jails.iter().map(|j| j.name.clone()).collect()
    } else {
        with_dependencies(config, &options.only)?
    };
    match owner {
        // The whole state (`start`, `down`, pairing changes): a jail converted from
        // Jailrun's state is created by `up` of its file only.
        None => scope.retain(|n| !state.jails.get(n).is_some_and(|j| j.from_jailrun)),
        Some(file) => {
            for name in &scope {
                let other = state.jails.get(name).and_then(|j| j.file.as_deref());
                if let Some(other) = other.filter(|o| *o != file) {
                    if !probe.missing_files.contains(other) {
                        return Err(PlanError::OtherFile {
                            jail: name.clone(),
                            other: other.to_path_buf(),
                            this: file.to_path_buf(),
                        });
                    }
                }
            }
        }
    }
    let (base, base_file) = effective_base(config, state, owner);

    let removals = if options.only.is_empty() {
        removals(config, state, owner)
    } else {
        Vec::new()
    };
    let removed: BTreeSet<&JailName> = removals.iter().map(|r| &r.name).collect();
    // Jails that stay as they are recorded: out of scope, not removed.
    let untouched: Vec<_> = state
        .jails
        .values()
        .filter(|j| !scope.contains(&j.name) && !removed.contains(&j.name))
        .collect();

    let base_forwards = base
        .as_ref()
        .map(|b| b.forwards.as_slice())
        .unwrap_or_default();
    // Every forward that will exist: the config's, and those of the jails other files
    // deployed, which keep theirs.
    let others = untouched
        .iter()
        .filter(|j| config.jail(j.name.as_str()).is_none())
        .map(|j| (&j.name, j.forwards.as_slice()));
    check_host_ports(
        options.ssh_port,
        base_forwards,
        config
            .jails
            .iter()
            .map(|j| (&j.name, j.forwards.as_slice()))
            .chain(others),
    )?;
    let ips = assign_ips(config, &scope, state, probe)?;

    let jails: Vec<JailPlan> = order
        .into_iter()
        .filter(|j| scope.contains(&j.name))
        .map(|jail| {
            let assigned = &ips[&jail.name];
            let old = state.jails.get(&jail.name);
            let file = match owner {
                Some(f) => Some(f.to_path_buf()),
                None => old.and_then(|o| o.file.clone()),
            };
            JailPlan {
                jail: jail.clone(),
                actions: diff::jail_actions(
                    jail,
                    assigned,
                    old,
                    options.provision,
                    file.as_deref(),
                ),
                file,
                ip: assigned.ip,
                redirects: redirects_for(&jail.name, assigned.ip, &jail.forwards),
                firewall: JailFirewall::new(
                    jail.name.clone(),
                    state.mesh_addresses_for(&jail.name),
                )
                .allowing(jail.mesh_allow.clone()),
            }
        })
        .collect();

    // A static address may displace a jail only if that jail is replanned too.
    for j in &jails {
        if let Some(holder) = untouched.iter().find(|u| u.ip == j.ip) {
            return Err(PlanError::HeldByUntouched {
                jail: j.jail.name.clone(),
                ip: j.ip,
                holder: holder.name.clone(),
            });
        }
    }

    let local = jails
        .iter()
        .map(|j| (&j.jail.name, j.ip))
        .chain(untouched.iter().map(|j| (&j.name, j.ip)));
    let remote = || {
        state
            .remote_jails()
            .map(|(c, j)| (c, &j.name, j.ygg_address))
    };
    let dns = DnsRecords::build(local, remote());
    let dns_now = DnsRecords::build(state.jails.values().map(|j| (&j.name, j.ip)), remote());

    let redirects = jails
        .iter()
        .flat_map(|j| j.redirects.iter().cloned())
        .chain(
            untouched
                .iter()
                .flat_map(|j| redirects_for(&j.name, j.ip, &j.forwards)),
        );
    let vm_firewall = VmFirewall::new(options.ssh_port, redirects);
    let in_effect = state.vm.as_ref().map(|v| v.redirects.as_slice());
    let forwards = ForwardChanges::between(in_effect.unwrap_or_default(), &vm_firewall.redirects);

    Ok(Plan {
        vm: VmPlan {
            actions: diff::vm_actions(state.base.as_ref(), base.as_ref(), options.provision),
        },
        base,
        base_file,
        file: options.file.clone(),
        removals,
        jails,
        dns_changed: dns != dns_now,
        dns,
        vm_firewall,
        forwards,
        untouched: untouched
            .iter()
            .map(|j| Untouched {
                name: j.name.clone(),
                file: j.file.clone(),
            })
            .collect(),
    })
}

/// The base after the plan, and its file. A file with a `base` block applies it,
/// whoever applied the one before (the VM has one base). A file without one leaves the
/// recorded base alone, unless that base was this file's: then it goes.
fn effective_base(
    config: &Config,
    state: &State,
    owner: Option<&Path>,
) -> (Option<crate::config::Base>, Option<PathBuf>) {
    match (owner, &config.base) {
        (None, base) => (base.clone(), state.base_file.clone()),
        (Some(file), Some(base)) => (Some(base.clone()), Some(file.to_path_buf())),
        (Some(file), None) if state.base_file.as_deref() == Some(file) => (None, None),
        (Some(_), None) => (state.base.clone(), state.base_file.clone()),
    }
}

/// Jails recorded in state but absent from the config, dependents before what they
/// depend on, otherwise by name. Planning a file (`owner`), only the jails that file
/// deployed: those of other files, or of no recorded file, stay.
fn removals(config: &Config, state: &State, owner: Option<&Path>) -> Vec<JailRemoval> {
    let gone: BTreeMap<&JailName, _> = state
        .jails
        .iter()
        .filter(|(name, _)| config.jail(name.as_str()).is_none())
        .filter(|(_, j)| owner.is_none_or(|f| j.file.as_deref() == Some(f)))
        .collect();
    // Post-order over "depends on" among the gone jails gives dependencies first;
    // reversed, dependents come first.
    let mut done: BTreeSet<&JailName> = BTreeSet::new();
    let mut order: Vec<&JailName> = Vec::new();
    fn visit<'a>(
        name: &'a JailName,
        gone: &BTreeMap<&'a JailName, &'a crate::state::JailState>,
        done: &mut BTreeSet<&'a JailName>,
        order: &mut Vec<&'a JailName>,
    ) {
        if !done.insert(name) {
            return;
        }
        let jail = gone[name];
        for dep in jail.base.iter().chain(&jail.depends) {
            if let Some((key, _)) = gone.get_key_value(dep) {
                visit(key, gone, done, order);
            }
        }
        order.push(name);
    }
    for name in gone.keys().rev() {
        visit(name, &gone, &mut done, &mut order);
    }
    order
        .into_iter()
        .rev()
        .map(|name| JailRemoval {
            name: name.clone(),
            ip: gone[name].ip,
            reason: Reason::NotInConfig,
        })
        .collect()
}

#[cfg(test)]
mod tests;
