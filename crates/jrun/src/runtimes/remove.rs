//! `down`: removing jails. The native runtime removes them together and then rewires
//! the records and forwards of the jails left; the vm runtime plans the state without them
//! and applies that plan in one script.

use jrun_core::config::JailName;
use jrun_core::runtime::{Runtime, Step};
use jrun_core::state::StateLock;
use miette::{miette, IntoDiagnostic};

use crate::progress::Progress;
use crate::wiring;

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// Removes `names` (the runtime's default stops at the first failure); then, whatever happened,
/// rewires the records and forwards for the jails still recorded (a jail that is gone
/// must not keep its name or its port), and reports the first error.
pub fn remove_and_rewire(
    rt: &(dyn Runtime + Sync),
    lock: &mut StateLock,
    names: &[JailName],
    ssh_port: u16,
    progress: &mut Progress,
) -> miette::Result<()> {
    let running = rt.instance().into_diagnostic()?.running;
    let mut first: Option<miette::Report> = None;
    for name in names {
        progress.step(name.as_str(), Step::Remove.as_str());
    }
    // The records as they will be once every jail is gone, set while they go: the
    // resolver's reload is mostly a wait on the resolver, and the removal mostly a wait on
    // the kernel, so together they cost about the longer of the two. Should a removal
    // fail, the records are set again below for the jails still recorded.
    let expected = running.then(|| {
        let mut after = lock.state.clone();
        for name in names {
            after.forget_jail(name);
        }
        wiring::records(&after)
    });
    // All at once: the runtime shares what it can between them (one supervisor reload).
    let (results, early) = std::thread::scope(|scope| {
        let early = expected
            .as_ref()
            .map(|records| scope.spawn(|| rt.set_records(records)));
        let results = rt.remove_jails(names);
        (results, early.map(|h| h.join()))
    });
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(()) => {
                lock.state.forget_jail(name);
                progress.done(name.as_str(), "removed");
            }
            Err(e) => {
                progress.done(name.as_str(), "failed");
                first.get_or_insert(miette!("cannot remove jail {name}: {e}"));
            }
        }
    }
    let mut keep_first = |r: miette::Result<()>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    keep_first(lock.save().into_diagnostic());
    if running {
        let records = wiring::records(&lock.state);
        match early {
            Some(Ok(Ok(()))) if expected.as_ref() == Some(&records) => {}
            _ => keep_first(rt.set_records(&records).into_diagnostic()),
        }
        let redirects = wiring::redirects(&lock.state, ssh_port);
        match rt.set_forwards(&redirects) {
            Ok(()) => {
                // Saved again only when that changed what the state records (a save is
                // two fsyncs, a good part of a `down`).
                if let Some(vm) = lock
                    .state
                    .vm
                    .as_mut()
                    .filter(|vm| vm.redirects != redirects)
                {
                    vm.redirects = redirects;
                    keep_first(lock.save().into_diagnostic());
                }
            }
            Err(e) => keep_first(Err(e).into_diagnostic()),
        }
    }
    first.map_or(Ok(()), Err)
}

/// The vm runtime applies whole plans: plan the state without the named jails (every
/// other jail exactly as recorded), so the plan removes those and changes nothing else.
pub fn down_vm(
    vm: &jrun_vm::runtime::VmRuntime,
    settings: &jrun_core::settings::Settings,
    lock: &mut jrun_core::state::StateLock,
    names: &[JailName],
) -> miette::Result<()> {
    let plan = plan_without(&lock.state, names, settings).into_diagnostic()?;
    vm.up(
        &plan,
        &jrun_vm::runtime::UpOptions::default(),
        &jrun_mesh::KeyStore::open(&settings.home),
        &mut |_| {},
    )
    .into_diagnostic()?;
    plan.apply_to(&mut lock.state);
    lock.save().into_diagnostic()?;
    Ok(())
}

/// The plan that removes `names` and keeps every other recorded jail as it is.
fn plan_without(
    state: &jrun_core::state::State,
    names: &[JailName],
    settings: &jrun_core::settings::Settings,
) -> Result<jrun_core::plan::Plan, jrun_core::plan::PlanError> {
    use jrun_core::plan::{self, Options, Probe};
    let mut config = state.as_config(settings.home.join("state.json"));
    config.jails.retain(|j| !names.contains(&j.name));
    let options = Options {
        ssh_port: settings.ssh_port,
        ..Options::default()
    };
    plan::plan(&config, state, &Probe::default(), &options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::{Forward, Jail, Proto};
    use jrun_core::state::{JailState, State};
    use jrun_core::state::{LockWait, StateStore};

    /// A deployed jail at 10.17.89.`last` forwarding host port 8000+`last` to its port 80.
    fn jail_state(name: &str, last: u8) -> JailState {
        let j = Jail {
            name: JailName::new(name).unwrap(),
            release: None,
            ip: None,
            base: None,
            depends: vec![],
            mounts: vec![],
            forwards: vec![Forward {
                name: "web".into(),
                proto: Proto::Tcp,
                host: 8000 + u16::from(last),
                jail: 80,
            }],
            execs: vec![],
            setup: vec![],
            mesh_allow: None,
        };
        JailState::from_jail(&j, std::net::Ipv4Addr::new(10, 17, 89, last), true)
    }

    #[test]
    fn vm_down_plans_only_the_removal() {
        let mut state = State::default();
        for j in [jail_state("web", 10), jail_state("db", 11)] {
            state.jails.insert(j.name.clone(), j);
        }
        let settings = jrun_core::settings::Settings::from_vars(
            &[("HOME".to_string(), "/h".to_string())]
                .into_iter()
                .collect(),
        )
        .unwrap();
        let plan = plan_without(&state, &[JailName::new("db").unwrap()], &settings).unwrap();
        assert_eq!(plan.removals.len(), 1);
        assert_eq!(plan.removals[0].name.as_str(), "db");
        let web = plan.jail("web").unwrap();
        assert!(web.actions.is_empty(), "{:?}", web.actions);
        assert_eq!(web.ip, std::net::Ipv4Addr::new(10, 17, 89, 10));
    }

    /// A running instance whose `remove_jail` fails for one jail; records every rewiring.
    struct FailsOn {
        jail: &'static str,
        removed: std::sync::Mutex<Vec<String>>,
        records: std::sync::Mutex<Vec<jrun_core::net::DnsRecords>>,
        forwards: std::sync::Mutex<Vec<Vec<jrun_core::net::Redirect>>>,
    }

    fn unused<T>() -> Result<T, jrun_core::runtime::RuntimeError> {
        Err(jrun_core::runtime::RuntimeError::Other {
            what: "test runtime".into(),
            message: "down must not call this".into(),
        })
    }

    impl Runtime for FailsOn {
        fn kind(&self) -> jrun_core::settings::RuntimeKind {
            jrun_core::settings::RuntimeKind::Native
        }
        fn start(
            &self,
        ) -> Result<jrun_core::runtime::StartOutcome, jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn stop(&self) -> Result<(), jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn instance(
            &self,
        ) -> Result<jrun_core::runtime::InstanceStatus, jrun_core::runtime::RuntimeError> {
            Ok(jrun_core::runtime::InstanceStatus {
                running: true,
                since: None,
                detail: None,
            })
        }
        fn probe_in_use(
            &self,
        ) -> Result<std::collections::BTreeSet<std::net::Ipv4Addr>, jrun_core::runtime::RuntimeError>
        {
            unused()
        }
        fn check_host_ports(
            &self,
            _: &[jrun_core::net::Redirect],
        ) -> Result<(), jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn deploy_jail(
            &self,
            _: &jrun_core::runtime::JailNetwork,
            _: &mut dyn FnMut(&JailName, Step),
        ) -> Result<(), jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn remove_jail(&self, jail: &JailName) -> Result<(), jrun_core::runtime::RuntimeError> {
            if jail.as_str() == self.jail {
                return Err(jrun_core::runtime::RuntimeError::Other {
                    what: "removing a jail".into(),
                    message: "injected".into(),
                });
            }
            self.removed.lock().unwrap().push(jail.to_string());
            Ok(())
        }
        fn set_records(
            &self,
            r: &jrun_core::net::DnsRecords,
        ) -> Result<(), jrun_core::runtime::RuntimeError> {
            self.records.lock().unwrap().push(r.clone());
            Ok(())
        }
        fn apply_mesh(
            &self,
            _: &[jrun_core::net::JailFirewall],
            _: &jrun_core::net::DnsRecords,
        ) -> Result<(), jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn set_forwards(
            &self,
            r: &[jrun_core::net::Redirect],
        ) -> Result<(), jrun_core::runtime::RuntimeError> {
            self.forwards.lock().unwrap().push(r.to_vec());
            Ok(())
        }
        fn jails_present(
            &self,
        ) -> Result<std::collections::BTreeSet<JailName>, jrun_core::runtime::RuntimeError>
        {
            unused()
        }
        fn observe_jail(
            &self,
            _: &JailName,
        ) -> Result<jrun_core::runtime::JailObserved, jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn exec_in_jail(
            &self,
            _: &JailName,
            _: &[String],
        ) -> Result<i32, jrun_core::runtime::RuntimeError> {
            unused()
        }
        fn exec_in_instance(&self, _: &[String]) -> Result<i32, jrun_core::runtime::RuntimeError> {
            unused()
        }
    }

    #[test]
    fn a_failed_removal_still_rewires_records_and_forwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let mut lock = store.lock(LockWait::No).unwrap();
        for (name, last) in [("a", 10u8), ("b", 11), ("c", 12)] {
            let js = jail_state(name, last);
            lock.state.jails.insert(js.name.clone(), js);
        }
        let rt = FailsOn {
            jail: "b",
            removed: Default::default(),
            records: Default::default(),
            forwards: Default::default(),
        };
        let names: Vec<JailName> = ["a", "b", "c"]
            .iter()
            .map(|n| JailName::new(*n).unwrap())
            .collect();
        let err =
            remove_and_rewire(&rt, &mut lock, &names, 2222, &mut Progress::new(true)).unwrap_err();
        assert!(err.to_string().contains("cannot remove jail b"), "{err}");
        // a went; the removal stopped at b, so b and c stay recorded.
        assert_eq!(*rt.removed.lock().unwrap(), ["a"]);
        let left: Vec<&str> = lock.state.jails.keys().map(|j| j.as_str()).collect();
        assert_eq!(left, ["b", "c"]);
        // The wiring was redone without a: no record, no forward on 8010.
        // The records were set for all three gone while they went, then again for b and c.
        let records = rt.records.lock().unwrap();
        assert_eq!(records.len(), 2);
        assert!(records[0].0.is_empty(), "{:?}", records[0]);
        let text: Vec<String> = records[1].0.iter().map(|r| r.name.to_string()).collect();
        assert!(!text.iter().any(|n| n.starts_with("a.")), "{text:?}");
        assert!(text.iter().any(|n| n.starts_with("b.")), "{text:?}");
        let forwards = rt.forwards.lock().unwrap();
        assert_eq!(forwards.len(), 1);
        let ports: Vec<u16> = forwards[0].iter().map(|r| r.host_port).collect();
        assert_eq!(ports, [8011, 8012]);
        // And the state on disk says so.
        drop(lock);
        let saved = store.read().unwrap();
        assert_eq!(saved.jails.len(), 2);
    }
}
