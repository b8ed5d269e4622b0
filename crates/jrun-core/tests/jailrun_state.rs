//! Jailrun's `state.json` in a jrun home: converted once, field by field, after a backup;
//! refused without a change when something cannot be converted. The fixtures were
//! written by Jailrun's own pydantic schema (fixtures/jailrun-state/generate.py).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jrun_core::config::{
    Exec, Forward, Healthcheck, JailName, Mount, Proto, SetupKind, SetupSource, SetupStep,
};
use jrun_core::state::jailrun::{convert, is_jailrun};
use jrun_core::state::{LockWait, PairDirection, State, StateError, StateStore, STATE_VERSION};
use jrun_mesh::PairCode;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jailrun-state")
        .join(name);
    std::fs::read(path).unwrap()
}

fn value(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn name(s: &str) -> JailName {
    JailName::new(s).unwrap()
}

thread_local! {
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn note(line: &str) {
    NOTES.with(|n| n.borrow_mut().push(line.to_string()));
}

fn take_notes() -> Vec<String> {
    NOTES.with(|n| n.borrow_mut().drain(..).collect())
}

/// A home whose `state.json` is the fixture `name`.
fn home_with(name: &str) -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), fixture(name)).unwrap();
    let store = StateStore::new(dir.path()).with_notes(note);
    (dir, store)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_docs_stack_converts_field_by_field() {
    let v = value("stack.json");
    assert!(is_jailrun(&v));
    let c = convert(&v).unwrap();
    let s = &c.state;
    assert_eq!(s.version, STATE_VERSION);
    // Not applied to jrun's VM: carried.
    assert_eq!(s.base, None);
    assert_eq!(s.vm, None);
    let names: Vec<_> = s.jails.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["fastapi-314", "postgres-16", "python-314"]);
    for j in s.jails.values() {
        assert!(!j.deployed && j.from_jailrun && j.file.is_none(), "{j:?}");
        assert_eq!(j.release.as_deref(), Some("15.0-RELEASE"));
        assert!(j.depends.is_empty());
    }

    let py = &s.jails[&name("python-314")];
    assert_eq!(py.ip, Ipv4Addr::new(10, 17, 89, 10));
    assert_eq!(py.base, None);
    assert!(py.forwards.is_empty() && py.mounts.is_empty() && py.execs.is_empty());
    assert_eq!(
        py.setup,
        [SetupStep {
            name: "python".into(),
            kind: SetupKind::Ansible,
            source: SetupSource::File("playbooks/python-314.yml".into()),
            vars: BTreeMap::new(),
        }]
    );

    let pg = &s.jails[&name("postgres-16")];
    assert_eq!(pg.ip, Ipv4Addr::new(10, 17, 89, 11));
    assert_eq!(
        pg.forwards,
        [Forward {
            name: "pg".into(),
            proto: Proto::Tcp,
            host: 6432,
            jail: 5432,
        }]
    );
    assert_eq!(
        pg.setup,
        [SetupStep {
            name: "postgres".into(),
            kind: SetupKind::Ansible,
            source: SetupSource::Url("hub://postgres/16".into()),
            vars: [("PG_PASSWORD".to_string(), "secret".to_string())].into(),
        }]
    );

    let api = &s.jails[&name("fastapi-314")];
    assert_eq!(api.ip, Ipv4Addr::new(10, 17, 89, 12));
    assert_eq!(api.base, Some(name("python-314")));
    assert_eq!(
        api.forwards,
        [
            Forward {
                name: "http".into(),
                proto: Proto::Tcp,
                host: 8080,
                jail: 8000,
            },
            Forward {
                name: "metrics".into(),
                proto: Proto::Udp,
                host: 8125,
                jail: 8125,
            },
        ]
    );
    assert_eq!(
        api.mounts,
        [Mount {
            name: "src".into(),
            host: PathBuf::from("/Users/you/Projects/fastapi"),
            jail: PathBuf::from("/srv/app"),
        }]
    );
    assert_eq!(
        api.execs,
        [
            Exec {
                name: "uvicorn".into(),
                cmd: "python3.14 -m uvicorn app:app --reload --host 0.0.0.0".into(),
                dir: Some("/srv/app".into()),
                env: [
                    ("APP_ENV".to_string(), "dev".to_string()),
                    (
                        "DATABASE_URL".to_string(),
                        "postgresql://postgres-16.local.jrun:5432/app".to_string()
                    ),
                ]
                .into(),
                healthcheck: Some(Healthcheck {
                    test: "fetch -qo /dev/null http://127.0.0.1:8000".into(),
                    interval: Duration::from_secs(60),
                    timeout: Duration::from_secs(5),
                    retries: 5,
                }),
                user: None,
            },
            // Jailrun's defaults: dir "/" (jrun: none), no env, no check.
            Exec {
                name: "worker".into(),
                cmd: "python3.14 worker.py".into(),
                dir: None,
                env: BTreeMap::new(),
                healthcheck: None,
                user: None,
            },
        ]
    );
    let sources: Vec<_> = api.setup.iter().map(|s| (&s.name, &s.source)).collect();
    assert_eq!(
        sources,
        [
            (
                &"fastapi".to_string(),
                &SetupSource::File("playbooks/fastapi-314.yml".into())
            ),
            (
                &"nginx".to_string(),
                &SetupSource::Url(
                    "https://github.com/hyphatech/jailrun-hub/blob/main/playbooks/nginx/rolling/playbook.yml"
                        .into()
                )
            ),
        ]
    );

    let codes: Vec<_> = s.peers.keys().map(|c| c.as_str()).collect();
    assert_eq!(codes, ["18-pulse-lilac", "a1b2c3"]);
    let lilac = &s.peers[&"18-pulse-lilac".parse::<PairCode>().unwrap()];
    assert_eq!(lilac.direction, PairDirection::Created);
    assert_eq!(lilac.paired_at, 1_740_832_496);
    let remote: Vec<_> = lilac
        .jails
        .iter()
        .map(|j| (j.name.as_str().to_string(), j.ygg_address.to_string()))
        .collect();
    assert_eq!(
        remote,
        [
            ("api".to_string(), "200:1234:5678:9abc::1".to_string()),
            ("db".to_string(), "201:aaaa::2".to_string()),
        ]
    );
    let joined = &s.peers[&"a1b2c3".parse::<PairCode>().unwrap()];
    assert_eq!(joined.direction, PairDirection::Joined);
    assert_eq!(joined.paired_at, 1_740_902_400);
    assert!(joined.jails.is_empty());

    // The VM-level parts are carried: the base (checked, as jrun's types), the wiring.
    let carried = &s.runtime["jailrun"];
    assert_eq!(carried["ssh_port"], 2222);
    assert_eq!(carried["base"]["setup"][0]["name"], "tools");
    assert_eq!(carried["base"]["setup"][0]["vars"]["EDITOR"], "vim");
    assert_eq!(carried["base"]["forwards"][0]["host"], 9090);
    assert_eq!(carried["base"]["forwards"][0]["target"], 90);
    assert_eq!(
        carried["base"]["mounts"][0]["target"],
        "/home/admin/workspace"
    );
    assert_eq!(carried["launched_fwds"].as_array().unwrap().len(), 4);
    assert_eq!(carried["launched_shares"].as_array().unwrap().len(), 2);

    // One line per jail and per pairing, and what was not applied.
    assert_eq!(c.notes.len(), 3 + 2 + 2, "{:#?}", c.notes);
    assert!(c.notes[0].starts_with(
        "jail fastapi-314 (10.17.89.12, 15.0-RELEASE): converted with 2 forwards, 1 mount, 2 execs, 2 setup steps"
    ), "{}", c.notes[0]);
    assert!(c.notes[0].contains("the next `jrun up` of its config file creates it again"));
    assert_eq!(
        c.notes[3],
        "pairing 18-pulse-lilac (created here): converted with 2 remote jails"
    );
    assert!(c.notes[5].starts_with(
        "Jailrun's base (1 setup step(s), 1 forward(s), 1 mount(s)) is not recorded as applied"
    ));
    assert!(c.notes[6].contains("SSH port 2222, 4 forward(s), 2 share(s)"));
}

#[test]
fn a_home_with_jailruns_state_is_converted_once_after_a_backup() {
    let (dir, store) = home_with("stack.json");
    let original = fixture("stack.json");
    let lock = store.lock(LockWait::No).unwrap();
    let state = lock.state.clone();
    drop(lock);
    assert_eq!(state, convert(&value("stack.json")).unwrap().state);
    let notes = take_notes();
    assert_eq!(notes.len(), 1 + 7, "{notes:#?}");
    assert!(
        notes[0].contains("was Jailrun's state; converted it for jrun (the original is kept as")
    );
    assert!(notes[0].ends_with("state.jailrun.json)"), "{}", notes[0]);
    // The original, byte for byte; and jrun's state where it was.
    let backup = dir.path().join("state.jailrun.json");
    assert_eq!(std::fs::read(&backup).unwrap(), original);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    assert!(!is_jailrun(&written));
    assert_eq!(written["version"], STATE_VERSION);
    assert_eq!(written["jails"]["fastapi-314"]["from_jailrun"], true);

    // Run again: nothing to do, nothing said, nothing changed.
    let before = files(dir.path());
    assert_eq!(store.read().unwrap(), state);
    assert_eq!(store.lock(LockWait::No).unwrap().state, state);
    assert!(take_notes().is_empty());
    assert_eq!(files(dir.path()), before);
}

#[test]
fn a_read_only_command_converts_too() {
    let (dir, store) = home_with("empty.json");
    let state = store.read().unwrap();
    assert!(state.jails.is_empty() && state.peers.is_empty());
    assert_eq!(state.runtime["jailrun"]["ssh_port"], 2222);
    assert!(dir.path().join("state.jailrun.json").exists());
    let notes = take_notes();
    assert_eq!(notes.len(), 2, "{notes:#?}");
}

#[test]
fn an_invalid_peer_address_refuses_and_changes_nothing() {
    let (dir, store) = home_with("bad-peer.json");
    let before = files(dir.path());
    for attempt in [
        store.lock(LockWait::No).map(|l| l.state.clone()),
        store.read(),
    ] {
        let err = attempt.unwrap_err();
        match &err {
            StateError::Jailrun { field, .. } => {
                assert_eq!(field, "peers[0].jails[0].ygg_address")
            }
            other => panic!("{other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(
                "is Jailrun's, and jrun cannot convert it: peers[0].jails[0].ygg_address: "
            ),
            "{msg}"
        );
        assert!(msg.contains("jrun changed nothing"), "{msg}");
    }
    // Only the lock file is new; the state is as it was, and no backup was made.
    let mut after = files(dir.path());
    after.remove("state.lock");
    assert_eq!(after, before);
    assert!(take_notes().is_empty());
}

#[test]
fn jails_without_an_address_get_a_free_one() {
    let mut v = value("bad-peer.json");
    v["peers"] = serde_json::json!([]);
    let c = convert(&v).unwrap();
    assert_eq!(
        c.state.jails[&name("web")].ip,
        Ipv4Addr::new(10, 17, 89, 10)
    );
    assert_eq!(
        c.state.jails[&name("cache")].ip,
        Ipv4Addr::new(10, 17, 89, 11)
    );
    assert!(
        c.notes[0].contains("(Jailrun had given it no address yet)"),
        "{:?}",
        c.notes
    );
}

#[test]
fn what_cannot_be_kept_refuses_naming_the_field() {
    let cases: &[(&str, serde_json::Value, &str)] = &[
        (
            "/jails/fastapi-314/forwards/http/host",
            serde_json::json!(70000),
            "jails.fastapi-314.forwards.http.host",
        ),
        (
            "/jails/fastapi-314/mounts/src/jail",
            serde_json::json!("../etc"),
            "jails.fastapi-314.mounts.src.jail",
        ),
        (
            "/jails/fastapi-314/execs/uvicorn/env",
            serde_json::json!({"BAD NAME": "x"}),
            "jails.fastapi-314.execs.uvicorn.env.BAD NAME",
        ),
        (
            "/jails/fastapi-314/execs/uvicorn/healthcheck/retries",
            serde_json::json!(0),
            "jails.fastapi-314.execs.uvicorn.healthcheck.retries",
        ),
        (
            "/jails/fastapi-314/base/name",
            serde_json::json!("nosuch"),
            "jails.fastapi-314.base.name",
        ),
        (
            "/jails/postgres-16/ip",
            serde_json::json!("10.17.89.10"),
            "jails.python-314.ip",
        ),
        (
            "/jails/postgres-16/setup/postgres/url",
            serde_json::json!("ftp://x"),
            "jails.postgres-16.setup.postgres.url",
        ),
        (
            "/peers/0/alias",
            serde_json::json!("Not A Code"),
            "peers[0].alias",
        ),
        (
            "/peers/1/paired_at",
            serde_json::json!("yesterday"),
            "peers[1].paired_at",
        ),
        (
            "/peers/1/direction",
            serde_json::json!("sideways"),
            "peers[1].direction",
        ),
    ];
    for (pointer, bad, field) in cases {
        let mut v = value("stack.json");
        *v.pointer_mut(pointer).unwrap() = bad.clone();
        let err = convert(&v).unwrap_err();
        assert_eq!(&err.field, field, "{pointer}: {err}");
    }
    // A field this jrun does not know (a newer Jailrun) would be lost: refused.
    let mut v = value("stack.json");
    v["jails"]["python-314"]["snapshots"] = serde_json::json!([]);
    assert_eq!(convert(&v).unwrap_err().field, "jails.python-314.snapshots");
    // A jail name jrun cannot use.
    let mut v = value("empty.json");
    v["jails"] = serde_json::json!({"My_App": {"name": "My_App", "release": "15.0-RELEASE"}});
    assert_eq!(convert(&v).unwrap_err().field, "jails.My_App");
}

#[test]
fn a_different_backup_is_never_overwritten() {
    let (dir, store) = home_with("empty.json");
    std::fs::write(dir.path().join("state.jailrun.json"), b"an older backup").unwrap();
    store.lock(LockWait::No).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("state.jailrun.json")).unwrap(),
        b"an older backup"
    );
    assert_eq!(
        std::fs::read(dir.path().join("state.jailrun.2.json")).unwrap(),
        fixture("empty.json")
    );
    let notes = take_notes();
    assert!(notes[0].ends_with("state.jailrun.2.json)"), "{notes:?}");
}

#[test]
fn a_version_1_jrun_state_reads_with_no_files_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.json"),
        br#"{"version": 1, "base": null, "jails": {"web": {"name": "web", "ip": "10.17.89.10", "deployed": true}}, "vm": null, "peers": {}}"#,
    )
    .unwrap();
    let state: State = StateStore::new(dir.path()).read().unwrap();
    assert_eq!(state.version, STATE_VERSION);
    let web = &state.jails[&name("web")];
    assert!(web.deployed && web.file.is_none() && !web.from_jailrun);
    assert!(!dir.path().join("state.jailrun.json").exists());
}
