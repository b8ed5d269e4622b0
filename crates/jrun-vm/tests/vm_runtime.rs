//! The vm runtime's own flow. `start` for real: image from a local mirror, seed, UEFI
//! firmware, QEMU with QMP; the SSH port moves when taken; `stop` escalates when the
//! guest (here: firmware with no OS) ignores the power button. `up` with recorded QMP
//! and SSH sides: forwards change live, one script per run.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use jrun_core::config::Proto;
use jrun_core::exec::SystemRunner;
use jrun_core::plan::{plan, Options, Probe};
use jrun_core::settings::Settings;
use jrun_core::state::State;
use jrun_mesh::KeyStore;
use jrun_vm::qemu::launch::StopOutcome;
use jrun_vm::qemu::HostFwd;
use jrun_vm::runtime::{Started, VmEvent, VmOptions, VmRuntime, Wiring};
use jrun_vm::ssh::RecordingRemote;
use jrun_vm::up::RecordingForwards;

fn settings(home: &std::path::Path, ssh_port: u16) -> Settings {
    let vars: HashMap<String, String> = [
        ("JRUN_HOME", home.to_str().unwrap().to_string()),
        ("JRUN_SSH_PORT", ssh_port.to_string()),
        ("JRUN_QEMU_MEMORY", "256".into()),
        ("JRUN_QEMU_CPUS", "1".into()),
        ("JRUN_QEMU_DISK_SIZE", "64M".into()),
        ("JRUN_BSD_VERSION", "15.0".into()),
        ("JRUN_RELAY_PEER", "tcp://127.0.0.1:9".into()),
        ("JRUN_RELAY", "http://127.0.0.1:9".into()),
        ("JRUN_BSD_MIRROR", "http://127.0.0.1:9".into()),
        ("JRUN_GITHUB_RAW", "http://127.0.0.1:9".into()),
        // This test proves the wiring, not the speed: TCG runs on any host (a /dev/kvm
        // can exist and still hang guests).
        ("JRUN_QEMU_ACCEL", "tcg".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Settings::from_vars(&vars).unwrap()
}

/// Kills the VM (by the pid it recorded) if the test ends before `stop` did.
struct KillOnDrop(jrun_vm::runtime::VmPaths);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(vm) = jrun_vm::qemu::VmProcess::from_pidfile(&self.0.pidfile(), &self.0.qmp()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(vm.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn start_boots_from_the_mirror_image_and_stop_escalates() {
    let dir = tempfile::tempdir().unwrap();
    // A blank disk: the firmware finds nothing to boot, which is enough to prove the wiring.
    let server = common::http::serve_image(&vec![0u8; 1 << 20]);

    // The configured SSH port is taken: the VM's moves to the next free one.
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let opts = VmOptions {
        mirror: server.base.clone(),
        stop_deadline: Duration::from_secs(3),
        ..VmOptions::default()
    };
    let rt = VmRuntime::new(&settings(dir.path(), port), Arc::new(SystemRunner), opts);
    let free = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fwd = HostFwd {
        proto: Proto::Tcp,
        host_port: free,
        guest_port: 8080,
    };

    let mut downloads = 0;
    let _guard = KillOnDrop(rt.paths().clone());
    let started = rt.start(&[fwd], &[], &mut |e| {
        if let VmEvent::Download(_) = e {
            downloads += 1
        }
    });
    let started = started.unwrap();
    let Started::Started { ssh_port } = started else {
        panic!("{started:?}")
    };
    assert!(ssh_port > port, "moved past the taken port");
    assert!(downloads > 0);
    let p = rt.paths();
    assert_eq!(
        std::fs::metadata(p.disk()).unwrap().len(),
        64 << 20,
        "grown to JRUN_QEMU_DISK_SIZE"
    );
    assert!(p.seed().exists() && p.ssh_key().exists());
    let w: Wiring = rt.wiring().unwrap().unwrap();
    assert_eq!(w.ssh_port, ssh_port);
    assert_eq!(w.hostfwds.len(), 2);
    let vm = rt.process().expect("running");
    assert!(vm.qmp().unwrap().running().unwrap());
    // JRUN_QEMU_ACCEL reached QEMU in place of the platform default.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", vm.pid)).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let machine = args.iter().position(|a| *a == b"-machine").unwrap();
    assert!(
        args[machine + 1].ends_with(b",accel=tcg"),
        "{}",
        String::from_utf8_lossy(args[machine + 1])
    );
    assert_eq!(
        rt.start(&[], &[], &mut |_| {}).unwrap(),
        Started::AlreadyRunning
    );
    // The forwards are live in QEMU: the host ports are held.
    assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, ssh_port)).is_err());

    let outcome = rt.stop(&mut |_| {}).unwrap();
    assert!(
        matches!(outcome, StopOutcome::PoweredDown | StopOutcome::Quit),
        "{outcome:?}"
    );
    assert!(!vm.is_alive());
    assert!(rt.process().is_none());
    rt.purge().unwrap();
    assert!(!p.dir.exists());
}

#[test]
fn up_changes_forwards_live_and_sends_one_script() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stack.ucl");
    std::fs::write(
        &cfg,
        "jail \"web\" {\n  forward { http { host = 8080; jail = 80; } }\n}\n",
    )
    .unwrap();
    let s = settings(dir.path(), 2222);
    let rt = VmRuntime::new(&s, Arc::new(SystemRunner), VmOptions::default());
    std::fs::create_dir_all(&rt.paths().dir).unwrap();
    // The running VM has SSH and an old forward on 9000.
    let old = Wiring {
        ssh_port: 2222,
        hostfwds: vec![
            HostFwd {
                proto: Proto::Tcp,
                host_port: 2222,
                guest_port: 22,
            },
            HostFwd {
                proto: Proto::Tcp,
                host_port: 9000,
                guest_port: 9000,
            },
        ],
        jail_hostfwds: vec![HostFwd {
            proto: Proto::Tcp,
            host_port: 9000,
            guest_port: 9000,
        }],
        shares: vec![],
    };
    std::fs::write(rt.paths().wiring(), serde_json::to_vec(&old).unwrap()).unwrap();

    let config = jrun_core::config::load(&cfg, 2222).unwrap();
    let p = plan(
        &config,
        &State::default(),
        &Probe::default(),
        &Options::default(),
    )
    .unwrap();
    let keys = KeyStore::open(dir.path());
    let mut qmp = RecordingForwards::default();
    let remote = RecordingRemote::default();
    let mut steps = 0;
    rt.up_with(
        &p,
        &Default::default(),
        &keys,
        &mut qmp,
        &remote,
        &mut |e| {
            if let VmEvent::Script(_) = e {
                steps += 1
            }
        },
    )
    .unwrap();
    assert_eq!(
        qmp.0,
        ["remove tcp:127.0.0.1:9000", "add tcp:127.0.0.1:8080-:8080"]
    );
    assert_eq!(remote.connections(), 1);
    assert!(steps > 4);
    let w = rt.wiring().unwrap().unwrap();
    assert_eq!(
        w.hostfwds[1],
        HostFwd {
            proto: Proto::Tcp,
            host_port: 8080,
            guest_port: 8080
        }
    );
    assert_eq!(
        w.jail_hostfwds,
        w.hostfwds[1..],
        "recorded as a jail forward"
    );
    // The script carries the redirect to the jail's port.
    assert!(remote.scripts()[0].contains("port 8080 -> 10.17.89.10 port 80"));

    // Again with nothing changed: QEMU is not touched, the script is sent once more.
    let mut qmp2 = RecordingForwards::default();
    rt.up_with(
        &p,
        &Default::default(),
        &keys,
        &mut qmp2,
        &remote,
        &mut |_| {},
    )
    .unwrap();
    assert!(qmp2.0.is_empty());
    assert_eq!(remote.connections(), 2);

    // With a wait asked for, the script carries it and its readiness report becomes rows
    // (not output lines).
    let reporting = Reporting(
        "jrun-ready web http 2\njrun-notready web worker 30 its process is not running\njrun-log boom\nplain output",
        Default::default(),
    );
    let mut shown = vec![];
    let rows = rt
        .up_with(
            &p,
            &jrun_vm::runtime::UpOptions {
                provision: false,
                wait: Some(Duration::from_secs(30)),
            },
            &keys,
            &mut RecordingForwards::default(),
            &reporting,
            &mut |e| {
                if let VmEvent::Script(jrun_vm::ssh::Progress::Output(l)) = e {
                    shown.push(l.to_string())
                }
            },
        )
        .unwrap();
    assert!(reporting.1.lock().unwrap()[0].contains("jrun_ready_timeout=30\n"));
    assert_eq!(shown, ["plain output"]);
    assert_eq!(rows.len(), 2);
    assert!(rows[0].ready && rows[0].exec == "http" && rows[0].waited_ms == 2000);
    let err = rows[1].error.as_deref().unwrap();
    assert!(
        err.contains("web/worker was not ready after 30s (its process is not running)")
            && err.ends_with("boom"),
        "{err}"
    );
}

/// A guest that answers every script with these lines.
struct Reporting(&'static str, std::sync::Mutex<Vec<String>>);

impl jrun_vm::ssh::RemoteExec for Reporting {
    fn run_script(
        &self,
        script: &jrun_vm::render::Script,
        progress: &mut dyn FnMut(jrun_vm::ssh::Progress),
    ) -> Result<(), jrun_vm::ssh::ScriptError> {
        self.1.lock().unwrap().push(script.text.clone());
        for line in self.0.lines() {
            progress(jrun_vm::ssh::Progress::Output(line));
        }
        Ok(())
    }
}
