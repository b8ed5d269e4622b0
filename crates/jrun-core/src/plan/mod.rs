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

pub use ip::{assign_ips, Assigned, IpError, IpSource};
pub use model::{
    Action, JailPlan, JailRemoval, Op, Options, Plan, Probe, Reason, VmAction, VmOp, VmPlan,
};
pub use order::{dependencies, dependency_order, with_dependencies, OrderError};
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
    #[error("jail {jail} has ip = \"{ip}\", but jail {holder} holds that address and this partial run leaves it alone; run without naming jails, or name {holder} too")]
    HeldByUntouched {
        jail: JailName,
        ip: std::net::Ipv4Addr,
        holder: JailName,
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
    let scope: BTreeSet<JailName> = if options.only.is_empty() {
        config.jails.iter().map(|j| j.name.clone()).collect()
    } else {
        with_dependencies(config, &options.only)?
    };
    let base_forwards = config
        .base
        .as_ref()
        .map(|b| b.forwards.as_slice())
        .unwrap_or_default();
    check_host_ports(
        options.ssh_port,
        base_forwards,
        config
            .jails
            .iter()
            .map(|j| (&j.name, j.forwards.as_slice())),
    )?;
    let ips = assign_ips(config, &scope, state, probe)?;

    let peers: Vec<_> = state.mesh_addresses().collect();
    let jails: Vec<JailPlan> = order
        .into_iter()
        .filter(|j| scope.contains(&j.name))
        .map(|jail| {
            let assigned = &ips[&jail.name];
            JailPlan {
                jail: jail.clone(),
                ip: assigned.ip,
                redirects: redirects_for(&jail.name, assigned.ip, &jail.forwards),
                firewall: JailFirewall::new(jail.name.clone(), peers.iter().copied()),
                actions: diff::jail_actions(
                    jail,
                    assigned,
                    state.jails.get(&jail.name),
                    options.provision,
                ),
            }
        })
        .collect();

    let removals = if options.only.is_empty() {
        removals(config, state)
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
        base: config.base.clone(),
        vm: VmPlan {
            actions: diff::vm_actions(state.base.as_ref(), config.base.as_ref(), options.provision),
        },
        removals,
        jails,
        dns_changed: dns != dns_now,
        dns,
        vm_firewall,
        forwards,
    })
}

/// Jails recorded in state but absent from the config, dependents before what they
/// depend on, otherwise by name.
fn removals(config: &Config, state: &State) -> Vec<JailRemoval> {
    let gone: BTreeMap<&JailName, _> = state
        .jails
        .iter()
        .filter(|(name, _)| config.jail(name.as_str()).is_none())
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
