//! How many SSH connections and remote commands one `jrun up` costs on the vm runtime,
//! and how long the local work takes before the script starts on the guest.
//!
//! Uses the recording executor (no VM): a 10-jail stack, first a full deploy, then a
//! no-op `up` (state already matches). The baseline printed beside it is what a
//! per-step executor (one SSH round trip per step, as the original's playbook runs
//! did at best) would open for the same script, measured from the same script.

use std::path::Path;
use std::time::{Duration, Instant};

use jrun_core::config;
use jrun_core::plan::{plan, Options, Plan, Probe};
use jrun_core::state::State;
use jrun_mesh::KeyStore;
use jrun_vm::build::{from_plan, mesh_from_store};
use jrun_vm::render::{load_setup_sources, render_all};
use jrun_vm::ssh::RecordingRemote;
use jrun_vm::up::{apply, hostfwds, ForwardControl, HostFwdChanges};

const JAILS: usize = 10;

struct NoQmp;
impl ForwardControl for NoQmp {
    fn add(&mut self, _: &jrun_vm::qemu::HostFwd) -> Result<(), jrun_vm::qmp::QmpError> {
        Ok(())
    }
    fn remove(&mut self, _: &jrun_vm::qemu::HostFwd) -> Result<(), jrun_vm::qmp::QmpError> {
        Ok(())
    }
}

fn write_stack(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("setup.sh"), "#!/bin/sh\npkg install -y curl\n").unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut ucl = String::new();
    for i in 0..JAILS {
        ucl.push_str(&format!(
            "jail \"svc{i}\" {{\n  forward {{ http {{ host = {}; jail = 8080; }} }}\n  mount {{ src {{ host = \"./src\"; jail = \"/srv\"; }} }}\n  setup {{ deps {{ type = \"shell\"; file = \"setup.sh\"; }} }}\n  exec {{ app {{ cmd = \"python3 -m http.server 8080\"; dir = \"/srv\"; env {{ MODE = \"bench\"; }} }} }}\n}}\n",
            8000 + i
        ));
    }
    let path = dir.join("stack.ucl");
    std::fs::write(&path, ucl).unwrap();
    path
}

/// One `jrun up`'s local work, up to the script starting on the (recorded) guest.
fn up_once(cfg: &Path, state: &State, keys: &KeyStore, remote: &RecordingRemote) -> (Plan, usize) {
    let config = config::load(cfg, 2222).unwrap();
    let p = plan(&config, state, &Probe::default(), &Options::default()).unwrap();
    let mesh = mesh_from_store(&p, keys, Some("tls://relay.example:443")).unwrap();
    let spec = from_plan(&p, "15.0", Some(mesh), false).unwrap();
    let sources = load_setup_sources(&spec, Path::new("/nonexistent")).unwrap();
    let rendered = render_all(&spec, &sources).unwrap();
    let fwds = hostfwds(&p, 2222);
    let changes = HostFwdChanges::between(&fwds, &fwds);
    let mut started = false;
    apply(&rendered, &changes, &mut NoQmp, remote, &mut |_| {
        started = true
    })
    .unwrap();
    assert!(started);
    let steps = rendered.script.steps.len();
    (p, steps)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_stack(dir.path());
    let keys = KeyStore::open(&dir.path().join("home"));

    // First deploy: every jail is new.
    let remote = RecordingRemote::default();
    let mut state = State::default();
    let (first, steps) = up_once(&cfg, &state, &keys, &remote);
    let connections = remote.connections();
    println!("10-jail stack, first `jrun up`:");
    println!("  SSH connections: {connections} (target <= 2)");
    println!("  remote commands: {connections} (`doas sh -s`, the script on stdin)");
    println!(
        "  script steps: {steps}; a per-step executor would open {steps} connections ({:.0}x more)",
        steps as f64 / connections as f64
    );
    assert!(connections <= 2);

    // No-op: the state already matches the config.
    first.apply_to(&mut state);
    let mut times: Vec<Duration> = Vec::new();
    let remote = RecordingRemote::default();
    for _ in 0..30 {
        let t = Instant::now();
        let (p, _) = up_once(&cfg, &state, &keys, &remote);
        times.push(t.elapsed());
        assert!(p.is_empty(), "the second up plans nothing");
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = *times.last().unwrap();
    println!(
        "no-op `jrun up` (plan + render + executor start, {} runs):",
        times.len()
    );
    println!(
        "  local work: median {:.2} ms, max {:.2} ms (target < 100 ms)",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!(
        "  SSH connections per up: {}",
        remote.connections() / times.len()
    );
}
