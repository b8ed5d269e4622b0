//! Pairing v2 end to end in-process: two clients (jrun-mesh, feature `client`) through the
//! relay over HTTP on 127.0.0.1, honest, with a wrong code, and through a mailbox that
//! alters what the relay hands over.

mod common;

use std::time::Duration;

use common::{relaxed, TestRelay};
use jrun_mesh::pair_v2::{Phase, Side, V2Code, V2Error};
use jrun_mesh::protocol::Roster;
use jrun_mesh::{
    exchange_v2, ClientError, DnsLabel, Identity, Mailbox, PollOptions, RelayClient, RelayMailbox,
};

fn fast() -> PollOptions {
    PollOptions {
        deadline: Duration::from_secs(20),
        first_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
    }
}

fn jails(names: &[&str], seed: u8) -> Vec<(DnsLabel, Identity)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.to_string().try_into().unwrap(),
                Identity::from_seed(&[seed.wrapping_add(i as u8); 32]),
            )
        })
        .collect()
}

/// A mailbox that lets `alter` change the peer's messages as they arrive.
struct Tampering<M> {
    inner: M,
    alter: fn(Phase, &mut Vec<u8>),
}

impl<M: Mailbox> Mailbox for Tampering<M> {
    async fn send(
        &mut self,
        messages: Vec<(Phase, Vec<u8>)>,
        wait: bool,
    ) -> Result<(), ClientError> {
        self.inner.send(messages, wait).await
    }
    async fn receive(&mut self, phase: Phase) -> Result<Vec<u8>, ClientError> {
        let mut body = self.inner.receive(phase).await?;
        (self.alter)(phase, &mut body);
        Ok(body)
    }
}

async fn pair(
    relay: &TestRelay,
    joiner_code: impl Fn(&V2Code) -> V2Code,
    alter_at_b: fn(Phase, &mut Vec<u8>),
) -> (Result<Roster, ClientError>, Result<Roster, ClientError>) {
    let a = RelayClient::new(&relay.url).unwrap();
    let b = RelayClient::new(&relay.url).unwrap();
    let offer = a.offers_v2().await.unwrap().expect("the relay offers v2");
    assert_eq!(offer.max_body_bytes, Some(relaxed().max_body_bytes));
    let (code, mut box_a) = RelayMailbox::create(&a, fast()).await.unwrap();
    let code_b = joiner_code(&code);
    let ja = jails(&["web", "db"], 1);
    let jb = jails(&["app"], 100);
    let creator = exchange_v2(&mut box_a, Side::A, &code, &ja, 256);
    let joiner = async {
        let mut box_b = Tampering {
            inner: RelayMailbox::join(&b, &code_b, fast()),
            alter: alter_at_b,
        };
        exchange_v2(&mut box_b, Side::B, &code_b, &jb, 256).await
    };
    tokio::join!(creator, joiner)
}

fn same(code: &V2Code) -> V2Code {
    code.clone()
}

#[tokio::test]
async fn two_clients_pair_through_the_relay_which_then_forgets() {
    let relay = TestRelay::start(relaxed()).await;
    let (a, b) = pair(&relay, same, |_, _| {}).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.jails.len(), 1);
    assert_eq!(a.jails[0].name.as_str(), "app");
    assert_eq!(
        a.jails[0].ygg_address,
        Identity::from_seed(&[100; 32]).address()
    );
    let names: Vec<_> = b.jails.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["web", "db"]);
    assert_eq!(relay.relay.mailboxes().pending(), 0);
    assert_eq!(relay.relay.store().pending(), 0);
}

#[tokio::test]
async fn wrong_words_end_with_the_code_does_not_match_on_both_sides() {
    let relay = TestRelay::start(relaxed()).await;
    let typo = |code: &V2Code| {
        let text = code.code().to_string();
        let (head, last) = text.rsplit_once('-').unwrap();
        let other = if last == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        V2Code::parse(&format!("{head}-{other}").parse().unwrap()).unwrap()
    };
    let (a, b) = pair(&relay, typo, |_, _| {}).await;
    for r in [a, b] {
        let e = r.unwrap_err();
        assert!(
            matches!(e, ClientError::Pairing(V2Error::CodeMismatch)),
            "{e}"
        );
        assert!(e.to_string().contains("the code does not match"));
    }
    // Both sides ended: nothing is left on the relay.
    assert_eq!(relay.relay.mailboxes().pending(), 0);
}

#[tokio::test]
async fn an_altered_sealed_roster_makes_both_sides_abort() {
    let relay = TestRelay::start(relaxed()).await;
    let (a, b) = pair(&relay, same, |phase, body| {
        if phase == Phase::Roster {
            body[30] ^= 0x40;
        }
    })
    .await;
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert!(matches!(b, ClientError::Pairing(V2Error::Tampered)), "{b}");
    assert!(
        matches!(a, ClientError::Pairing(V2Error::PeerAborted)),
        "{a}"
    );
    assert_eq!(relay.relay.mailboxes().pending(), 0);
}

#[tokio::test]
async fn an_altered_ack_makes_the_receiver_abort() {
    let relay = TestRelay::start(relaxed()).await;
    let (a, b) = pair(&relay, same, |phase, body| {
        if phase == Phase::Ack {
            body[0] ^= 1;
        }
    })
    .await;
    // B refuses a's ack; a waits for b's, gets b's abort instead: neither side applies.
    assert!(matches!(
        b.unwrap_err(),
        ClientError::Pairing(V2Error::Tampered)
    ));
    assert!(matches!(
        a.unwrap_err(),
        ClientError::Pairing(V2Error::PeerAborted)
    ));
    assert_eq!(relay.relay.mailboxes().pending(), 0);
}

#[tokio::test]
async fn a_v2_code_for_an_unknown_nameplate_is_gone() {
    let relay = TestRelay::start(relaxed()).await;
    let b = RelayClient::new(&relay.url).unwrap();
    let code = V2Code::parse(&"4321-zebra-night-climb".parse().unwrap()).unwrap();
    let mut mailbox = RelayMailbox::join(&b, &code, fast());
    let e = exchange_v2(&mut mailbox, Side::B, &code, &jails(&["x"], 1), 256)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::CodeGone { .. }), "{e}");
}
