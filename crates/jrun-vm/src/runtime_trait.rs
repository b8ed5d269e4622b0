//! [`Runtime`] for the vm runtime, so that `start`, `stop`, `status`, `ssh`, `cmd` and
//! live forward changes drive the VM like the native runtime.
//!
//! Deploying differs by design: the vm runtime applies a whole plan as one script over
//! one SSH connection ([`VmRuntime::up`]), not jail by jail. The per-jail primitives
//! (`deploy_jail`, `remove_jail`, `set_records`) therefore answer with an error that says
//! so; `jrun up` calls [`VmRuntime::up`] for this runtime.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::UNIX_EPOCH;

use jrun_core::config::{JailName, Proto};
use jrun_core::net::{in_subnet, DnsRecords, Redirect};
use jrun_core::runtime::{
    InstanceStatus, JailNetwork, JailObserved, Runtime, RuntimeError, StartOutcome, Step,
};
use jrun_core::settings::RuntimeKind;
use jrun_core::state::{State, StateStore};

use crate::paths;
use crate::qemu::HostFwd;
use crate::render::{Script, Share};
use crate::runtime::{Started, VmRuntime};
use crate::ssh::{Progress, RemoteExec};
use crate::up::{apply_forwards, HostFwdChanges};

fn other(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other {
        what: what.into(),
        message: e.to_string(),
    }
}

fn whole_plans(what: &str) -> RuntimeError {
    RuntimeError::Other {
        what: what.into(),
        message: "the vm runtime applies whole plans in one script; call VmRuntime::up".into(),
    }
}

/// The forwards (besides SSH) and shares the VM should boot with, from the state.
pub fn boot_wiring(state: &State) -> (Vec<HostFwd>, Vec<Share>) {
    let mut fwds = Vec::new();
    let mut shares: Vec<Share> = Vec::new();
    let mut share = |host: &std::path::Path| {
        let tag = paths::share_tag(host);
        if !shares.iter().any(|s| s.tag == tag) {
            shares.push(Share {
                tag,
                host: host.to_path_buf(),
            });
        }
    };
    if let Some(base) = &state.base {
        fwds.extend(base.forwards.iter().map(|f| HostFwd {
            proto: f.proto,
            host_port: f.host,
            guest_port: f.target,
        }));
        base.mounts.iter().for_each(|m| share(&m.host));
    }
    for j in state.jails.values() {
        fwds.extend(j.forwards.iter().map(|f| HostFwd {
            proto: f.proto,
            host_port: f.host,
            guest_port: f.host,
        }));
        j.mounts.iter().for_each(|m| share(&m.host));
    }
    fwds.sort();
    fwds.dedup();
    (fwds, shares)
}

impl VmRuntime {
    fn home_state(&self) -> Result<State, RuntimeError> {
        StateStore::new(&self.settings().home)
            .read()
            .map_err(|e| other("reading jrun's state", e))
    }

    /// Runs a small script in the guest and returns what it printed.
    fn query(&self, what: &str, text: &str) -> Result<Vec<String>, RuntimeError> {
        if self.process().is_none() {
            return Err(RuntimeError::NotRunning);
        }
        let ex = self.executor().map_err(|e| other(what, e))?;
        let script = Script {
            text: text.into(),
            steps: vec![],
        };
        let mut lines = Vec::new();
        ex.run_script(&script, &mut |p| {
            if let Progress::Output(l) = p {
                lines.push(l.to_string());
            }
        })
        .map_err(|e| other(what, e))?;
        Ok(lines)
    }

    fn interactive(&self, argv: Vec<String>) -> Result<i32, RuntimeError> {
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .map_err(|e| other("running ssh", e))?;
        Ok(status.code().unwrap_or(255))
    }
}

impl Runtime for VmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn start(&self) -> Result<StartOutcome, RuntimeError> {
        let (fwds, shares) = boot_wiring(&self.home_state()?);
        match self
            .start(&fwds, &shares, &mut |_| {})
            .map_err(|e| other("starting the VM", e))?
        {
            Started::AlreadyRunning => Ok(StartOutcome::AlreadyRunning),
            Started::Started { .. } => {
                self.wait_for_ssh()
                    .map_err(|e| other("waiting for the VM", e))?;
                Ok(StartOutcome::Started)
            }
        }
    }

    fn stop(&self) -> Result<(), RuntimeError> {
        VmRuntime::stop(self, &mut |_| {})
            .map(drop)
            .map_err(|e| other("stopping the VM", e))
    }

    fn instance(&self) -> Result<InstanceStatus, RuntimeError> {
        let running = self.process().is_some();
        let since = running
            .then(|| {
                std::fs::metadata(self.paths().pidfile())
                    .and_then(|m| m.modified())
                    .ok()
            })
            .flatten()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        Ok(InstanceStatus {
            running,
            since,
            detail: Some(self.paths().disk().display().to_string()),
        })
    }

    fn probe_in_use(&self) -> Result<BTreeSet<Ipv4Addr>, RuntimeError> {
        let lines = self.query(
            "probing the jail subnet",
            "arp -an -i bridge0 2>/dev/null || true\n",
        )?;
        Ok(lines
            .iter()
            .filter_map(|l| l.split(['(', ')']).nth(1)?.parse::<Ipv4Addr>().ok())
            .filter(|ip| in_subnet(*ip))
            .collect())
    }

    fn check_host_ports(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        let held: Vec<HostFwd> = self
            .wiring()
            .ok()
            .flatten()
            .map(|w| w.hostfwds)
            .unwrap_or_default();
        for r in redirects {
            if held
                .iter()
                .any(|f| f.proto == r.proto && f.host_port == r.host_port)
            {
                continue;
            }
            let free = match r.proto {
                Proto::Tcp => TcpListener::bind((Ipv4Addr::LOCALHOST, r.host_port)).is_ok(),
                Proto::Udp => UdpSocket::bind((Ipv4Addr::LOCALHOST, r.host_port)).is_ok(),
            };
            if !free {
                return Err(RuntimeError::PortBusy {
                    proto: r.proto.to_string(),
                    port: r.host_port,
                });
            }
        }
        Ok(())
    }

    fn deploy_jail(
        &self,
        _: &JailNetwork,
        _: &mut dyn FnMut(&JailName, Step),
    ) -> Result<(), RuntimeError> {
        Err(whole_plans("deploying a jail"))
    }

    fn remove_jail(&self, _: &JailName) -> Result<(), RuntimeError> {
        Err(whole_plans("removing a jail"))
    }

    fn set_records(&self, _: &DnsRecords) -> Result<(), RuntimeError> {
        Err(whole_plans("changing DNS records"))
    }

    fn apply_mesh(
        &self,
        firewalls: &[jrun_core::net::JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError> {
        crate::mesh_apply::apply(self, firewalls, records)
    }

    fn set_forwards(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        let vm = self.process().ok_or(RuntimeError::NotRunning)?;
        let mut wiring = self
            .wiring()
            .map_err(|e| other("reading the VM wiring", e))?
            .ok_or(RuntimeError::NotRunning)?;
        // Keep SSH and base forwards; replace the jail forwards (host P → guest P).
        let jail_ports: BTreeSet<(Proto, u16)> = wiring
            .hostfwds
            .iter()
            .filter(|f| f.host_port == f.guest_port && f.host_port != wiring.ssh_port)
            .map(|f| (f.proto, f.host_port))
            .collect();
        let mut desired: Vec<HostFwd> = wiring
            .hostfwds
            .iter()
            .filter(|f| !jail_ports.contains(&(f.proto, f.host_port)))
            .copied()
            .collect();
        desired.extend(redirects.iter().map(|r| HostFwd {
            proto: r.proto,
            host_port: r.host_port,
            guest_port: r.host_port,
        }));
        let changes = HostFwdChanges::between(&wiring.hostfwds, &desired);
        let mut qmp = vm.qmp().map_err(|e| other("changing forwards", e))?;
        apply_forwards(&mut qmp, &changes).map_err(|e| other("changing forwards", e))?;
        wiring.hostfwds = desired;
        self.save_wiring(&wiring)
            .map_err(|e| other("saving the VM wiring", e))
    }

    fn jails_present(&self) -> Result<BTreeSet<JailName>, RuntimeError> {
        let lines = self.query("listing jails", "jls name\n")?;
        Ok(lines
            .iter()
            .filter_map(|l| JailName::new(l.trim()).ok())
            .collect())
    }

    fn observe_jail(&self, jail: &JailName) -> Result<JailObserved, RuntimeError> {
        let q = crate::quote::sh_quote(jail.as_str());
        let text = format!(
            "if jls -j {q} >/dev/null 2>&1; then echo exists; jexec {q} ifconfig -a inet 2>/dev/null | awk '/inet 10\\.17\\.89\\./ {{ print \"ip\", $2 }}'; fi\n"
        );
        let lines = self.query("looking at a jail", &text)?;
        Ok(JailObserved {
            exists: lines.iter().any(|l| l == "exists"),
            ip: lines
                .iter()
                .find_map(|l| l.strip_prefix("ip ")?.parse().ok()),
            mesh_address: None,
        })
    }

    fn exec_in_jail(&self, jail: &JailName, argv: &[String]) -> Result<i32, RuntimeError> {
        let t = self.ssh_target().map_err(|_| RuntimeError::NotRunning)?;
        self.interactive(t.jail_command_argv(jail, argv, true))
    }

    fn exec_in_instance(&self, argv: &[String]) -> Result<i32, RuntimeError> {
        let t = self.ssh_target().map_err(|_| RuntimeError::NotRunning)?;
        self.interactive(t.command_argv(argv, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::{Forward, Mount};
    use jrun_core::state::JailState;

    fn runtime(home: &std::path::Path) -> VmRuntime {
        let vars = [("JRUN_HOME".to_string(), home.display().to_string())]
            .into_iter()
            .collect();
        let settings = jrun_core::settings::Settings::from_vars(&vars).unwrap();
        VmRuntime::new(
            &settings,
            std::sync::Arc::new(jrun_core::exec::SystemRunner),
            Default::default(),
        )
    }

    #[test]
    fn a_stopped_vm_reports_so() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        assert_eq!(rt.kind(), RuntimeKind::Vm);
        assert!(!rt.instance().unwrap().running);
        assert!(matches!(rt.jails_present(), Err(RuntimeError::NotRunning)));
        assert!(matches!(
            rt.set_forwards(&[]),
            Err(RuntimeError::NotRunning)
        ));
        let err = rt.remove_jail(&JailName::new("web").unwrap()).unwrap_err();
        assert!(err.to_string().contains("VmRuntime::up"), "{err}");
    }

    #[test]
    fn busy_host_ports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let r = |port| Redirect {
            proto: Proto::Tcp,
            host_port: port,
            jail: JailName::new("web").unwrap(),
            jail_ip: Ipv4Addr::new(10, 17, 89, 10),
            jail_port: 80,
        };
        let err = rt.check_host_ports(&[r(port)]).unwrap_err();
        assert!(matches!(err, RuntimeError::PortBusy { port: p, .. } if p == port));
        drop(held);
        rt.check_host_ports(&[r(port)]).unwrap();
    }

    #[test]
    fn boots_with_the_forwards_and_shares_in_state() {
        let mut state = State::default();
        let web = JailName::new("web").unwrap();
        let mut js = JailState {
            name: web.clone(),
            ip: Ipv4Addr::new(10, 17, 89, 10),
            release: None,
            base: None,
            depends: vec![],
            forwards: vec![Forward {
                name: "http".into(),
                proto: Proto::Tcp,
                host: 8080,
                jail: 80,
            }],
            mounts: vec![Mount {
                name: "src".into(),
                host: "/h/src".into(),
                jail: "/srv".into(),
            }],
            execs: vec![],
            setup: vec![],
            deployed: true,
        };
        state.jails.insert(web.clone(), js.clone());
        js.name = JailName::new("api").unwrap();
        js.forwards[0].host = 8000;
        state.jails.insert(js.name.clone(), js);
        let (fwds, shares) = boot_wiring(&state);
        assert_eq!(
            fwds,
            [
                HostFwd {
                    proto: Proto::Tcp,
                    host_port: 8000,
                    guest_port: 8000
                },
                HostFwd {
                    proto: Proto::Tcp,
                    host_port: 8080,
                    guest_port: 8080
                }
            ]
        );
        assert_eq!(shares.len(), 1, "one share per host folder");
    }
}
