use std::collections::BTreeSet;
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

/// This instance's roster when its own addresses play no part in a test.
fn no_local() -> Roster {
    Roster { jails: vec![] }
}

/// This instance's roster offering `names` (addresses of its own, in `209::/16`).
fn mine(names: &[&str]) -> Roster {
    Roster {
        jails: names
            .iter()
            .enumerate()
            .map(|(i, n)| RosterJail {
                name: DnsLabel::new(*n).unwrap(),
                ygg_address: addr(&format!("209::{}", i + 1)),
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
                file: None,
                from_jailrun: false,
                mesh_allow: None,
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
        &no_local(),
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
    let peer = new_peer(&state, &c, PairDirection::Created, 1, &r, &no_local()).unwrap();
    state.peers.insert(c.clone(), peer);
    let again = new_peer(&state, &c, PairDirection::Created, 2, &r, &no_local());
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
        &no_local(),
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
        &no_local(),
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
        let peer = new_peer(
            &state,
            &c,
            PairDirection::Joined,
            1,
            &roster(&[("db", a)]),
            &no_local(),
        )
        .unwrap();
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
        &mine(&["web", "api"]),
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
        let peer = new_peer(
            &state,
            c,
            PairDirection::Joined,
            1,
            &roster(&[("x", a)]),
            &mine(&["web"]),
        )
        .unwrap();
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

fn fw_of<'a>(firewalls: &'a [JailFirewall], jail: &str) -> &'a JailFirewall {
    firewalls.iter().find(|f| f.jail.as_str() == jail).unwrap()
}

fn set_of(fw: &JailFirewall) -> Vec<String> {
    fw.mesh_peers.iter().map(|a| a.to_string()).collect()
}

/// Issue 15 item 3: a pairing shares the jails of the roster this side sent; only they
/// admit the peer, and a jail deployed after the pairing admits nobody.
#[test]
fn only_shared_jails_admit_the_peer_and_later_jails_admit_nobody() {
    let mut state = state_with_jails(&["web", "api", "db"]);
    let c = code("81-zephyr-night-climb");
    let peer = new_peer(
        &state,
        &c,
        PairDirection::Created,
        1,
        &roster(&[("x", "201::1")]),
        &mine(&["web", "db"]),
    )
    .unwrap();
    let shared: Vec<&str> = peer.shared.iter().flatten().map(|j| j.as_str()).collect();
    assert_eq!(shared, ["db", "web"]);
    state.peers.insert(c.clone(), peer);
    let later = state_with_jails(&["later"])
        .jails
        .into_values()
        .next()
        .unwrap();
    state.jails.insert(later.name.clone(), later);

    let (firewalls, _) = mesh_wiring(&state);
    assert_eq!(set_of(fw_of(&firewalls, "web")), ["201::1"]);
    assert_eq!(set_of(fw_of(&firewalls, "db")), ["201::1"]);
    assert!(set_of(fw_of(&firewalls, "api")).is_empty());
    assert!(set_of(fw_of(&firewalls, "later")).is_empty());

    // `jrun pair --share later <code>` opens it (and closes the others).
    let after = reshare(&state, &c, [JailName::new("later").unwrap()].into()).unwrap();
    let (firewalls, _) = mesh_wiring(&after);
    assert_eq!(set_of(fw_of(&firewalls, "later")), ["201::1"]);
    assert!(set_of(fw_of(&firewalls, "web")).is_empty());
    assert!(matches!(
        reshare(&state, &code("9-no-such-code"), BTreeSet::new()),
        Err(PairError::NoSuchPairing { .. })
    ));
}

/// A pairing recorded before shares were (no `shared` in state.json) keeps opening every
/// jail, as it did; removing a jail takes it out of every pairing's share, so a new jail
/// of the same name is not opened.
#[test]
fn legacy_pairings_share_everything_and_removed_jails_leave_shares() {
    let mut state = state_with_jails(&["web", "db"]);
    let legacy: MeshPeer = serde_json::from_value(serde_json::json!({
        "code": "1-apple-berry-cloud", "direction": "joined", "paired_at": 1,
        "jails": [{ "name": "x", "ygg_address": "201::1" }]
    }))
    .unwrap();
    assert_eq!(legacy.shared, None);
    state.peers.insert(legacy.code.clone(), legacy);
    let c = code("2-apple-berry-cloud");
    let peer = new_peer(
        &state,
        &c,
        PairDirection::Joined,
        1,
        &roster(&[("y", "202::1")]),
        &mine(&["web"]),
    )
    .unwrap();
    state.peers.insert(c.clone(), peer);
    let (firewalls, _) = mesh_wiring(&state);
    assert_eq!(set_of(fw_of(&firewalls, "web")), ["201::1", "202::1"]);
    assert_eq!(set_of(fw_of(&firewalls, "db")), ["201::1"]);

    state.forget_jail(&JailName::new("web").unwrap());
    assert!(state.peers[&c].shared.as_ref().unwrap().is_empty());
    let again = state_with_jails(&["web"])
        .jails
        .into_values()
        .next()
        .unwrap();
    state.jails.insert(again.name.clone(), again);
    let (firewalls, _) = mesh_wiring(&state);
    assert_eq!(set_of(fw_of(&firewalls, "web")), ["201::1"]);
}

/// Each firewall carries its jail's `mesh { allow }`.
#[test]
fn wiring_carries_each_jails_mesh_allow() {
    let mut state = state_with_jails(&["web", "db"]);
    let ports: BTreeSet<jrun_core::config::MeshPort> =
        ["8000".parse().unwrap(), "53/udp".parse().unwrap()].into();
    state
        .jails
        .get_mut(&JailName::new("web").unwrap())
        .unwrap()
        .mesh_allow = Some(ports.clone());
    let (firewalls, _) = mesh_wiring(&state);
    assert_eq!(fw_of(&firewalls, "web").mesh_allow, Some(ports));
    assert_eq!(fw_of(&firewalls, "db").mesh_allow, None);
}

#[test]
fn share_names_only_deployed_jails() {
    let mut state = state_with_jails(&["web", "db"]);
    state
        .jails
        .get_mut(&JailName::new("db").unwrap())
        .unwrap()
        .deployed = false;
    let all = shared_jails(&state, None).unwrap();
    assert_eq!(all.iter().map(|j| j.as_str()).collect::<Vec<_>>(), ["web"]);
    let web = [JailName::new("web").unwrap()];
    assert_eq!(shared_jails(&state, Some(&web)).unwrap().len(), 1);
    for bad in ["db", "nope"] {
        let err = shared_jails(&state, Some(&[JailName::new(bad).unwrap()])).unwrap_err();
        assert!(matches!(err, PairError::NotAJail { .. }), "{err}");
        assert!(err.to_string().contains("it has web"), "{err}");
    }
}

/// A runtime that records each `apply_mesh` (and the state it was given) and fails the
/// first one when told to; every other primitive is refused (pairing must not use them).
struct MeshOnly {
    fail_first: bool,
    calls: std::cell::RefCell<Vec<(Vec<JailFirewall>, DnsRecords)>>,
    states: std::cell::RefCell<Vec<State>>,
}

impl MeshOnly {
    fn new(fail_first: bool) -> Self {
        MeshOnly {
            fail_first,
            calls: Default::default(),
            states: Default::default(),
        }
    }
}

fn refused<T>() -> Result<T, RuntimeError> {
    Err(RuntimeError::Other {
        what: "test runtime".into(),
        message: "pairing must not call this".into(),
    })
}

impl Runtime for MeshOnly {
    fn kind(&self) -> jrun_core::settings::RuntimeKind {
        jrun_core::settings::RuntimeKind::Native
    }
    fn start(&self) -> Result<jrun_core::runtime::StartOutcome, RuntimeError> {
        refused()
    }
    fn stop(&self) -> Result<(), RuntimeError> {
        refused()
    }
    fn instance(&self) -> Result<jrun_core::runtime::InstanceStatus, RuntimeError> {
        refused()
    }
    fn probe_in_use(&self) -> Result<BTreeSet<Ipv4Addr>, RuntimeError> {
        refused()
    }
    fn check_host_ports(&self, _: &[jrun_core::net::Redirect]) -> Result<(), RuntimeError> {
        refused()
    }
    fn deploy_jail(
        &self,
        _: &jrun_core::runtime::JailNetwork,
        _: &mut dyn FnMut(&JailName, jrun_core::runtime::Step),
    ) -> Result<(), RuntimeError> {
        refused()
    }
    fn remove_jail(&self, _: &JailName) -> Result<(), RuntimeError> {
        refused()
    }
    fn set_records(&self, _: &DnsRecords) -> Result<(), RuntimeError> {
        refused()
    }
    fn apply_mesh(&self, fw: &[JailFirewall], records: &DnsRecords) -> Result<(), RuntimeError> {
        let mut calls = self.calls.borrow_mut();
        calls.push((fw.to_vec(), records.clone()));
        if self.fail_first && calls.len() == 1 {
            return Err(RuntimeError::Step {
                jail: fw[0].jail.clone(),
                step: jrun_core::runtime::Step::Mesh,
                message: "injected".into(),
            });
        }
        Ok(())
    }
    fn apply_mesh_from(
        &self,
        state: &State,
        fw: &[JailFirewall],
        records: &DnsRecords,
    ) -> Result<(), RuntimeError> {
        self.states.borrow_mut().push(state.clone());
        self.apply_mesh(fw, records)
    }
    fn set_forwards(&self, _: &[jrun_core::net::Redirect]) -> Result<(), RuntimeError> {
        refused()
    }
    fn jails_present(&self) -> Result<BTreeSet<JailName>, RuntimeError> {
        refused()
    }
    fn observe_jail(&self, _: &JailName) -> Result<jrun_core::runtime::JailObserved, RuntimeError> {
        refused()
    }
    fn exec_in_jail(&self, _: &JailName, _: &[String]) -> Result<i32, RuntimeError> {
        refused()
    }
    fn exec_in_instance(&self, _: &[String]) -> Result<i32, RuntimeError> {
        refused()
    }
}

fn paired_state() -> (State, State) {
    let before = state_with_jails(&["web", "api"]);
    let mut after = before.clone();
    let c = code("81-zephyr-night-climb");
    let peer = new_peer(
        &after,
        &c,
        PairDirection::Created,
        1,
        &roster(&[("db", "201::2")]),
        &no_local(),
    )
    .unwrap();
    after.peers.insert(c, peer);
    (before, after)
}

#[test]
fn apply_sends_the_whole_new_wiring_once() {
    let (before, after) = paired_state();
    let rt = MeshOnly::new(false);
    apply(&rt, &before, &after).unwrap();
    let calls = rt.calls.borrow();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0], mesh_wiring(&after));
    // The vm runtime renders the jails from the state it is handed (unsaved `after`).
    assert_eq!(*rt.states.borrow(), [after]);
}

#[test]
fn a_failed_apply_puts_the_previous_wiring_back() {
    let (before, after) = paired_state();
    let rt = MeshOnly::new(true);
    let err = apply(&rt, &before, &after).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    let calls = rt.calls.borrow();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], mesh_wiring(&after));
    assert_eq!(calls[1], mesh_wiring(&before));
    assert!(calls[1].0.iter().all(|fw| fw.mesh_peers.is_empty()));
    assert_eq!(*rt.states.borrow(), [after, before]);
}

/// Relays issue codes of other shapes than jrun's number and three words (Jailrun's docs
/// show `18-pulse-lilac`, the seed's diagram `a1b2c3`): each pairs and names its peers.
#[test]
fn codes_of_other_relays_pair_and_name_the_peers() {
    let mut state = state_with_jails(&["web"]);
    for (c, a) in [("18-pulse-lilac", "201::7"), ("a1b2c3", "201::8")] {
        let c = code(c);
        let peer = new_peer(
            &state,
            &c,
            PairDirection::Joined,
            1,
            &roster(&[("db", a)]),
            &no_local(),
        )
        .unwrap();
        state.peers.insert(c, peer);
    }
    let (_, records) = mesh_wiring(&state);
    let mut names: Vec<String> = records.peers().map(|r| r.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["db.18-pulse-lilac.jrun", "db.a1b2c3.jrun"]);
}

/// A peer may list only its own jails: an address another pairing or a local jail holds
/// is refused (review finding 10: `--drop` of one could not revoke it).
#[test]
fn a_roster_listing_addresses_others_hold_is_refused() {
    let mut state = state_with_jails(&["web"]);
    let first = code("a1b2c3");
    let peer = new_peer(
        &state,
        &first,
        PairDirection::Joined,
        1,
        &roster(&[("db", "201::2")]),
        &no_local(),
    )
    .unwrap();
    state.peers.insert(first, peer);
    let second = code("18-pulse-lilac");
    let err = new_peer(
        &state,
        &second,
        PairDirection::Joined,
        2,
        &roster(&[("cache", "201::2")]),
        &no_local(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("pairing a1b2c3 already lists"),
        "{err}"
    );
    let local = roster(&[("web", "201::9")]);
    let err = new_peer(
        &state,
        &second,
        PairDirection::Joined,
        2,
        &roster(&[("api", "201::9")]),
        &local,
    )
    .unwrap_err();
    assert!(err.to_string().contains("your own jail `web`"), "{err}");
}

#[test]
fn the_roster_size_check_uses_the_relays_own_default_body_limit() {
    // `jrun pair` refuses, before posting, a v2 roster larger than this: it must be the
    // limit `jrun relay` applies when not told otherwise.
    assert_eq!(
        jrun_relay::RelayConfig::default().max_body_bytes,
        jrun_mesh::pair_v2::RELAY_DEFAULT_MAX_BODY
    );
}
