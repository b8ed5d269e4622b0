//! The planner alone for 200 jails (tests/fixtures/plan/bench-200.ucl): against a
//! matching state (the common `jrun up` / `jrun plan` case), against an empty state
//! (first deploy), and the state store's locked read-modify-write of that state.

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jrun_core::config::{self, Config};
use jrun_core::plan::{plan, Options, Probe};
use jrun_core::state::{LockWait, State, StateStore};

fn stack() -> Config {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/plan/bench-200.ucl");
    let config = config::load(&path, 2222).expect("the bench fixture loads");
    assert_eq!(config.jails.len(), 200);
    config
}

fn planner(c: &mut Criterion) {
    let config = stack();
    let options = Options::default();
    let probe = Probe::default();
    let mut deployed = State::default();
    plan(&config, &deployed, &probe, &options)
        .unwrap()
        .apply_to(&mut deployed);
    assert!(plan(&config, &deployed, &probe, &options)
        .unwrap()
        .is_empty());

    c.bench_function("plan 200 jails, matching state", |b| {
        b.iter(|| plan(black_box(&config), black_box(&deployed), &probe, &options).unwrap())
    });
    c.bench_function("plan 200 jails, first deploy", |b| {
        let empty = State::default();
        b.iter(|| plan(black_box(&config), black_box(&empty), &probe, &options).unwrap())
    });
    c.bench_function("render plan text, 200 jails first deploy", |b| {
        let p = plan(&config, &State::default(), &probe, &options).unwrap();
        b.iter(|| black_box(&p).render_text())
    });

    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    {
        let mut lock = store.lock(LockWait::No).unwrap();
        lock.state = deployed.clone();
        lock.save().unwrap();
    }
    c.bench_function("state: lock, read, save (fsync) 200 jails", |b| {
        b.iter(|| {
            let mut lock = store.lock(LockWait::No).unwrap();
            lock.save().unwrap();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = planner
}
criterion_main!(benches);
