//! Deploying one jail's network: ordered steps, each named in progress and errors, with
//! the jail's partial work undone when a step fails.

use jrun_core::config::JailName;
use jrun_core::runtime::{JailNetwork, Runtime, RuntimeError, Step};

use crate::instance::InstanceInfo;
use crate::runtime::NativeRuntime;
use crate::{nft, plumbing, ygg};

/// Test-only: dies right after `step` when `JRUN_FAULT=after:<step>` (see
/// [`jrun_core::fault`]).
pub fn fault_point(step: Step) {
    jrun_core::fault::after(step.as_str());
}

/// Test-only: with `JRUN_FAULT=fail:<step>` a debug build makes that step fail, to prove
/// the rollback. Release builds ignore it.
fn injected_failure(step: Step) -> Result<(), String> {
    if cfg!(debug_assertions)
        && std::env::var("JRUN_FAULT")
            .ok()
            .as_deref()
            .and_then(|s| s.strip_prefix("fail:"))
            == Some(step.as_str())
    {
        return Err(format!("injected failure (JRUN_FAULT=fail:{step})"));
    }
    Ok(())
}

pub fn deploy_jail(
    rt: &NativeRuntime,
    info: &InstanceInfo,
    jail: &JailNetwork,
    progress: &mut dyn FnMut(&JailName, Step),
) -> Result<(), RuntimeError> {
    let ns = rt.layout.jail_ns(&jail.name);
    let runner = rt.runner.as_ref();
    let existed = plumbing::namespace_exists(&ns);
    let fresh = !rt.jail_built(&jail.name, jail.ip);
    let mut run = |step: Step, f: &mut dyn FnMut() -> Result<(), String>| {
        progress(&jail.name, step);
        injected_failure(step)
            .and_then(|()| f())
            .map_err(|message| RuntimeError::Step {
                jail: jail.name.clone(),
                step,
                message,
            })?;
        fault_point(step);
        Ok::<(), RuntimeError>(())
    };
    let result = (|| {
        if fresh {
            // Half-made leftovers (an interrupted run) are cleared, then built again.
            run(Step::Namespace, &mut || {
                if existed {
                    plumbing::delete_namespace(&ns)?;
                }
                plumbing::create_jail_ns(&ns).map_err(|e| e.to_string())
            })?;
            run(Step::Link, &mut || {
                plumbing::create_jail_link(&rt.layout, &ns, jail.ip).map_err(|e| e.to_string())
            })?;
            run(Step::Address, &mut || {
                plumbing::configure_jail_address(&rt.layout, &ns, jail.ip)
                    .map_err(|e| e.to_string())
            })?;
        }
        run(Step::Resolver, &mut || {
            plumbing::write_resolv_conf(&ns)
                .map_err(|e| format!("cannot write /etc/netns/{ns}/resolv.conf: {e}"))
        })?;
        run(Step::Firewall, &mut || {
            plumbing::nft_apply(runner, &ns, &nft::render_jail(&jail.firewall))
                .map_err(|e| e.to_string())
        })?;
        if info.ygg_version.is_some() {
            run(Step::Mesh, &mut || mesh_node(rt, info, &jail.name))?;
        }
        Ok(())
    })();
    match result {
        // Undo what this run created; the jail stays recorded as not deployed.
        Err(e) if fresh => match rt.remove_jail(&jail.name) {
            Ok(()) => Err(e),
            Err(undo) => Err(with_failed_rollback(e, &jail.name, &undo)),
        },
        other => other,
    }
}

/// `err` with the news that undoing the jail's partial work failed too (named, with why).
pub(crate) fn with_failed_rollback(
    err: RuntimeError,
    jail: &JailName,
    undo: &RuntimeError,
) -> RuntimeError {
    let note = format!(
        "rolling back jail `{jail}` failed too ({undo}); `jrun up` again or `jrun down {jail}` clears what is left"
    );
    match err {
        RuntimeError::Step {
            jail,
            step,
            message,
        } => RuntimeError::Step {
            jail,
            step,
            message: format!("{message}; {note}"),
        },
        other => RuntimeError::Other {
            what: other.to_string(),
            message: note,
        },
    }
}

impl NativeRuntime {
    /// Whether anything of the jail's network namespace is left (after a rollback).
    pub fn jail_namespace_exists(&self, jail: &JailName) -> bool {
        plumbing::namespace_exists(&self.layout.jail_ns(jail))
    }

    /// Whether the jail's network is already built at `ip`: a deploy then only updates it,
    /// and a failure must leave it (and its services) as it was rather than remove it.
    pub fn jail_built(&self, jail: &JailName, ip: std::net::Ipv4Addr) -> bool {
        let ns = self.layout.jail_ns(jail);
        plumbing::namespace_exists(&ns) && plumbing::jail_ready(&ns, ip)
    }
}

/// The installed Yggdrasil's version, asked once per process: asking runs the binary, and
/// an `up` of many jails would otherwise run it once per jail.
fn ygg_version() -> Result<jrun_mesh::yggdrasil::YggVersion, String> {
    static VERSION: std::sync::OnceLock<Result<jrun_mesh::yggdrasil::YggVersion, String>> =
        std::sync::OnceLock::new();
    VERSION.get_or_init(ygg::detect_version).clone()
}

/// Writes the jail's node config; the node starts with the others of this run in
/// [`NativeRuntime::start_mesh_nodes`].
fn mesh_node(rt: &NativeRuntime, info: &InstanceInfo, jail: &JailName) -> Result<(), String> {
    let version = match info.ygg_version_unchanged() {
        Some(v) => v,
        None => ygg_version()?,
    };
    let node = ygg::jail_node(&rt.layout, version, jail)?;
    rt.pending_nodes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((jail.clone(), node.child));
    Ok(())
}

impl NativeRuntime {
    /// Starts the Yggdrasil nodes of the jails deployed since the last call, all in one
    /// spec write and one supervisor reload (the reload spawns them and answers once they
    /// are started), instead of a write and a reload per jail. Each such jail with its
    /// node's failure, if any. Reloaded even when the spec is unchanged, so a node that
    /// could not start before is retried and its failure reported; others' failures are
    /// not these jails'.
    pub fn start_mesh_nodes(&self) -> Vec<(JailName, Result<(), RuntimeError>)> {
        let nodes = std::mem::take(
            &mut *self
                .pending_nodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if nodes.is_empty() {
            return Vec::new();
        }
        let _spec = self.lock_specs();
        let failed = |jail: &JailName, message: String| RuntimeError::Step {
            jail: jail.clone(),
            step: Step::Mesh,
            message,
        };
        let reloaded = self.read_supervision().and_then(|mut s| {
            for (_, child) in &nodes {
                s.upsert_child(child.clone());
            }
            self.write_supervision(&s)
        });
        nodes
            .into_iter()
            .map(|(jail, child)| {
                let result = match &reloaded {
                    Err(e) => Err(failed(&jail, e.to_string())),
                    Ok(resp) => match resp.items_error(|key| key == child.name) {
                        None => Ok(()),
                        Some(e) => Err(failed(
                            &jail,
                            format!("the supervisor could not start its Yggdrasil node: {e}"),
                        )),
                    },
                };
                (jail, result)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rollback_is_reported_with_the_jail_and_the_step() {
        let jail = JailName::new("web").unwrap();
        let err = RuntimeError::Step {
            jail: jail.clone(),
            step: Step::Firewall,
            message: "nft said no".into(),
        };
        let undo = RuntimeError::Other {
            what: "cannot delete jrun-x-web".into(),
            message: "busy".into(),
        };
        let text = with_failed_rollback(err, &jail, &undo).to_string();
        assert!(
            text.contains("jail `web`, step firewall: nft said no"),
            "{text}"
        );
        assert!(
            text.contains("rolling back jail `web` failed too (cannot delete jrun-x-web: busy)"),
            "{text}"
        );
        let text = with_failed_rollback(RuntimeError::NotRunning, &jail, &undo).to_string();
        assert!(text.contains("the instance is not running"), "{text}");
        assert!(
            text.contains("rolling back jail `web` failed too"),
            "{text}"
        );
    }
}
