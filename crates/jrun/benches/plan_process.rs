//! The whole `jrun plan` process for 200 jails against a matching state (target: under
//! 50 ms), timed against `jrun --version` in the same run as the baseline for process
//! start-up. Run with `cargo bench -p jrun --bench plan_process`.

#[path = "../tests/local_env/mod.rs"]
mod local_env;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jrun_core::config;
use jrun_core::plan::{plan, Options, Probe};
use jrun_core::state::{LockWait, StateStore};

const RUNS: usize = 40;
const TARGET: Duration = Duration::from_millis(50);

fn main() {
    // `cargo bench` passes filter arguments such as `--bench`; this binary takes none.
    let home = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/plan/bench-200.ucl");
    let fixture = fixture.canonicalize().unwrap();

    // A state that matches the config, as after a successful `jrun up`.
    let cfg = config::load(&fixture, 2222).unwrap();
    let store = StateStore::new(home.path().join("jrun"));
    let mut lock = store.lock(LockWait::No).unwrap();
    plan(&cfg, &lock.state, &Probe::default(), &Options::default())
        .unwrap()
        .apply_to(&mut lock.state);
    lock.save().unwrap();
    drop(lock);

    let jrun = |args: &[&str]| {
        let mut cmd = local_env::jrun();
        cmd.args(args)
            .env_clear()
            .envs(local_env::LOCAL_ENV.iter().copied())
            .env("HOME", home.path())
            .env("JRUN_HOME", home.path().join("jrun"))
            .current_dir(home.path());
        cmd
    };
    let out = jrun(&["plan", fixture.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Nothing to do: 200 jails"));

    let version = time(RUNS, || jrun(&["--version"]));
    let planned = time(RUNS, || jrun(&["plan", fixture.to_str().unwrap()]));
    println!("jrun --version                      {}", version.line());
    println!("jrun plan (200 jails, no change)    {}", planned.line());
    println!(
        "plan over baseline: {:.2}x, +{:.1} ms (median); target < {} ms for the whole process: {}",
        planned.median.as_secs_f64() / version.median.as_secs_f64(),
        (planned.median.saturating_sub(version.median)).as_secs_f64() * 1e3,
        TARGET.as_millis(),
        if planned.median < TARGET {
            "met"
        } else {
            "MISSED"
        },
    );
}

struct Timing {
    median: Duration,
    min: Duration,
    p90: Duration,
}

impl Timing {
    fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "median {:7.2} ms   min {:7.2} ms   p90 {:7.2} ms",
            ms(self.median),
            ms(self.min),
            ms(self.p90)
        )
    }
}

/// Wall-clock time of whole process runs (spawn to exit), after two warm-up runs.
fn time(runs: usize, cmd: impl Fn() -> Command) -> Timing {
    for _ in 0..2 {
        cmd().output().unwrap();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut c = cmd();
            let start = Instant::now();
            let out = c.output().unwrap();
            let took = start.elapsed();
            assert!(out.status.success());
            took
        })
        .collect();
    times.sort();
    Timing {
        median: times[runs / 2],
        min: times[0],
        p90: times[runs * 9 / 10],
    }
}
