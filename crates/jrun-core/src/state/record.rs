//! How a runtime records progress: each jail only after its actions succeeded, so a
//! failed `up` is retried by the next one.

use super::model::{JailState, State, VmState};
use crate::config::{Base, JailName};
use crate::plan::{JailPlan, Plan};

impl State {
    /// Before a jail's actions run: holds its planned address and marks it not deployed,
    /// so a crash or failure mid-way makes the next `up` redeploy it at the same address.
    pub fn begin_jail(&mut self, plan: &JailPlan) {
        let record = plan.record(false);
        self.jails.insert(record.name.clone(), record);
    }

    /// After every action of the jail succeeded: records it as deployed as planned.
    pub fn mark_deployed(&mut self, plan: &JailPlan) {
        let record = plan.record(true);
        self.jails.insert(record.name.clone(), record);
    }

    /// After a jail was removed: forgets it (and frees its address), and every pairing
    /// stops sharing it, so a new jail of the same name is not opened to those peers.
    pub fn forget_jail(&mut self, name: &JailName) -> Option<JailState> {
        for peer in self.peers.values_mut() {
            if let Some(shared) = &mut peer.shared {
                shared.remove(name);
            }
        }
        self.jails.remove(name)
    }

    /// After the VM-level actions and forwards of `plan` succeeded: records the base and
    /// the wiring in effect.
    pub fn record_vm(&mut self, plan: &Plan) {
        let base: Base = plan.base.clone().unwrap_or_default();
        self.vm = Some(VmState {
            ssh_port: plan.vm_firewall.ssh_port,
            redirects: plan.vm_firewall.redirects.clone(),
            base_forwards: base.forwards.clone(),
            shares: base.mounts.clone(),
        });
        self.base = plan.base.clone();
        self.base_file = plan.base.as_ref().and(plan.base_file.clone());
    }
}

impl JailPlan {
    /// The record of this jail once deployed as planned (or while it is being deployed).
    pub fn record(&self, deployed: bool) -> JailState {
        JailState {
            file: self.file.clone(),
            ..JailState::from_jail(&self.jail, self.ip, deployed)
        }
    }
}

impl Plan {
    /// The state after every action of this plan succeeded.
    pub fn apply_to(&self, state: &mut State) {
        for removal in &self.removals {
            state.forget_jail(&removal.name);
        }
        for jail in &self.jails {
            state.mark_deployed(jail);
        }
        state.record_vm(self);
    }
}
