use std::net::Ipv4Addr;

use jrun_core::config::JailName;
use jrun_core::net::{DnsName, RecordData};
use jrun_core::state::JailState;
use jrun_mesh::{DnsLabel, YggAddress};

use super::*;

fn code(s: &str) -> PairCode {
    s.parse().unwrap()
}

fn addr(s: &str) -> YggAddress {
    s.parse().unwrap()
}

fn roster(jails: &[(&str, &str)]) -> Roster {
    Roster {
        jails: jails
            .iter()
            .map(|(n, a)| RosterJail {
                name: DnsLabel::new(*n).unwrap(),
                ygg_address: addr(a),
            })
            .collect(),
    }
}

fn state_with_jails(names: &[&str]) -> State {
    let mut state = State::default();
    for (i, n) in names.iter().enumerate() {
        let name = JailName::new(*n).unwrap();
        state.jails.insert(
            name.clone(),
            JailState {
                name,
                ip: Ipv4Addr::new(10, 17, 89, 10 + i as u8),
                release: None,
                base: None,
                depends: vec![],
                forwards: vec![],
                mounts: vec![],
                execs: vec![],
                setup: vec![],
                deployed: true,
            },
        );
    }
    state
}

#[test]
fn a_new_peer_records_the_roster_sorted() {
    let state = state_with_jails(&["web"]);
    let c = code("81-zephyr-night-climb");
    let peer = new_peer(
        &state,
        &c,
        PairDirection::Joined,
        1_700_000_000,
        &roster(&[("db", "201::2"), ("api", "201::1")]),
    )
    .unwrap();
    assert_eq!(peer.code, c);
    assert_eq!(peer.direction, PairDirection::Joined);
    let names: Vec<&str> = peer.jails.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["api", "db"]);
}

#[test]
fn pairing_twice_under_one_code_is_refused() {
    let mut state = state_with_jails(&["web"]);
    let c = code("81-zephyr-night-climb");
    let r = roster(&[("db", "201::2")]);
    let peer = new_peer(&state, &c, PairDirection::Created, 1, &r).unwrap();
    state.peers.insert(c.clone(), peer);
    let again = new_peer(&state, &c, PairDirection::Created, 2, &r);
    assert!(matches!(again, Err(PairError::AlreadyPaired { .. })));
    assert!(check_code_free(&state, &c).is_err());
    assert!(check_code_free(&state, &code("7-apple-berry-cloud")).is_ok());
}

#[test]
fn collisions_within_one_roster_are_refused() {
    let state = State::default();
    let c = code("81-zephyr-night-climb");
    let names = new_peer(
        &state,
        &c,
        PairDirection::Joined,
        1,
        &roster(&[("db", "201::1"), ("db", "201::2")]),
    );
    assert!(
        matches!(names, Err(PairError::NameCollision { ref name }) if name == "db"),
        "{names:?}"
    );
    let addrs = new_peer(
        &state,
        &c,
        PairDirection::Joined,
        1,
        &roster(&[("a", "201::1"), ("b", "201::1")]),
    );
    assert!(matches!(addrs, Err(PairError::AddressCollision { .. })));
}

#[test]
fn the_same_name_under_two_codes_is_two_names() {
    let mut state = state_with_jails(&["web"]);
    for (c, a) in [
        ("1-apple-berry-cloud", "201::1"),
        ("2-apple-berry-cloud", "202::1"),
    ] {
        let c = code(c);
        let peer = new_peer(&state, &c, PairDirection::Joined, 1, &roster(&[("db", a)])).unwrap();
        state.peers.insert(c, peer);
    }
    let (_, records) = mesh_wiring(&state);
    let peers: Vec<String> = records.peers().map(|r| r.name.to_string()).collect();
    assert_eq!(
        peers,
        ["db.1-apple-berry-cloud.jrun", "db.2-apple-berry-cloud.jrun"]
    );
}

#[test]
fn wiring_gives_every_jail_every_peer_and_keeps_local_names() {
    let mut state = state_with_jails(&["web", "api"]);
    let c = code("81-zephyr-night-climb");
    let peer = new_peer(
        &state,
        &c,
        PairDirection::Created,
        1,
        &roster(&[("db", "201::2"), ("cache", "201::3")]),
    )
    .unwrap();
    state.peers.insert(c.clone(), peer);
    let (firewalls, records) = mesh_wiring(&state);
    assert_eq!(firewalls.len(), 2);
    for fw in &firewalls {
        let got: Vec<String> = fw.mesh_peers.iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["201::2", "201::3"]);
    }
    assert_eq!(records.local().count(), 2);
    let db = records
        .peers()
        .find(|r| matches!(&r.name, DnsName::Peer { jail, .. } if jail.as_str() == "db"))
        .unwrap();
    assert_eq!(db.data, RecordData::Aaaa(addr("201::2")));
}

#[test]
fn dropping_one_pairing_leaves_the_other() {
    let mut state = state_with_jails(&["web"]);
    let keep = code("1-apple-berry-cloud");
    let gone = code("2-apple-berry-cloud");
    for (c, a) in [(&keep, "201::1"), (&gone, "202::1")] {
        let peer = new_peer(&state, c, PairDirection::Joined, 1, &roster(&[("x", a)])).unwrap();
        state.peers.insert(c.clone(), peer);
    }
    state.peers.remove(&gone);
    let (firewalls, records) = mesh_wiring(&state);
    let set: Vec<String> = firewalls[0]
        .mesh_peers
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(set, ["201::1"]);
    let names: Vec<String> = records.peers().map(|r| r.name.to_string()).collect();
    assert_eq!(names, ["x.1-apple-berry-cloud.jrun"]);
}
