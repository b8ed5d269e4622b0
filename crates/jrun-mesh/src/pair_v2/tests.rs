use super::*;

fn jails(prefix: &str, n: u8) -> Vec<(DnsLabel, Identity)> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[0] = i;
            seed[1] = prefix.as_bytes()[0];
            (
                format!("{prefix}{i}").try_into().unwrap(),
                Identity::from_seed(&seed),
            )
        })
        .collect()
}

fn code(text: &str) -> V2Code {
    V2Code::parse(&text.parse().unwrap()).unwrap()
}

/// Runs both sides to the end in memory; `tamper` may change any message in flight.
fn run(
    code_a: &V2Code,
    code_b: &V2Code,
    tamper: &mut dyn FnMut(Side, Phase, &mut Vec<u8>),
) -> (Result<Roster, V2Error>, Result<Roster, V2Error>) {
    let (mut a, mut pa) = Session::start(Side::A, code_a);
    let (mut b, mut pb) = Session::start(Side::B, code_b);
    tamper(Side::A, Phase::Pake, &mut pa);
    tamper(Side::B, Phase::Pake, &mut pb);
    let ca = a.receive_pake(&pb);
    let cb = b.receive_pake(&pa);
    let (mut ca, mut cb) = match (ca, cb) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => return (x.map(|_| unreachable!()), y.map(|_| unreachable!())),
    };
    tamper(Side::A, Phase::Confirm, &mut ca);
    tamper(Side::B, Phase::Confirm, &mut cb);
    let (ka, kb) = (a.receive_confirm(&cb), b.receive_confirm(&ca));
    if ka.is_err() || kb.is_err() {
        return (ka.map(|_| unreachable!()), kb.map(|_| unreachable!()));
    }
    let mut ra = a.seal_roster(&jails("a", 2)).unwrap();
    let mut rb = b.seal_roster(&jails("b", 3)).unwrap();
    tamper(Side::A, Phase::Roster, &mut ra);
    tamper(Side::B, Phase::Roster, &mut rb);
    let got_a = a.open_roster(&rb, 256);
    let got_b = b.open_roster(&ra, 256);
    // A side that failed posts no ack: the other never gets one and gives up too.
    let ack_a = got_a.is_ok().then(|| a.ack().unwrap());
    let ack_b = got_b.is_ok().then(|| b.ack().unwrap());
    let finish = |s: &Session, got: Result<Roster, V2Error>, peer_ack: Option<Vec<u8>>, side| {
        let roster = got?;
        let mut ack = peer_ack.ok_or(V2Error::PeerAborted)?;
        tamper_ack(side, &mut ack);
        s.receive_ack(&ack)?;
        Ok(roster)
    };
    fn tamper_ack(_: Side, _: &mut Vec<u8>) {}
    (
        finish(&a, got_a, ack_b, Side::B),
        finish(&b, got_b, ack_a, Side::A),
    )
}

#[test]
fn an_honest_exchange_gives_each_side_the_others_roster() {
    let c = code("4821-zebra-night-climb");
    let (a, b) = run(&c, &c, &mut |_, _, _| {});
    let a = a.unwrap();
    let b = b.unwrap();
    assert_eq!(a.jails.len(), 3);
    assert_eq!(b.jails.len(), 2);
    assert_eq!(a.jails[0].name.as_str(), "b0");
    assert_eq!(a.jails[0].ygg_address, jails("b", 1)[0].1.address());
}

#[test]
fn wrong_words_end_with_the_code_does_not_match_on_both_sides() {
    let (a, b) = run(
        &code("4821-zebra-night-climb"),
        &code("4821-zebra-night-clock"),
        &mut |_, _, _| {},
    );
    assert_eq!(a.unwrap_err(), V2Error::CodeMismatch);
    assert_eq!(b.unwrap_err(), V2Error::CodeMismatch);
    assert!(V2Error::CodeMismatch
        .to_string()
        .contains("the code does not match"));
    // Another nameplate with the same words is another password too.
    let (a, b) = run(
        &code("4821-zebra-night-climb"),
        &code("4822-zebra-night-climb"),
        &mut |_, _, _| {},
    );
    assert_eq!(a.unwrap_err(), V2Error::CodeMismatch);
    assert_eq!(b.unwrap_err(), V2Error::CodeMismatch);
}

#[test]
fn a_relay_that_alters_or_swaps_a_sealed_roster_makes_both_abort() {
    let c = code("4821-zebra-night-climb");
    // One flipped bit in A's roster: B cannot open it, A gets no ack.
    let (a, b) = run(&c, &c, &mut |side, phase, m| {
        if side == Side::A && phase == Phase::Roster {
            let last = m.len() - 1;
            m[last] ^= 1;
        }
    });
    assert_eq!(b.unwrap_err(), V2Error::Tampered);
    assert_eq!(a.unwrap_err(), V2Error::PeerAborted);
    // A roster sealed under another pairing's keys (a relay replaying or swapping).
    let mut other = None;
    let (_, _) = run(&c, &c, &mut |side, phase, m| {
        if side == Side::B && phase == Phase::Roster {
            other = Some(m.clone());
        }
    });
    let other = other.unwrap();
    let (a, b) = run(&c, &c, &mut |side, phase, m| {
        if side == Side::B && phase == Phase::Roster {
            *m = other.clone();
        }
    });
    assert_eq!(a.unwrap_err(), V2Error::Tampered);
    assert_eq!(b.unwrap_err(), V2Error::PeerAborted);
    // A's own roster reflected back to A (the associated data names the side).
    let mut mine = None;
    let (a, _) = run(&c, &c, &mut |side, phase, m| match (side, phase) {
        (Side::A, Phase::Roster) => mine = Some(m.clone()),
        (Side::B, Phase::Roster) => *m = mine.clone().unwrap(),
        _ => {}
    });
    assert_eq!(a.unwrap_err(), V2Error::Tampered);
    // An altered PAKE message: the keys differ, both see a mismatch.
    let (a, b) = run(&c, &c, &mut |side, phase, m| {
        if side == Side::A && phase == Phase::Pake {
            *m = Session::start(Side::A, &code("4821-abandon-abandon-abandon")).1;
        }
    });
    assert_eq!(a.unwrap_err(), V2Error::CodeMismatch);
    assert_eq!(b.unwrap_err(), V2Error::CodeMismatch);
}

fn signed_entry(transcript: &[u8; 32], side: Side, name: &str, id: &Identity) -> SignedJail {
    let name: DnsLabel = name.to_string().try_into().unwrap();
    let address = id.address();
    SignedJail {
        signature: hex::encode(id.sign(&entry_message(transcript, side, &name, address))),
        name,
        ygg_address: address,
        public_key: hex::encode(id.public_key()),
    }
}

#[test]
fn roster_entries_must_be_signed_by_the_key_that_owns_the_address() {
    let t = [7u8; 32];
    let id = Identity::from_seed(&[1; 32]);
    let other = Identity::from_seed(&[2; 32]);
    let good = signed_entry(&t, Side::A, "web", &id);
    let ok = SignedRoster {
        jails: vec![good.clone()],
    };
    assert_eq!(verify_roster(&ok, &t, Side::A, 256).unwrap().jails.len(), 1);
    // Signed over another transcript, or by the other side: refused.
    assert!(matches!(
        verify_roster(&ok, &[8; 32], Side::A, 256),
        Err(V2Error::BadSignature { .. })
    ));
    assert!(matches!(
        verify_roster(&ok, &t, Side::B, 256),
        Err(V2Error::BadSignature { .. })
    ));
    // The name changed after signing.
    let mut renamed = good.clone();
    renamed.name = "db".to_string().try_into().unwrap();
    assert!(matches!(
        verify_roster(
            &SignedRoster {
                jails: vec![renamed]
            },
            &t,
            Side::A,
            256
        ),
        Err(V2Error::BadSignature { .. })
    ));
    // An address the key does not derive (someone else's jail), even with a valid
    // signature by the listed key over that address.
    let mut stolen = good.clone();
    stolen.ygg_address = other.address();
    stolen.signature = hex::encode(id.sign(&entry_message(
        &t,
        Side::A,
        &stolen.name,
        stolen.ygg_address,
    )));
    let err = verify_roster(
        &SignedRoster {
            jails: vec![stolen],
        },
        &t,
        Side::A,
        256,
    )
    .unwrap_err();
    assert!(matches!(err, V2Error::AddressNotOwned { .. }), "{err}");
    // The other key, signing for an address it owns, under the first key's entry.
    let mut swapped_key = good.clone();
    swapped_key.public_key = hex::encode(other.public_key());
    assert!(matches!(
        verify_roster(
            &SignedRoster {
                jails: vec![swapped_key]
            },
            &t,
            Side::A,
            256
        ),
        Err(V2Error::AddressNotOwned { .. })
    ));
    // Garbage keys and signatures are malformed, not panics.
    let mut bad = good.clone();
    bad.signature = "00".into();
    assert!(matches!(
        verify_roster(&SignedRoster { jails: vec![bad] }, &t, Side::A, 256),
        Err(V2Error::Malformed(_))
    ));
    // Too many jails, duplicate names.
    let dup = SignedRoster {
        jails: vec![good.clone(), signed_entry(&t, Side::A, "web", &other)],
    };
    assert!(matches!(
        verify_roster(&dup, &t, Side::A, 256),
        Err(V2Error::Malformed(_))
    ));
    assert!(matches!(
        verify_roster(
            &SignedRoster {
                jails: vec![good.clone(), signed_entry(&t, Side::A, "db", &other)]
            },
            &t,
            Side::A,
            1
        ),
        Err(V2Error::Malformed(_))
    ));
}

#[test]
fn a_sealed_roster_with_a_bad_entry_is_refused_after_opening() {
    let c = code("4821-zebra-night-climb");
    let (mut a, pa) = Session::start(Side::A, &c);
    let (mut b, pb) = Session::start(Side::B, &c);
    let ca = a.receive_pake(&pb).unwrap();
    let cb = b.receive_pake(&pa).unwrap();
    a.receive_confirm(&cb).unwrap();
    b.receive_confirm(&ca).unwrap();
    // A lies about one address: it signs with a key that does not own it. Seal by hand.
    let t = a.transcript().unwrap();
    let id = Identity::from_seed(&[1; 32]);
    let mut lie = signed_entry(&t, Side::A, "web", &id);
    lie.ygg_address = Identity::from_seed(&[9; 32]).address();
    let plain = serde_json::to_vec(&SignedRoster { jails: vec![lie] }).unwrap();
    let keys = a.keys().unwrap();
    let cipher = XChaCha20Poly1305::new(keys.roster.as_ref().into());
    let nonce = [3u8; 24];
    let mut sealed = nonce.to_vec();
    sealed.extend(
        cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &a.aad(Side::A),
                },
            )
            .unwrap(),
    );
    assert!(matches!(
        b.open_roster(&sealed, 256),
        Err(V2Error::AddressNotOwned { .. })
    ));
}

#[test]
fn steps_out_of_order_are_refused() {
    let c = code("4821-zebra-night-climb");
    let (mut a, _) = Session::start(Side::A, &c);
    assert_eq!(a.seal_roster(&[]).unwrap_err(), V2Error::OutOfOrder);
    assert_eq!(
        a.receive_confirm(&[0; 32]).unwrap_err(),
        V2Error::OutOfOrder
    );
    assert!(matches!(
        a.receive_pake(b"short"),
        Err(V2Error::Malformed(_))
    ));
}

#[test]
fn codes() {
    let c = V2Code::random(4821).unwrap();
    let text = c.code();
    assert!(text.as_str().starts_with("4821-"));
    assert_eq!(V2Code::parse(&text), Some(c.clone()));
    assert!(!format!("{c:?}").contains(text.as_str().split('-').nth(1).unwrap()));
    for not_v2 in [
        "81-zephyr-night-climb",
        "999-zephyr-night-climb",
        "04821-zebra-night-climb",
        "4821-zebra-night",
        "4821-zebra-night-climb-x",
        "4821-zebra-night-notaword",
        "1000000-zephyr-night-climb",
        "a1b2c3",
    ] {
        assert_eq!(V2Code::parse(&not_v2.parse().unwrap()), None, "{not_v2}");
    }
}

#[test]
fn wire_messages_are_bounded_and_strict() {
    let m = Message {
        side: Side::B,
        phase: Phase::Pake,
        body: vec![1, 2, 3],
    };
    let json = serde_json::to_vec(&m.to_wire()).unwrap();
    assert_eq!(parse_post(&json).unwrap(), m);
    assert!(parse_post(br#"{"side":"c","phase":"pake","body":""}"#).is_err());
    assert!(parse_post(br#"{"side":"a","phase":"pake","body":"!!"}"#).is_err());
    assert!(parse_post(br#"{"side":"a","phase":"done","body":"AA=="}"#).is_err());
    assert!(parse_post(br#"{"side":"a","phase":"pake","body":"","x":1}"#).is_err());
    let big = B64.encode(vec![0u8; MAX_MESSAGE_BYTES + 1]);
    let body = format!(r#"{{"side":"a","phase":"roster","body":"{big}"}}"#);
    assert!(parse_post(body.as_bytes()).is_err());
}
