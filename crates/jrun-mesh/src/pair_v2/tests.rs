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
    SignedJail {
        signature: id.sign(&entry_message(transcript, side, &name, id.address())),
        name,
        public_key: id.public_key(),
    }
}

fn one(j: &SignedJail) -> SignedRoster {
    SignedRoster {
        jails: vec![j.clone()],
    }
}

fn refused(roster: &SignedRoster, t: &[u8; 32]) -> V2Error {
    verify_roster(roster, t, Side::A, 256).unwrap_err()
}

#[test]
fn roster_entries_must_be_signed_by_the_key_that_owns_the_address() {
    let t = [7u8; 32];
    let id = Identity::from_seed(&[1; 32]);
    let other = Identity::from_seed(&[2; 32]);
    let good = signed_entry(&t, Side::A, "web", &id);
    // The address is the one the key derives, whatever the sender had in mind.
    let ok = verify_roster(&one(&good), &t, Side::A, 256).unwrap();
    assert_eq!(
        ok.jails,
        [RosterJail {
            name: good.name.clone(),
            ygg_address: id.address()
        }]
    );
    // Signed over another transcript (another pairing), or as the other side: refused.
    assert!(matches!(
        verify_roster(&one(&good), &[8; 32], Side::A, 256),
        Err(V2Error::BadSignature { .. })
    ));
    assert!(matches!(
        verify_roster(&one(&good), &t, Side::B, 256),
        Err(V2Error::BadSignature { .. })
    ));
    // The name changed after signing.
    let mut renamed = good.clone();
    renamed.name = "db".to_string().try_into().unwrap();
    assert!(matches!(
        refused(&one(&renamed), &t),
        V2Error::BadSignature { .. }
    ));
    // An address the key does not derive (someone else's jail), with a valid signature by
    // the listed key over that address: the receiver checks it against the key's own.
    let stolen = SignedJail {
        signature: id.sign(&entry_message(&t, Side::A, &good.name, other.address())),
        ..good.clone()
    };
    let err = refused(&one(&stolen), &t);
    assert!(matches!(err, V2Error::BadSignature { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("a peer may list only addresses it owns"),
        "{err}"
    );
    // The owner's key (hence its address) under a signature by a key the peer holds.
    let borrowed = SignedJail {
        public_key: other.public_key(),
        ..good.clone()
    };
    assert!(matches!(
        refused(&one(&borrowed), &t),
        V2Error::BadSignature { .. }
    ));
    // A bad signature: one bit off, all zeros, and a key that is not a curve point.
    let mut flipped = good.clone();
    flipped.signature[10] ^= 1;
    assert!(matches!(
        refused(&one(&flipped), &t),
        V2Error::BadSignature { .. }
    ));
    let zero = SignedJail {
        signature: [0; 64],
        ..good.clone()
    };
    assert!(matches!(
        refused(&one(&zero), &t),
        V2Error::BadSignature { .. }
    ));
    let not_a_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    let garbage = SignedJail {
        public_key: not_a_point,
        ..good.clone()
    };
    assert!(matches!(
        refused(&one(&garbage), &t),
        V2Error::BadSignature { .. }
    ));
    // One bad entry refuses the whole roster.
    let mixed = SignedRoster {
        jails: vec![signed_entry(&t, Side::A, "db", &other), stolen],
    };
    assert!(matches!(refused(&mixed, &t), V2Error::BadSignature { .. }));
    // A key listed twice, a name listed twice, too many jails.
    let twice = SignedRoster {
        jails: vec![good.clone(), signed_entry(&t, Side::A, "db", &id)],
    };
    assert!(matches!(refused(&twice, &t), V2Error::Malformed(_)));
    let dup = SignedRoster {
        jails: vec![good.clone(), signed_entry(&t, Side::A, "web", &other)],
    };
    assert!(matches!(refused(&dup, &t), V2Error::Malformed(_)));
    let two = SignedRoster {
        jails: vec![good.clone(), signed_entry(&t, Side::A, "db", &other)],
    };
    assert!(matches!(
        verify_roster(&two, &t, Side::A, 1),
        Err(V2Error::Malformed(_))
    ));
}

/// Seals `plain` as `from`'s roster message, as a peer (or someone holding the keys) could.
fn seal_by_hand(from: &Session, plain: &[u8]) -> Vec<u8> {
    let keys = from.keys().unwrap();
    let cipher = XChaCha20Poly1305::new(keys.roster.as_ref().into());
    let nonce = [3u8; 24];
    let mut sealed = nonce.to_vec();
    sealed.extend(
        cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &from.aad(from.side),
                },
            )
            .unwrap(),
    );
    sealed
}

#[test]
fn a_sealed_roster_with_a_forged_entry_is_refused_after_opening_and_nothing_is_returned() {
    let (a, mut b) = confirmed();
    let t = a.transcript().unwrap();
    let id = Identity::from_seed(&[1; 32]);
    let victim = Identity::from_seed(&[9; 32]);
    let honest = signed_entry(&t, Side::A, "web", &id);
    let forgeries = [
        // An address its key does not own (the victim's), signed by the key.
        SignedJail {
            signature: id.sign(&entry_message(&t, Side::A, &honest.name, victim.address())),
            ..honest.clone()
        },
        // The victim's key, hence its address, without the victim's signature.
        SignedJail {
            public_key: victim.public_key(),
            ..honest.clone()
        },
        // A signature with one bit off.
        SignedJail {
            signature: {
                let mut s = honest.signature;
                s[0] ^= 0x80;
                s
            },
            ..honest.clone()
        },
        // An entry signed for another pairing (another transcript).
        signed_entry(&[0xee; 32], Side::A, "web", &id),
    ];
    for forged in forgeries {
        let plain = SignedRoster {
            jails: vec![
                signed_entry(&t, Side::A, "db", &Identity::from_seed(&[2; 32])),
                forged,
            ],
        }
        .encode()
        .unwrap();
        let err = b.open_roster(&seal_by_hand(&a, &plain), 256).unwrap_err();
        assert!(matches!(err, V2Error::BadSignature { .. }), "{err}");
        // Nothing was taken in: no roster recorded, so no acknowledgement either.
        assert_eq!(b.ack().unwrap_err(), V2Error::OutOfOrder);
    }
    // The same roster, honest, goes through.
    let plain = one(&honest).encode().unwrap();
    let got = b.open_roster(&seal_by_hand(&a, &plain), 256).unwrap();
    assert_eq!(got.jails[0].ygg_address, id.address());
}

#[test]
fn the_sealed_roster_encoding_is_strict() {
    let t = [7u8; 32];
    let roster = SignedRoster {
        jails: vec![
            signed_entry(&t, Side::A, "web", &Identity::from_seed(&[1; 32])),
            signed_entry(&t, Side::A, &"x".repeat(63), &Identity::from_seed(&[2; 32])),
        ],
    };
    let bytes = roster.encode().unwrap();
    assert_eq!(bytes.len(), 2 + (1 + 3 + 96) + (1 + 63 + 96));
    assert_eq!(SignedRoster::decode(&bytes, 256).unwrap(), roster);
    let bad = |bytes: &[u8], max: usize| {
        matches!(SignedRoster::decode(bytes, max), Err(V2Error::Malformed(_)))
    };
    // Cut anywhere, or with a byte more, it is refused.
    for cut in 0..bytes.len() {
        assert!(bad(&bytes[..cut], 256), "cut at {cut}");
    }
    assert!(bad(&[bytes.as_slice(), &[0]].concat(), 256));
    // More jails than allowed, names that are no DNS label.
    assert!(bad(&bytes, 1));
    for name in [&b""[..], b"Web", b"a.b", b"-a", &[0xff, 0xfe]] {
        let mut b = vec![0, 1, name.len() as u8];
        b.extend_from_slice(name);
        b.extend_from_slice(&[0; 96]);
        assert!(bad(&b, 256), "{name:?}");
    }
    assert_eq!(SignedRoster::decode(&[0, 0], 256).unwrap().jails, []);
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
    // After the PAKE a side may seal (the joiner sends its roster with its confirmation)
    // but opens the peer's roster only once the peer's confirmation verified.
    let (mut b, pb) = Session::start(Side::B, &c);
    let (mut a2, pa) = Session::start(Side::A, &c);
    b.receive_pake(&pa).unwrap();
    a2.receive_pake(&pb).unwrap();
    let sealed = b.seal_roster(&jails("b", 1)).unwrap();
    assert_eq!(
        a2.open_roster(&sealed, 256).unwrap_err(),
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

fn frame(side: u8, phase: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![side, phase];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn wire_messages_are_bounded_and_strict() {
    let m = Message {
        side: Side::B,
        phase: Phase::Pake,
        body: vec![1, 2, 3],
    };
    let one = encode_messages(std::slice::from_ref(&m));
    assert_eq!(one, frame(2, 1, &[1, 2, 3]));
    let got: Vec<Message> = parse_post(&one)
        .unwrap()
        .iter()
        .map(Frame::to_message)
        .collect();
    assert_eq!(got, [m]);
    assert_eq!(parse_post(&one).unwrap()[0].wire, &one[..]);
    let posted = |list: &[&[u8]]| parse_post(&list.concat()).map(|l| l.len());
    assert_eq!(posted(&[&one, &one, &one]), Ok(3));
    assert!(posted(&[&one, &one, &one, &one]).is_err(), "at most 3");
    assert!(posted(&[]).is_err());
    let (ack_a, pake_a, abort_a) = (frame(1, 4, &[0]), frame(1, 1, &[0]), frame(1, 5, &[]));
    assert!(posted(&[&pake_a, &ack_a]).is_ok());
    assert!(posted(&[&pake_a, &abort_a]).is_ok());
    assert!(
        posted(&[&ack_a, &pake_a]).is_err(),
        "nothing after the last"
    );
    assert!(posted(&[&pake_a, &one]).is_err(), "one side a post");
    assert!(posted(&[&frame(3, 1, &[])]).is_err(), "no side c");
    assert!(posted(&[&frame(0, 1, &[])]).is_err());
    assert!(posted(&[&frame(1, 5, &[0])]).is_err(), "an abort is empty");
    assert!(posted(&[&frame(1, 6, &[])]).is_err(), "no phase 6");
    assert!(posted(&[&frame(1, 0, &[])]).is_err());
    // Cut short: in the head, in the body; and bytes after the last frame.
    assert!(posted(&[&one[..4]]).is_err());
    assert!(posted(&[&one[..one.len() - 1]]).is_err());
    assert!(posted(&[&one, &[2]]).is_err());
    // A length over the limit is refused from the head alone.
    let mut big = frame(1, 3, &[]);
    big[2..6].copy_from_slice(&(MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes());
    assert!(posted(&[&big])
        .unwrap_err()
        .to_string()
        .contains("larger than"));
    let mut huge = frame(1, 3, &[]);
    huge[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(posted(&[&huge]).is_err());
    // An answer: a token for the claim, the peer's messages.
    let (token, list) = parse_posted(&[0], 5).unwrap();
    assert_eq!((token, list), (None, vec![]));
    assert!(parse_posted(&[], 5).is_err(), "no token field");
    assert!(parse_posted(&[&[0][..], &pake_a, &pake_a].concat(), 1).is_err());
    let t = crate::protocol::CreatorToken::random().unwrap();
    let answer = encode_answer(Some(&t), [&pake_a[..], &ack_a[..]]);
    let (token, list) = parse_posted(&answer, 5).unwrap();
    assert_eq!(token, Some(t));
    assert_eq!(list.len(), 2);
    assert!(
        parse_messages(&answer, 5).is_err(),
        "a read is answered without a token"
    );
    assert_eq!(
        parse_messages(&encode_answer(None, [&pake_a[..]]), 5)
            .unwrap()
            .len(),
        1
    );
    assert!(
        parse_posted(&[&[32u8][..], &[b'g'; 32]].concat(), 5).is_err(),
        "not hex"
    );
    assert!(parse_posted(&[&[31u8][..], &[b'a'; 31]].concat(), 5).is_err());
    assert!(
        parse_posted(&[&[32u8][..], &[b'a'; 31]].concat(), 5).is_err(),
        "cut short"
    );
}

/// A confirmed pair of sessions, ready to seal rosters.
fn confirmed() -> (Session, Session) {
    let c = code("4821-zebra-night-climb");
    let (mut a, pa) = Session::start(Side::A, &c);
    let (mut b, pb) = Session::start(Side::B, &c);
    let ca = a.receive_pake(&pb).unwrap();
    let cb = b.receive_pake(&pa).unwrap();
    a.receive_confirm(&cb).unwrap();
    b.receive_confirm(&ca).unwrap();
    (a, b)
}

type Jail = (DnsLabel, Identity);

/// `n` jails whose names are `name_len` characters long.
fn named_jails(n: usize, name_len: usize) -> Vec<(DnsLabel, Identity)> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let name = format!("j{i:0>w$}", w = name_len - 1);
            (name.try_into().unwrap(), Identity::from_seed(&seed))
        })
        .collect()
}

/// The body of the `POST` that carries `jails` as a v1 roster.
fn v1_post_bytes(jails: &[(DnsLabel, Identity)]) -> usize {
    let roster = Roster {
        jails: jails
            .iter()
            .map(|(name, id)| RosterJail {
                name: name.clone(),
                ygg_address: id.address(),
            })
            .collect(),
    };
    serde_json::to_vec(&roster).unwrap().len()
}

/// The body of the larger of the two `POST`s that carry `jails` as a real sealed v2
/// roster: the creator's confirm, roster and ack, the joiner's PAKE, confirm and roster.
fn v2_post_bytes(session: &mut Session, jails: &[(DnsLabel, Identity)]) -> usize {
    let body = session.seal_roster(jails).unwrap();
    let c = code("4821-zebra-night-climb");
    let (_, pake) = Session::start(Side::B, &c);
    let post = |side, phases: [(Phase, Vec<u8>); 3]| {
        let messages: Vec<Message> = phases
            .into_iter()
            .map(|(phase, body)| Message { side, phase, body })
            .collect();
        encode_messages(&messages).len()
    };
    let mac = vec![0; 32];
    let a = post(
        Side::A,
        [
            (Phase::Confirm, mac.clone()),
            (Phase::Roster, body.clone()),
            (Phase::Ack, mac.clone()),
        ],
    );
    let b = post(
        Side::B,
        [
            (Phase::Pake, pake),
            (Phase::Confirm, mac),
            (Phase::Roster, body),
        ],
    );
    a.max(b)
}

/// The most jails (of names `name_len` long, at most 256) whose post fits in `limit`.
fn most_that_fit(name_len: usize, limit: usize, size: &mut dyn FnMut(&[Jail]) -> usize) -> usize {
    let all = named_jails(256, name_len);
    let (mut fits, mut over) = (0, all.len() + 1);
    while over - fits > 1 {
        let mid = (fits + over) / 2;
        if size(&all[..mid]) <= limit {
            fits = mid;
        } else {
            over = mid;
        }
    }
    fits
}

#[test]
fn how_many_jails_a_roster_fits_in_the_default_relay_body() {
    let limit = RELAY_DEFAULT_MAX_BODY;
    let (mut a, _) = confirmed();
    let mut fit = Vec::new();
    for name_len in [8, 20, 63] {
        let v1 = most_that_fit(name_len, limit, &mut |j| v1_post_bytes(j));
        let v2 = most_that_fit(name_len, limit, &mut |j| v2_post_bytes(&mut a, j));
        eprintln!(
            "names of {name_len} characters, {limit}-byte body: v1 {v1} jails, v2 {v2} jails"
        );
        fit.push(v2);
    }
    // At least 100 jails whose names are up to 20 characters long.
    assert!(fit[0] >= 100 && fit[1] >= 100, "{fit:?}");
}

#[test]
fn the_post_size_is_known_before_anything_is_sealed_or_sent() {
    let (mut a, _) = confirmed();
    for (n, name_len) in [(0, 8), (1, 8), (2, 63), (37, 20), (116, 8), (200, 11)] {
        let jails = named_jails(n, name_len);
        let names = jails.iter().map(|(name, _)| name);
        assert_eq!(
            roster_post_bytes(names),
            v2_post_bytes(&mut a, &jails),
            "{n}"
        );
    }
    // What fits the default relay passes; one jail more is refused, naming the limit.
    let fits = most_that_fit(20, RELAY_DEFAULT_MAX_BODY, &mut |j| {
        roster_post_bytes(j.iter().map(|(name, _)| name))
    });
    let jails = named_jails(fits + 1, 20);
    let names: Vec<&DnsLabel> = jails.iter().map(|(name, _)| name).collect();
    check_roster_fits(names[..fits].iter().copied(), None).unwrap();
    let err = check_roster_fits(names.iter().copied(), None).unwrap_err();
    let V2Error::RosterTooLarge {
        jails: n,
        bytes,
        limit,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*n, *limit), (fits + 1, 16384));
    assert!(*bytes > 16384);
    let text = err.to_string();
    assert!(
        text.contains("16384 bytes") && text.contains("--max-body") && text.contains("--share"),
        "{text}"
    );
    // The limit the relay states is the one checked.
    let (all, some) = (names.iter().copied(), names[..fits].iter().copied());
    check_roster_fits(all, Some(64 * 1024)).unwrap();
    let err = check_roster_fits(some, Some(1024)).unwrap_err();
    assert!(
        matches!(err, V2Error::RosterTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("this relay accepts"), "{err}");
}

#[test]
fn a_roster_larger_than_a_message_is_not_sealed() {
    let (mut a, _) = confirmed();
    // 63-character names: 160 bytes a jail, so 700 jails exceed 96 KiB.
    let jails = named_jails(700, 63);
    let err = a.seal_roster(&jails).unwrap_err();
    assert!(
        matches!(
            err,
            V2Error::RosterTooLarge {
                jails: 700,
                limit: MAX_MESSAGE_BYTES,
                ..
            }
        ),
        "{err}"
    );
}
