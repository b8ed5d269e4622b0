//! `up` on the vm runtime: the whole plan in one guest script.

use jrun_core::plan::Plan;
use jrun_core::state::StateLock;

use jrun_vm::runtime::{UpOptions, VmEvent};
use jrun_vm::ssh::Progress as ScriptProgress;

use super::{reason_word, Args, Deployed, Outcome};
use crate::progress::Progress;

/// The vm runtime applies the whole plan in one script; jails are recorded deployed
/// only when it succeeded. The script itself waits for the services it (re)started and
/// reports their readiness; a service not ready fails `up` after the jails are recorded.
pub(super) fn execute_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    plan: &Plan,
    args: &Args,
    home: &std::path::Path,
    lock: &mut StateLock,
    progress: &mut Progress,
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
    let opts = UpOptions {
        provision: args.provision,
        wait: (!args.no_wait).then_some(args.wait_timeout),
    };
    let applied = vm.up(
        plan,
        &opts,
        &jrun_mesh::KeyStore::open(home),
        &mut |event| match event {
            VmEvent::Restarting(why) => progress.step("vm", &format!("restarting: {why}")),
            VmEvent::Script(ScriptProgress::Step { info, .. }) => {
                let who = info.jail.as_ref().map_or("vm", |j| j.as_str());
                progress.step(who, &info.name);
            }
            _ => {}
        },
    );
    match applied {
        Ok(rows) => {
            if let Some(e) = jrun_vm::ready::ReadyLines::failure(&rows) {
                outcome.error = Some(format!(
                    "{e}\nThe jails are up; `jrun status <jail>` shows them. Fix the service and run `jrun up` again, or pass a longer --wait-timeout."
                ));
            }
            outcome.services = rows;
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
