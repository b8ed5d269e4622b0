//! The instance-wide wiring (DNS records, host forwards) implied by a state: used whenever
//! jails leave or a run stops part-way, so the resolver and forwards always describe
//! exactly the jails that exist.

use jrun_core::net::{redirects_for, DnsRecords, Redirect, VmFirewall};
use jrun_core::state::State;

/// Every record of the deployed jails and of every pairing.
pub fn records(state: &State) -> DnsRecords {
    let local = state
        .jails
        .values()
        .filter(|j| j.deployed)
        .map(|j| (&j.name, j.ip));
    let remote = state
        .remote_jails()
        .map(|(code, j)| (code, &j.name, j.ygg_address));
    DnsRecords::build(local, remote)
}

/// Every forward of the deployed jails, sorted as the VM firewall keeps them.
pub fn redirects(state: &State, ssh_port: u16) -> Vec<Redirect> {
    let all = state
        .jails
        .values()
        .filter(|j| j.deployed)
        .flat_map(|j| redirects_for(&j.name, j.ip, &j.forwards));
    VmFirewall::new(ssh_port, all).redirects
}
