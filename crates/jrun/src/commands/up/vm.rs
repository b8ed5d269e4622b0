//! `up` on the vm runtime: the whole plan in one guest script.

use jrun_core::plan::Plan;
use jrun_core::state::StateLock;

use super::{reason_word, Args, Deployed, Outcome};

/// The vm runtime applies the whole plan in one script; jails are recorded deployed
/// only when it succeeded.
pub(super) fn execute_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    plan: &Plan,
    args: &Args,
    home: &std::path::Path,
    lock: &mut StateLock,
) -> Outcome {
    let mut outcome = Outcome::default();
    if plan.is_empty() {
        outcome.unchanged = plan.jails.iter().map(|j| j.name().to_string()).collect();
        return outcome;
    }
    for jp in plan.jails.iter().filter(|j| !j.actions.is_empty()) {
        lock.state.begin_jail(jp);
    }
    if let Err(e) = lock.save() {
        outcome.error = Some(e.to_string());
        return outcome;
    }
    let json = args.json;
    let applied = vm.up(
        plan,
        args.provision,
        &jrun_mesh::KeyStore::open(home),
        &mut |event| {
            if let jrun_vm::runtime::VmEvent::Restarting(why) = event {
                if !json {
                    eprintln!("restarting the VM: {why}");
                }
            }
        },
    );
    match applied {
        Ok(()) => {
            plan.apply_to(&mut lock.state);
            outcome.removed = plan.removals.iter().map(|r| r.name.to_string()).collect();
            for jp in &plan.jails {
                if jp.actions.is_empty() {
                    outcome.unchanged.push(jp.name().to_string());
                } else {
                    outcome.deployed.push(Deployed {
                        name: jp.name().to_string(),
                        ip: jp.ip,
                        reasons: jp.actions.iter().map(|a| reason_word(&a.reason)).collect(),
                    });
                }
            }
        }
        Err(e) => outcome.error = Some(e.to_string()),
    }
    if let Err(e) = lock.save() {
        outcome.error.get_or_insert(e.to_string());
    }
    outcome.changed = !outcome.deployed.is_empty() || !outcome.removed.is_empty();
    outcome
}
