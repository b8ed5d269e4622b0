//! The state store on disk: locking across processes, atomic writes, refusing bad files.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jrun_core::config::JailName;
use jrun_core::state::{JailState, LockWait, State, StateError, StateStore, STATE_VERSION};

/// Set in a child process: the home folder it works on, and what it does there.
const CHILD_HOME: &str = "JRUN_TEST_STATE_HOME";
const CHILD_ROUNDS: &str = "JRUN_TEST_STATE_ROUNDS";

fn jail(name: &str, last: u8) -> JailState {
    JailState {
        name: JailName::new(name).unwrap(),
        ip: Ipv4Addr::new(10, 17, 89, last),
        release: Some("15.0-RELEASE".into()),
        base: None,
        depends: Vec::new(),
        forwards: Vec::new(),
        mounts: Vec::new(),
        execs: Vec::new(),
        setup: Vec::new(),
        deployed: true,
        file: None,
        from_jailrun: false,
        mesh_allow: None,
    }
}

/// Under the lock: read the counter (the number of jails), add one jail, save.
/// Lost updates or torn files show up as a wrong final count or a parse error.
fn increment(store: &StateStore) {
    let mut lock = store.lock(LockWait::Yes).unwrap();
    let n = lock.state.jails.len();
    let j = jail(&format!("j{n}"), 10 + n as u8);
    lock.state.jails.insert(j.name.clone(), j);
    lock.save().unwrap();
}

/// Runs as a child process of `two_processes_never_corrupt_the_state`; on its own it
/// checks the same thing within one process.
#[test]
fn child_increments() {
    let (home, rounds) = match std::env::var(CHILD_HOME) {
        Ok(home) => (
            home.into(),
            std::env::var(CHILD_ROUNDS).unwrap().parse().unwrap(),
        ),
        Err(_) => (tempfile::tempdir().unwrap().keep(), 5),
    };
    let store = StateStore::new(&home);
    let before = store.read().unwrap().jails.len();
    for _ in 0..rounds {
        increment(&store);
    }
    assert!(store.read().unwrap().jails.len() >= before + rounds);
    if std::env::var(CHILD_HOME).is_err() {
        std::fs::remove_dir_all(home).unwrap();
    }
}

fn spawn_child(test: &str, home: &Path, envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_HOME, home)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[test]
fn two_processes_never_corrupt_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = 40;
    let children: Vec<Child> = (0..2)
        .map(|_| {
            spawn_child(
                "child_increments",
                dir.path(),
                &[(CHILD_ROUNDS, rounds.to_string())],
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let state = StateStore::new(dir.path()).read().unwrap();
    assert_eq!(state.jails.len(), 2 * rounds, "an update was lost");
}

#[test]
fn a_held_lock_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let held = store.lock(LockWait::No).unwrap();
    // flock locks belong to the open file description, so a second open in this
    // process conflicts just as another process would.
    let err = store.lock(LockWait::No).unwrap_err();
    match &err {
        StateError::Locked { pid, lock } => {
            assert_eq!(*pid, Some(std::process::id()));
            assert_eq!(lock, &store.lock_path());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains(&format!("pid {}", std::process::id())));
    assert!(err.to_string().contains("--wait"));
    drop(held);
    assert!(store.lock(LockWait::No).is_ok());
}

#[test]
fn waiting_gets_the_lock_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let mut held = store.lock(LockWait::No).unwrap();
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || {
            let lock = store.lock(LockWait::Yes).unwrap();
            lock.state.jails.len()
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    // The waiter reads only after the holder saved: it sees the holder's write.
    let j = jail("web", 10);
    held.state.jails.insert(j.name.clone(), j);
    held.save().unwrap();
    drop(held);
    assert_eq!(waiter.join().unwrap(), 1);
}

#[test]
fn missing_file_is_an_empty_state_and_saves_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("home"));
    let mut lock = store.lock(LockWait::No).unwrap();
    assert_eq!(lock.state, State::default());
    let j = jail("web", 10);
    lock.state.jails.insert(j.name.clone(), j);
    lock.state
        .runtime
        .insert("native".into(), serde_json::json!({"instance": "a1"}));
    lock.save().unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(text.contains(&format!("\"version\": {STATE_VERSION}")));
    assert_eq!(store.read().unwrap(), lock.state);
    // No temp file is left behind.
    let names: Vec<_> = std::fs::read_dir(store.path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn write_state_file(store: &StateStore, text: &str) {
    std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
    std::fs::write(store.path(), text).unwrap();
}

#[test]
fn corrupt_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    for (text, why) in [
        ("{\"version\": 1, \"jails\": ", "not JSON"),
        ("", "not JSON"),
        ("{\"jails\": {}}", "no \"version\""),
        ("{\"version\": \"1\"}", "not a number"),
        (
            "{\"version\": 1, \"jails\": {\"web\": {\"name\": \"web\", \"ip\": \"10.17.89.10\"}}}",
            "deployed",
        ),
        ("{\"version\": 1, \"jails\": {\"Web\": {}}}", "lowercase"),
        ("{\"version\": 1, \"surprise\": true}", "surprise"),
    ] {
        let err = {
            write_state_file(&store, text);
            store.read().unwrap_err()
        };
        let msg = err.to_string();
        assert!(matches!(err, StateError::Corrupt { .. }), "{text}: {err:?}");
        assert!(msg.contains(&store.path().display().to_string()), "{msg}");
        assert!(msg.contains(why), "{text}: {msg}");
        // The lock path refuses it too, and leaves the file as it was.
        assert!(store.lock(LockWait::No).is_err());
        assert_eq!(std::fs::read_to_string(store.path()).unwrap(), text);
    }
}

#[test]
fn a_mismatched_record_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let mut state = State::default();
    state
        .jails
        .insert(JailName::new("db").unwrap(), jail("web", 10));
    write_state_file(&store, &serde_json::to_string(&state).unwrap());
    let msg = store.read().unwrap_err().to_string();
    assert!(
        msg.contains("jail db is recorded under the name web"),
        "{msg}"
    );
    let mut state = State::default();
    for j in [jail("a", 10), jail("b", 10)] {
        state.jails.insert(j.name.clone(), j);
    }
    write_state_file(&store, &serde_json::to_string(&state).unwrap());
    let msg = store.read().unwrap_err().to_string();
    assert!(msg.contains("jails a and b both hold 10.17.89.10"), "{msg}");
}

#[test]
fn a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let future = STATE_VERSION + 1;
    write_state_file(
        &store,
        &format!("{{\"version\": {future}, \"jails\": {{}}, \"holograms\": []}}"),
    );
    let err = store.read().unwrap_err();
    assert!(matches!(err, StateError::TooNew { found, .. } if found == u64::from(future)));
    assert_eq!(
        err.to_string(),
        format!(
            "the state file {} has version {future}, but this jrun only knows versions up to \
             {STATE_VERSION}; use a newer jrun",
            store.path().display()
        )
    );
}

/// Runs as a child of `a_crash_mid_write_leaves_a_whole_state`, saving states until it
/// is killed; on its own it saves a bounded number and checks the last one is read back.
#[test]
fn child_writes_until_killed() {
    let (home, rounds) = match std::env::var(CHILD_HOME) {
        Ok(home) => (home.into(), u32::MAX),
        Err(_) => (tempfile::tempdir().unwrap().keep(), 50),
    };
    let store = StateStore::new(&home);
    let mut lock = store.lock(LockWait::Yes).unwrap();
    // A first whole state exists before the parent may kill us.
    let first = jail("first", 10);
    lock.state.jails.insert(first.name.clone(), first);
    lock.save().unwrap();
    std::fs::write(store.path().with_extension("ready"), b"").unwrap();
    for round in 0..rounds {
        let n = (round % 200) as u8;
        let j = jail(&format!("j{n}"), 10 + (n % 240));
        lock.state.jails.clear();
        lock.state.jails.insert(j.name.clone(), j);
        lock.state
            .runtime
            .insert("round".into(), serde_json::json!(round));
        lock.save().unwrap();
    }
    drop(lock);
    let state = store.read().unwrap();
    assert_eq!(state.runtime["round"], serde_json::json!(rounds - 1));
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_crash_mid_write_leaves_a_whole_state() {
    for attempt in 0..5u64 {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let mut child = spawn_child("child_writes_until_killed", dir.path(), &[]);
        let ready = store.path().with_extension("ready");
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "child never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20 + attempt * 7));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever moment the kill hit, the file is a whole state, and the lock died
        // with its holder.
        let mut lock = store.lock(LockWait::No).unwrap();
        assert_eq!(lock.state.jails.len(), 1);
        lock.save().unwrap();
    }
}
