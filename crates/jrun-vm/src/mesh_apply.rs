//! Pairing changes on the vm runtime: the guest's per-jail `mesh_peers` pf tables and the
//! resolver's records, sent as one script ([`VmRuntime::apply_pairing`]) that touches
//! nothing else.

use jrun_core::net::{DnsRecords, JailFirewall};
use jrun_core::plan::{self, Options, Plan, Probe};
use jrun_core::runtime::RuntimeError;
use jrun_core::state::State;
use jrun_mesh::KeyStore;

use crate::runtime::VmRuntime;

fn other(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other {
        what: what.into(),
        message: e.to_string(),
    }
}

/// The plan of the recorded jails exactly as they are, with the given mesh sets and
/// records: what the pairing script renders from.
pub fn pairing_plan(
    state: &State,
    ssh_port: u16,
    firewalls: &[JailFirewall],
    records: &DnsRecords,
) -> Result<Plan, RuntimeError> {
    let config = state.as_config("state.json");
    let options = Options {
        ssh_port,
        ..Options::default()
    };
    let mut plan = plan::plan(&config, state, &Probe::default(), &options)
        .map_err(|e| other("planning the pairing", e))?;
    for jp in &mut plan.jails {
        if let Some(fw) = firewalls.iter().find(|f| f.jail == jp.jail.name) {
            jp.firewall = fw.clone();
        }
    }
    plan.dns = records.clone();
    Ok(plan)
}

/// Applies the sets and records in the running guest, rendering the jails recorded in
/// `state` (the caller's, which may not be saved yet: never re-read from disk here).
pub fn apply(
    vm: &VmRuntime,
    state: &State,
    firewalls: &[JailFirewall],
    records: &DnsRecords,
) -> Result<(), RuntimeError> {
    if vm.process().is_none() {
        return Err(RuntimeError::NotRunning);
    }
    let home = &vm.settings().home;
    let plan = pairing_plan(state, vm.settings().ssh_port, firewalls, records)?;
    let remote = vm
        .executor()
        .map_err(|e| other("reaching the VM over SSH", e))?;
    vm.apply_pairing(&plan, &KeyStore::open(home), &remote, &mut |_| {})
        .map_err(|e| other("applying the pairing in the VM", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::JailName;
    use jrun_core::state::JailState;
    use std::net::Ipv4Addr;

    #[test]
    fn the_plan_keeps_jails_and_takes_the_given_sets() {
        let mut state = State::default();
        let web = JailName::new("web").unwrap();
        state.jails.insert(
            web.clone(),
            JailState {
                name: web.clone(),
                ip: Ipv4Addr::new(10, 17, 89, 12),
                release: None,
                base: None,
                depends: vec![],
                forwards: vec![],
                mounts: vec![],
                execs: vec![],
                setup: vec![],
                deployed: true,
                file: None,
                from_jailrun: false,
                mesh_allow: None,
            },
        );
        let addr = "201::1".parse().unwrap();
        let fws = [JailFirewall::new(web.clone(), [addr])];
        let plan = pairing_plan(&state, 2222, &fws, &DnsRecords::default()).unwrap();
        assert_eq!(plan.jails.len(), 1);
        assert_eq!(plan.jails[0].ip, Ipv4Addr::new(10, 17, 89, 12));
        assert!(plan.jails[0].firewall.mesh_peers.contains(&addr));
        assert!(plan.removals.is_empty());
        assert!(plan.dns.is_empty());
    }
}
