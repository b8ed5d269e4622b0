//! Deploying one jail's network: ordered steps, each named in progress and errors, with
//! the jail's partial work undone when a step fails.

use jrun_core::config::JailName;
use jrun_core::runtime::{JailNetwork, RuntimeError, Step};

use crate::instance::InstanceInfo;
use crate::runtime::NativeRuntime;
use crate::{nft, plumbing, ygg};

/// Test-only fault injection: with `JRUN_FAULT=after:<step>` a debug build kills itself
/// with SIGKILL right after that step — exactly what `kill -9` does. Release builds ignore it.
pub fn fault_point(step: Step) {
    if cfg!(debug_assertions) {
        if let Ok(spec) = std::env::var("JRUN_FAULT") {
            if spec.strip_prefix("after:") == Some(step.as_str()) {
                eprintln!("JRUN_FAULT: killing this process after step {step}");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::this(),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
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
                    plumbing::delete_namespace(runner, &ns)?;
                }
                plumbing::create_jail_ns(runner, &ns).map_err(|e| e.to_string())
            })?;
            run(Step::Link, &mut || {
                plumbing::create_jail_link(runner, &rt.layout, &ns, jail.ip)
                    .map_err(|e| e.to_string())
            })?;
            run(Step::Address, &mut || {
                plumbing::configure_jail_address(runner, &ns, jail.ip).map_err(|e| e.to_string())
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
            run(Step::Mesh, &mut || mesh_node(rt, &jail.name))?;
        }
        Ok(())
    })();
    if result.is_err() && fresh {
        // Undo what this run created; the jail stays recorded as not deployed.
        let _ = crate::runtime::remove_jail_quietly(rt, &jail.name);
    }
    result
}

impl NativeRuntime {
    /// Whether the jail's network is already built at `ip`: a deploy then only updates it,
    /// and a failure must leave it (and its services) as it was rather than remove it.
    pub fn jail_built(&self, jail: &JailName, ip: std::net::Ipv4Addr) -> bool {
        let ns = self.layout.jail_ns(jail);
        plumbing::namespace_exists(&ns) && plumbing::jail_ready(self.runner.as_ref(), &ns, ip)
    }
}

fn mesh_node(rt: &NativeRuntime, jail: &JailName) -> Result<(), String> {
    let version = ygg::detect_version()?;
    let node = ygg::jail_node(&rt.layout, version, jail)?;
    let mut s = rt.read_supervision().map_err(|e| e.to_string())?;
    if s.children.contains(&node.child) {
        return Ok(());
    }
    s.upsert_child(node.child);
    rt.write_supervision(&s).map_err(|e| e.to_string())
}
