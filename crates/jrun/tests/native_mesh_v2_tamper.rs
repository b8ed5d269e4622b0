//! Native, end to end (root): a relay that tampers with pairing v2. Two instances pair
//! through a man in the middle on 127.0.0.1 that passes every request on to a real
//! `jrun relay` but changes, per scenario, one message inside a posted batch or inside the
//! peer's messages an answer hands over: a bit of a sealed roster, a sealed roster another
//! pairing carried, a side's own roster reflected back to it, one bit of a PAKE message,
//! one bit of a key confirmation. Each time both `jrun pair` exit non-zero
//! saying why, and neither instance changed: the jail's `mesh_peers` set, the resolver's
//! records and `jrun pair --list --json` are byte-identical to before. Then the same man
//! in the middle, passing everything on untouched, lets them pair: the failures were the
//! tampering's.

mod local_env;
mod native_support;

use std::sync::{Arc, Mutex};

use jrun_mesh::pair_v2::{self, Frame, Message, Phase, Side};
use native_support::fake_relay::{forward, HttpStub, Request};
use native_support::pairing::{instance, pair, snapshot, unwrapped, Pairing, Relay};

/// What the man in the middle does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    /// Passes everything on.
    Nothing,
    /// Flips one bit of this side's sealed roster as it is posted.
    FlipRoster(Side),
    /// Hands side a, as b's roster, the roster b sent in an earlier pairing.
    ReplayOldRosterToA,
    /// Hands side b, as a's roster, the roster b itself sent.
    ReflectRosterToB,
    /// Flips the sign bit of the point in this side's PAKE message as it is posted: still
    /// a valid point, so the peer derives another key instead of refusing the message.
    FlipPake(Side),
    /// Flips one bit of this side's key confirmation as it is posted.
    FlipConfirm(Side),
}

#[derive(Default)]
struct Seen {
    /// Every message posted, as posted, with its nameplate.
    posted: Vec<(u32, Message)>,
    /// Each side's token (`Authorization` value), learnt from the relay's answers: whose
    /// fetch a `GET` is.
    tokens: Vec<(String, Side)>,
    /// How many messages were changed.
    altered: usize,
}

impl Seen {
    fn side_of(&self, request: &Request) -> Option<Side> {
        let token = request.header("authorization")?;
        self.tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, s)| *s)
    }

    /// Side a's token from the answer to `POST /v2/nameplate` (JSON).
    fn learn_allocated(&mut self, answer: &[u8]) {
        let answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
        let token = answer["token"].as_str().unwrap();
        self.tokens.push((format!("Bearer {token}"), Side::A));
    }

    /// Side b's token from the answer to the post that claimed side b (frames).
    fn learn_claimed(&mut self, answer: &[u8]) {
        if let Ok((Some(token), _)) = pair_v2::parse_posted(answer, 5) {
            self.tokens
                .push((format!("Bearer {}", token.as_str()), Side::B));
        }
    }
}

struct Mitm {
    stub: HttpStub,
    tamper: Arc<Mutex<Tamper>>,
    seen: Arc<Mutex<Seen>>,
}

/// The nameplate of a `/v2/nameplate/{n}/messages` path.
fn nameplate(path: &str) -> Option<u32> {
    path.strip_prefix("/v2/nameplate/")?
        .split_once("/messages")?
        .0
        .parse()
        .ok()
}

fn roster_of(seen: &Seen, side: Side, which: impl Fn(u32) -> bool) -> Option<Vec<u8>> {
    seen.posted
        .iter()
        .rev()
        .find(|(n, m)| which(*n) && m.side == side && m.phase == Phase::Roster)
        .map(|(_, m)| m.body.clone())
}

impl Mitm {
    fn start(upstream: &str) -> Self {
        let tamper = Arc::new(Mutex::new(Tamper::Nothing));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (t, s, upstream) = (tamper.clone(), seen.clone(), upstream.to_string());
        let stub = HttpStub::serve(move |request: &Request| {
            let tamper = *t.lock().unwrap();
            let method = request.line.split(' ').next().unwrap_or("");
            let n = nameplate(request.path());
            // Requests wait at the relay for the peer's: the lock is not held meanwhile.
            let body = match (method, n) {
                ("POST", Some(n)) => on_post(tamper, n, &request.body, &mut s.lock().unwrap()),
                _ => request.body.clone(),
            };
            let (status, content_type, answer) = forward(&upstream, request, &body);
            let mut seen = s.lock().unwrap();
            if !status.starts_with("200") {
                return (status, content_type, answer);
            }
            let token = request.header("authorization");
            if method == "POST" && request.path() == "/v2/nameplate" {
                seen.learn_allocated(&answer);
                return (status, content_type, answer);
            }
            let Some(n) = n else {
                return (status, content_type, answer);
            };
            // Without a token it is the joiner: its first read, or the post that claims
            // side b (whose answer carries b's token).
            let to = match token {
                None => {
                    seen.learn_claimed(&answer);
                    Some(Side::B)
                }
                Some(_) => seen.side_of(request),
            };
            match to {
                Some(to) => {
                    let answer = on_deliver(tamper, n, to, &answer, &mut seen);
                    (status, content_type, answer)
                }
                None => (status, content_type, answer),
            }
        });
        Mitm { stub, tamper, seen }
    }

    fn set(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
        self.seen.lock().unwrap().altered = 0;
    }

    fn altered(&self) -> usize {
        self.seen.lock().unwrap().altered
    }
}

/// A post's batch of messages, with one changed or not; every one is recorded as the
/// client sent it.
fn on_post(tamper: Tamper, n: u32, body: &[u8], seen: &mut Seen) -> Vec<u8> {
    let Ok(frames) = pair_v2::parse_post(body) else {
        return body.to_vec();
    };
    let mut batch: Vec<Message> = frames.iter().map(Frame::to_message).collect();
    seen.posted.extend(batch.iter().map(|m| (n, m.clone())));
    let mut changed = false;
    for m in &mut batch {
        let flip = match (tamper, m.phase) {
            (Tamper::FlipRoster(side), Phase::Roster) if side == m.side => {
                Some((m.body.len() / 2, 1))
            }
            (Tamper::FlipPake(side), Phase::Pake) if side == m.side => {
                Some((m.body.len() - 1, 0x80))
            }
            (Tamper::FlipConfirm(side), Phase::Confirm) if side == m.side => Some((0, 1)),
            _ => None,
        };
        if let Some((at, bit)) = flip {
            m.body[at] ^= bit;
            seen.altered += 1;
            changed = true;
        }
    }
    if !changed {
        return body.to_vec();
    }
    pair_v2::encode_messages(&batch)
}

/// The peer's messages handed to side `to` (in the answer to a read or to a post), changed
/// or not.
fn on_deliver(tamper: Tamper, n: u32, to: Side, answer: &[u8], seen: &mut Seen) -> Vec<u8> {
    let (from, replacement) = match (tamper, to) {
        (Tamper::ReplayOldRosterToA, Side::A) => (
            Side::B,
            Some(roster_of(seen, Side::B, |m| m != n).expect("b's roster of an earlier pairing")),
        ),
        (Tamper::ReflectRosterToB, Side::B) => (Side::A, roster_of(seen, Side::B, |m| m == n)),
        _ => return answer.to_vec(),
    };
    let (token, mut list) = pair_v2::parse_posted(answer, 5).unwrap();
    if let Some(i) = list
        .iter()
        .position(|m| m.side == from && m.phase == Phase::Roster)
    {
        match replacement {
            Some(body) => {
                list[i].body = body;
                seen.altered += 1;
            }
            // b has not sent its roster yet: hold a's back (the client fetches it again),
            // as any relay may delay a message.
            None => list.truncate(i),
        }
    }
    let frames: Vec<Vec<u8>> = list
        .iter()
        .map(|m| pair_v2::encode_messages(std::slice::from_ref(m)))
        .collect();
    pair_v2::encode_answer(token.as_ref(), frames.iter().map(Vec::as_slice))
}

/// Both sides failed, each saying `a` / `b` (in a's and b's own words).
fn assert_both_refused(p: &Pairing, a: &str, b: &str) {
    let (said_a, said_b) = (unwrapped(&p.creator_said), unwrapped(&p.joiner_said()));
    assert!(!p.creator_ok, "a paired: {said_a}");
    assert!(!p.joined.status.success(), "b paired: {said_b}");
    assert!(said_a.contains(a), "a should say {a:?}: {said_a}");
    assert!(said_b.contains(b), "b should say {b:?}: {said_b}");
    for said in [&said_a, &said_b] {
        assert!(said.contains("nothing was changed"), "{said}");
    }
}

const ALTERED: &str = "a pairing message was altered on the way";
const GAVE_UP: &str = "your peer's jrun gave up the pairing";
const NO_MATCH: &str = "the code does not match";

#[test]
fn a_tampering_relay_is_refused_on_both_sides_and_changes_nothing() {
    let relay = Relay::start();
    let mitm = Mitm::start(&relay.url);
    let a = instance(&mitm.stub.url(), "web");
    let b = instance(&mitm.stub.url(), "app");
    let (before_a, before_b) = (snapshot(&a, &["web"]), snapshot(&b, &["app"]));

    // (tampering, what a says, what b says). The side that finds the tampering says so
    // (or, for a PAKE or confirmation, that the code does not match: the keys differ);
    // the other one learns that its peer gave up. The first scenario also gives the man
    // in the middle b's roster of another pairing for the second to replay.
    let scenarios = [
        (Tamper::FlipRoster(Side::A), GAVE_UP, ALTERED),
        (Tamper::FlipRoster(Side::B), ALTERED, GAVE_UP),
        (Tamper::ReplayOldRosterToA, ALTERED, GAVE_UP),
        (Tamper::ReflectRosterToB, GAVE_UP, ALTERED),
        (Tamper::FlipPake(Side::A), NO_MATCH, NO_MATCH),
        (Tamper::FlipConfirm(Side::B), NO_MATCH, GAVE_UP),
    ];
    for (tamper, said_a, said_b) in scenarios {
        mitm.set(tamper);
        let p = pair(&a, &b, |c| c.to_string());
        assert_eq!(mitm.altered(), 1, "{tamper:?} changed one message");
        assert_both_refused(&p, said_a, said_b);
        assert_eq!(snapshot(&a, &["web"]), before_a, "{tamper:?} changed a");
        assert_eq!(snapshot(&b, &["app"]), before_b, "{tamper:?} changed b");
    }

    // The same path, untouched: they pair.
    mitm.set(Tamper::Nothing);
    let p = pair(&a, &b, |c| c.to_string());
    assert!(p.creator_ok, "{}", p.creator_said);
    assert!(p.joined.status.success(), "{}", p.joiner_said());
    assert!(snapshot(&a, &["web"])[1].contains(&format!("app.{}.jrun", p.code)));
    assert!(snapshot(&b, &["app"])[1].contains(&format!("web.{}.jrun", p.code)));
}
