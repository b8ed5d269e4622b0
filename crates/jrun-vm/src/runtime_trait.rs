//! [`Runtime`] for the vm runtime, so that `start`, `stop`, `status`, `ssh`, `cmd` and
//! live forward changes drive the VM like the native runtime.
//!
//! Deploying differs by design: the vm runtime applies a whole plan as one script over
//! one SSH connection ([`VmRuntime::up`]), not jail by jail. The per-jail primitives
//! (`deploy_jail`, `remove_jail`, `set_records`) therefore answer with an error that says
//! so; `jrun up` calls [`VmRuntime::up`] for this runtime.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::UNIX_EPOCH;

use jrun_core::config::{JailName, Proto};
use jrun_core::net::{in_subnet, DnsRecords, Redirect};
use jrun_core::runtime::{
    ensure_host_ports_free, InstanceStatus, JailNetwork, JailObserved, Runtime, RuntimeError,
    StartOutcome, Step,
};
use jrun_core::settings::RuntimeKind;
use jrun_core::state::{State, StateStore};

use crate::paths;
use crate::qemu::HostFwd;
use crate::render::{Script, Share};
use crate::runtime::{Started, VmRuntime, Wiring};
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

/// What the VM boots with, from the state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootWiring {
    /// Every forward besides SSH.
    pub forwards: Vec<HostFwd>,
    /// Which of `forwards` serve jail forwards.
    pub jail_forwards: Vec<HostFwd>,
    pub shares: Vec<Share>,
}

/// The forwards (besides SSH) and shares the VM should boot with, from the state.
pub fn boot_wiring(state: &State) -> BootWiring {
    let mut fwds = Vec::new();
    let mut jail_fwds = Vec::new();
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
        jail_fwds.extend(j.forwards.iter().map(|f| HostFwd {
            proto: f.proto,
            host_port: f.host,
            guest_port: f.host,
        }));
        j.mounts.iter().for_each(|m| share(&m.host));
    }
    jail_fwds.sort();
    jail_fwds.dedup();
    fwds.extend(jail_fwds.iter().copied());
    fwds.sort();
    fwds.dedup();
    BootWiring {
        forwards: fwds,
        jail_forwards: jail_fwds,
        shares,
    }
}

/// The wiring after the jail forwards become `redirects`: SSH and base forwards stay as
/// they are, whatever their ports; the jail forwards recorded in `wiring` are replaced.
pub fn with_jail_forwards(wiring: &Wiring, redirects: &[Redirect]) -> Wiring {
    let mut jail: Vec<HostFwd> = redirects
        .iter()
        .map(|r| HostFwd {
            proto: r.proto,
            host_port: r.host_port,
            guest_port: r.host_port,
        })
        .collect();
    jail.sort();
    jail.dedup();
    let mut hostfwds: Vec<HostFwd> = wiring
        .hostfwds
        .iter()
        .filter(|f| !wiring.jail_hostfwds.contains(f))
        .copied()
        .collect();
    for f in &jail {
        if !hostfwds.contains(f) {
            hostfwds.push(*f);
        }
    }
    Wiring {
        ssh_port: wiring.ssh_port,
        hostfwds,
        jail_hostfwds: jail,
        shares: wiring.shares.clone(),
    }
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

impl VmRuntime {
    /// [`Runtime::start`], telling `events` about the download, the boot and the wait for
    /// SSH. The VM boots with the forwards and shares recorded in state.
    pub fn start_reporting(
        &self,
        events: &mut dyn FnMut(crate::runtime::VmEvent),
    ) -> Result<StartOutcome, RuntimeError> {
        let boot = boot_wiring(&self.home_state()?);
        match self
            .start_wired(&boot.forwards, &boot.jail_forwards, &boot.shares, events)
            .map_err(|e| other("starting the VM", e))?
        {
            Started::AlreadyRunning => Ok(StartOutcome::AlreadyRunning),
            // The console is the user's to watch: `start --mode tty` attaches it at once.
            Started::Started { .. } if self.opts_display() == crate::qemu::DisplayMode::Tty => {
                Ok(StartOutcome::Started)
            }
            Started::Started { .. } => {
                events(crate::runtime::VmEvent::WaitingForSsh);
                if let Err(e) = self.wait_for_ssh() {
                    // A VM that never answered is no use half-started: it goes, and the
                    // next `start` boots it again (the disk and seed are kept).
                    let stopped = match self.process() {
                        Some(vm) => vm
                            .stop(std::time::Duration::from_secs(3), &mut |_| {})
                            .map(|_| "the VM was stopped".to_string())
                            .unwrap_or_else(|s| format!("stopping the VM failed too: {s}")),
                        None => "the VM is not running".to_string(),
                    };
                    return Err(other(
                        "waiting for the VM",
                        format!(
                            "{e}\n{stopped}; a slow machine may need a longer JRUN_VM_BOOT_TIMEOUT"
                        ),
                    ));
                }
                Ok(StartOutcome::Started)
            }
        }
    }
}

impl Runtime for VmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn start(&self) -> Result<StartOutcome, RuntimeError> {
        self.start_reporting(&mut |_| {})
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

    fn check_plan(&self, plan: &jrun_core::plan::Plan) -> Result<(), RuntimeError> {
        match crate::up::guest_port_clash(plan) {
            Some(why) => Err(RuntimeError::Other {
                what: "this forward cannot work in the VM".into(),
                message: why,
            }),
            None => Ok(()),
        }
    }

    fn check_host_ports(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        let held: BTreeSet<(Proto, u16)> = self
            .wiring()
            .ok()
            .flatten()
            .map(|w| w.hostfwds)
            .unwrap_or_default()
            .iter()
            .map(|f| (f.proto, f.host_port))
            .collect();
        ensure_host_ports_free(redirects, &held)
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
        crate::mesh_apply::apply(self, &self.home_state()?, firewalls, records)
    }

    fn apply_mesh_from(
        &self,
        state: &State,
        firewalls: &[jrun_core::net::JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError> {
        crate::mesh_apply::apply(self, state, firewalls, records)
    }

    fn set_forwards(&self, redirects: &[Redirect]) -> Result<(), RuntimeError> {
        let vm = self.process().ok_or(RuntimeError::NotRunning)?;
        let wiring = self
            .wiring()
            .map_err(|e| other("reading the VM wiring", e))?
            .ok_or(RuntimeError::NotRunning)?;
        let desired = with_jail_forwards(&wiring, redirects);
        let changes = HostFwdChanges::between(&wiring.hostfwds, &desired.hostfwds);
        let mut qmp = vm.qmp().map_err(|e| other("changing forwards", e))?;
        apply_forwards(&mut qmp, &changes).map_err(|e| other("changing forwards", e))?;
        self.save_wiring(&desired)
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
        // The node's own answer (yggdrasilctl -json getSelf: `"address": "200:…",`), which
        // pairing compares with the key jrun holds.
        let text = format!(
            "if jls -j {q} >/dev/null 2>&1; then echo exists; jexec {q} ifconfig -a inet 2>/dev/null | awk '/inet 10\\.17\\.89\\./ {{ print \"ip\", $2 }}'; jexec {q} yggdrasilctl -json -endpoint=unix://{sock} getSelf 2>/dev/null | tr -d ' \\t' | sed -n 's/^\"address\":\"\\([0-9a-f:]*\\)\".*/mesh \\1/p'; fi\n",
            sock = crate::render::YGG_ADMIN_SOCKET
        );
        let lines = self.query("looking at a jail", &text)?;
        Ok(JailObserved {
            exists: lines.iter().any(|l| l == "exists"),
            ip: lines
                .iter()
                .find_map(|l| l.strip_prefix("ip ")?.parse().ok()),
            mesh_address: lines
                .iter()
                .find_map(|l| l.strip_prefix("mesh ")?.parse().ok()),
        })
    }

    fn exec_in_jail(&self, jail: &JailName, argv: &[String]) -> Result<i32, RuntimeError> {
        let t = self.ssh_target().map_err(|_| RuntimeError::NotRunning)?;
        self.interactive(t.jail_command_argv(jail, argv, true))
    }

    /// The guest is FreeBSD: bash or zsh from the host's `$SHELL` need not exist there. The
    /// VM gives its user the login shell the seed set; a jail gets `/bin/sh`.
    fn shell(&self, jail: Option<&JailName>) -> Vec<String> {
        match jail {
            Some(_) => vec!["/bin/sh".into()],
            None => Vec::new(),
        }
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
    use std::net::TcpListener;

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
    fn ssh_opens_freebsd_shells_not_the_hosts() {
        std::env::set_var("SHELL", "/usr/bin/zsh");
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let jail = JailName::new("web").unwrap();
        assert_eq!(rt.shell(Some(&jail)), ["/bin/sh"]);
        assert!(rt.shell(None).is_empty(), "the VM user's own login shell");
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
            file: None,
            from_jailrun: false,
            mesh_allow: None,
        };
        state.jails.insert(web.clone(), js.clone());
        js.name = JailName::new("api").unwrap();
        js.forwards[0].host = 8000;
        state.jails.insert(js.name.clone(), js);
        let boot = boot_wiring(&state);
        assert_eq!(boot.jail_forwards, boot.forwards, "both come from jails");
        assert_eq!(
            boot.forwards,
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
        assert_eq!(boot.shares.len(), 1, "one share per host folder");
    }

    fn fwd(host_port: u16, guest_port: u16) -> HostFwd {
        HostFwd {
            proto: Proto::Tcp,
            host_port,
            guest_port,
        }
    }

    #[test]
    fn changing_jail_forwards_keeps_base_forwards_with_equal_ports() {
        // SSH, a base forward 9100 → 9100 (same shape as a jail forward), a base forward
        // 8443 → 443, and a jail forward on 8080.
        let wiring = Wiring {
            ssh_port: 2222,
            hostfwds: vec![
                fwd(2222, 22),
                fwd(9100, 9100),
                fwd(8443, 443),
                fwd(8080, 8080),
            ],
            jail_hostfwds: vec![fwd(8080, 8080)],
            shares: vec![],
        };
        let redirect = |port| Redirect {
            proto: Proto::Tcp,
            host_port: port,
            jail: JailName::new("web").unwrap(),
            jail_ip: Ipv4Addr::new(10, 17, 89, 10),
            jail_port: 80,
        };
        let after = with_jail_forwards(&wiring, &[redirect(8000)]);
        assert_eq!(
            after.hostfwds,
            [
                fwd(2222, 22),
                fwd(9100, 9100),
                fwd(8443, 443),
                fwd(8000, 8000)
            ]
        );
        assert_eq!(after.jail_hostfwds, [fwd(8000, 8000)]);
        let changes = HostFwdChanges::between(&wiring.hostfwds, &after.hostfwds);
        assert_eq!(changes.remove, [fwd(8080, 8080)]);
        assert_eq!(changes.add, [fwd(8000, 8000)]);
        // Dropping every jail forward leaves SSH and both base forwards.
        let none = with_jail_forwards(&after, &[]);
        assert_eq!(
            none.hostfwds,
            [fwd(2222, 22), fwd(9100, 9100), fwd(8443, 443)]
        );
        assert!(none.jail_hostfwds.is_empty());
        // The origin survives the wiring file.
        let back: Wiring = serde_json::from_str(&serde_json::to_string(&after).unwrap()).unwrap();
        assert_eq!(back, after);
    }
}
