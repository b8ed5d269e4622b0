//! Pairing v2's routes over real HTTP on 127.0.0.1: the offer, batches of messages, side
//! tokens, posts and reads that wait for the peer (capped in time and in number), forgetting
//! once each side was handed the other's last message or on an abort, the TTL, and v1's
//! limits applied to v2.
//!
//! Messages go as frames (side, phase, 4-byte length, body); the helpers here build and
//! read them by hand, not with `pair_v2`'s codec, and show an answer as JSON
//! (`{"token":…,"messages":[{"side","phase","body"}]}`, bodies as text) to compare it.

mod common;

use std::time::Duration;

use common::{relaxed, TestRelay};
use jrun_relay::RelayConfig;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const SIDES: [&str; 2] = ["a", "b"];
const PHASES: [&str; 5] = ["pake", "confirm", "roster", "ack", "abort"];

/// A name's wire byte: 1 for the first of `names`; an unknown name is 9.
fn code_of(names: &[&str], name: &str) -> u8 {
    names
        .iter()
        .position(|n| *n == name)
        .map_or(9, |i| i as u8 + 1)
}

/// The frames of `(side, phase, body)` messages.
fn frames(messages: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (side, phase, body) in messages {
        out.push(code_of(&SIDES, side));
        out.push(code_of(&PHASES, phase));
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// A v2 answer (token field, then frames) as JSON.
fn answer_json(bytes: &[u8]) -> Value {
    let len = usize::from(bytes[0]);
    let mut rest = &bytes[1 + len..];
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let body_len = u32::from_be_bytes(rest[2..6].try_into().unwrap()) as usize;
        messages.push(json!({
            "side": SIDES[usize::from(rest[0]) - 1],
            "phase": PHASES[usize::from(rest[1]) - 1],
            "body": String::from_utf8(rest[6..6 + body_len].to_vec()).unwrap(),
        }));
        rest = &rest[6 + body_len..];
    }
    let mut answer = json!({ "messages": messages });
    if len > 0 {
        answer["token"] = json!(std::str::from_utf8(&bytes[1..1 + len]).unwrap());
    }
    answer
}

/// The status and the body: JSON as it is, a v2 answer as [`answer_json`] shows it.
async fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let framed = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/octet-stream");
    let bytes = r.bytes().await.unwrap();
    if framed {
        return (status, answer_json(&bytes));
    }
    let text = String::from_utf8_lossy(&bytes);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

async fn allocate(relay: &TestRelay) -> (u64, String) {
    let (status, body) = json_of(
        Client::new()
            .post(format!("{}/v2/nameplate", relay.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["nameplate"].as_u64().unwrap(),
        body["token"].as_str().unwrap().to_string(),
    )
}

/// Posts `messages` (`(side, phase, body)`) as one batch, asking for the peer's messages
/// from `after` on, waiting up to `wait` seconds.
async fn post(
    relay: &TestRelay,
    n: u64,
    token: Option<&str>,
    messages: &[(&str, &str, &str)],
    after: usize,
    wait: u64,
) -> (StatusCode, Value) {
    let body = frames(messages);
    post_bytes(
        relay,
        n,
        token,
        body,
        "application/octet-stream",
        after,
        wait,
    )
    .await
}

async fn post_bytes(
    relay: &TestRelay,
    n: u64,
    token: Option<&str>,
    body: Vec<u8>,
    content_type: &str,
    after: usize,
    wait: u64,
) -> (StatusCode, Value) {
    let mut r = Client::new()
        .post(format!(
            "{}/v2/nameplate/{n}/messages?after={after}&wait={wait}",
            relay.url
        ))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    json_of(r.send().await.unwrap()).await
}

async fn send(
    relay: &TestRelay,
    n: u64,
    token: Option<&str>,
    side: &str,
    phase: &str,
    body: &str,
) -> (StatusCode, Value) {
    post(relay, n, token, &[(side, phase, body)], 0, 0).await
}

async fn list_waiting(
    relay: &TestRelay,
    n: u64,
    token: Option<&str>,
    after: usize,
    wait: u64,
) -> (StatusCode, Value) {
    let mut r = Client::new().get(format!(
        "{}/v2/nameplate/{n}/messages?after={after}&wait={wait}",
        relay.url
    ));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    json_of(r.send().await.unwrap()).await
}

async fn list(relay: &TestRelay, n: u64, token: Option<&str>, after: usize) -> (StatusCode, Value) {
    list_waiting(relay, n, token, after, 0).await
}

fn phases(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["side"].as_str().unwrap(),
                m["phase"].as_str().unwrap()
            )
        })
        .collect()
}

/// Waits until `count` requests are parked at the relay.
async fn until_parked(relay: &TestRelay, count: usize) {
    while relay.relay.mailboxes().parked() < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_relay_offers_v2_and_carries_batches_of_opaque_messages() {
    let relay = TestRelay::start(relaxed()).await;
    assert_eq!(
        json_of(
            Client::new()
                .get(format!("{}/v2", relay.url))
                .send()
                .await
                .unwrap()
        )
        .await,
        (
            StatusCode::OK,
            json!({"versions": [2], "max_body_bytes": relaxed().max_body_bytes})
        )
    );
    let (n, ta) = allocate(&relay).await;
    assert!((1000..=9999).contains(&n), "{n}");
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "pake", "AAEC").await,
        (StatusCode::OK, json!({"messages": []}))
    );
    // A joiner without a token reads a's PAKE message, and only that.
    assert_eq!(
        list(&relay, n, None, 0).await,
        (
            StatusCode::OK,
            json!({"messages": [{"side": "a", "phase": "pake", "body": "AAEC"}]})
        )
    );
    // Side b claims with a batch that starts with its PAKE and gets its own token and a's
    // messages after its cursor; a second claim is 409, and so is a joiner's read.
    let batch_b = [
        ("b", "pake", "AwQ="),
        ("b", "confirm", "BQ=="),
        ("b", "roster", "Bg=="),
    ];
    let (status, claimed) = post(&relay, n, None, &batch_b, 1, 0).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(phases(&claimed), Vec::<String>::new());
    let tb = claimed["token"].as_str().unwrap().to_string();
    assert_eq!(
        send(&relay, n, None, "b", "pake", "AA==").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(list(&relay, n, None, 0).await.0, StatusCode::CONFLICT);
    // Posting as a side without its token is an unknown nameplate.
    assert_eq!(
        send(&relay, n, Some(&ta), "b", "ack", "AA==").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&relay, n, None, "a", "confirm", "AA==").await.0,
        StatusCode::NOT_FOUND
    );
    // A side reads only its peer's messages, from its cursor on.
    let (status, all) = list(&relay, n, Some(&ta), 0).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all,
        json!({"messages": [
            {"side": "b", "phase": "pake", "body": "AwQ="},
            {"side": "b", "phase": "confirm", "body": "BQ=="},
            {"side": "b", "phase": "roster", "body": "Bg=="},
        ]})
    );
    assert_eq!(phases(&list(&relay, n, Some(&ta), 2).await.1), ["b/roster"]);
    assert_eq!(phases(&list(&relay, n, Some(&tb), 0).await.1), ["a/pake"]);
    // With a wrong token, or for an unknown nameplate: the same 404.
    let (s2, b2) = list(&relay, n, Some("00000000000000000000000000000000"), 0).await;
    let (s3, b3) = list(&relay, 999_999, Some(&ta), 0).await;
    let (s4, b4) = list(&relay, 999_999, None, 0).await;
    assert_eq!(
        (s2, s3, s4),
        (
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND
        )
    );
    assert!(b2 == b3 && b3 == b4, "{b2} {b3} {b4}");
    // Malformed messages and batches are 400s naming the field; a batch is all or nothing.
    let mut cut = frames(&[("a", "confirm", "AA==")]);
    cut.pop();
    let octets = "application/octet-stream";
    let (status, err) = post_bytes(&relay, n, Some(&ta), cut, octets, 0, 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "messages[0]");
    let mut long = frames(&[("a", "confirm", "")]);
    long[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
    let (status, err) = post_bytes(&relay, n, Some(&ta), long, octets, 0, 0).await;
    assert_eq!(
        (status, &err["field"]),
        (StatusCode::BAD_REQUEST, &json!("messages[0]"))
    );
    let trailing = [frames(&[("a", "confirm", "AA==")]), vec![1]].concat();
    let (status, _) = post_bytes(&relay, n, Some(&ta), trailing, octets, 0, 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The messages are frames, not JSON.
    let json = json!({"messages": [{"side": "a", "phase": "confirm", "body": "AA=="}]});
    let json = json.to_string().into_bytes();
    let (status, _) = post_bytes(&relay, n, Some(&ta), json, "application/json", 0, 0).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for bad in [
        vec![("c", "confirm", "")],
        vec![("a", "done", "")],
        vec![("a", "abort", "AA==")],
        vec![("a", "ack", "AA=="), ("a", "confirm", "AA==")],
        vec![("a", "confirm", "AA=="), ("b", "ack", "AA==")],
        vec![("a", "confirm", ""); 4],
        vec![],
    ] {
        assert_eq!(
            post(&relay, n, Some(&ta), &bad, 0, 0).await.0,
            StatusCode::BAD_REQUEST,
            "{bad:?}"
        );
    }
    assert_eq!(
        post(
            &relay,
            n,
            Some(&ta),
            &[("a", "confirm", "AA=="), ("a", "pake", "AA==")],
            0,
            0
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(phases(&list(&relay, n, Some(&tb), 0).await.1), ["a/pake"]);
    // v1 is untouched beside it.
    assert_eq!(relay.relay.store().pending(), 0);
}

/// The six requests of a pairing (docs/pairing.md): each side's post waits for the peer's
/// next messages; the relay forgets the nameplate once each side was handed the other's
/// last message.
#[tokio::test]
async fn a_pairing_is_six_requests_and_then_the_relay_forgets_it() {
    let relay = TestRelay::start(relaxed()).await;
    let (n, ta) = allocate(&relay).await;
    let creator = {
        let (relay, ta) = (&relay, ta.clone());
        async move {
            let (status, got) = post(relay, n, Some(&ta), &[("a", "pake", "AA==")], 0, 30).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(phases(&got), ["b/pake", "b/confirm", "b/roster"]);
            let (status, got) = post(
                relay,
                n,
                Some(&ta),
                &[
                    ("a", "confirm", "AQ=="),
                    ("a", "roster", "Ag=="),
                    ("a", "ack", "Aw=="),
                ],
                3,
                30,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(phases(&got), ["b/ack"]);
        }
    };
    let joiner = async {
        let (status, got) = list_waiting(&relay, n, None, 0, 30).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(phases(&got), ["a/pake"]);
        let (status, got) = post(
            &relay,
            n,
            None,
            &[
                ("b", "pake", "BA=="),
                ("b", "confirm", "BQ=="),
                ("b", "roster", "Bg=="),
            ],
            1,
            30,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(phases(&got), ["a/confirm", "a/roster", "a/ack"]);
        let tb = got["token"].as_str().unwrap().to_string();
        assert_eq!(relay.relay.mailboxes().pending(), 1);
        let (status, got) = post(&relay, n, Some(&tb), &[("b", "ack", "Bw==")], 4, 0).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(phases(&got), Vec::<String>::new());
    };
    tokio::join!(creator, joiner);
    assert_eq!(relay.relay.mailboxes().pending(), 0);
    assert_eq!(relay.relay.mailboxes().bytes(), 0);
    assert_eq!(relay.relay.mailboxes().parked(), 0);
    assert_eq!(list(&relay, n, Some(&ta), 0).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wait_is_capped_by_the_relay_and_ends_empty() {
    let relay = TestRelay::start(RelayConfig {
        max_wait: Duration::from_secs(1),
        ..relaxed()
    })
    .await;
    let (n, ta) = allocate(&relay).await;
    // Asked for an hour, held for the relay's cap: an empty answer, not an error.
    let started = std::time::Instant::now();
    let (status, got) = list_waiting(&relay, n, Some(&ta), 0, 3600).await;
    assert_eq!((status, phases(&got)), (StatusCode::OK, vec![]));
    let held = started.elapsed();
    assert!(held >= Duration::from_secs(1), "{held:?}");
    let (status, got) = post(&relay, n, Some(&ta), &[("a", "pake", "AA==")], 0, 3600).await;
    assert_eq!((status, phases(&got)), (StatusCode::OK, vec![]));
    assert_eq!(relay.relay.mailboxes().parked(), 0);
    assert_eq!(
        list_waiting(&relay, n, Some(&ta), 0, u64::MAX).await.0,
        StatusCode::OK
    );
    assert_eq!(
        Client::new()
            .get(format!("{}/v2/nameplate/{n}/messages?wait=soon", relay.url))
            .bearer_auth(&ta)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn waiting_requests_are_capped_relay_wide() {
    let relay = TestRelay::start(RelayConfig {
        max_parked: 2,
        ..relaxed()
    })
    .await;
    let (n, ta) = allocate(&relay).await;
    let (m, tm) = allocate(&relay).await;
    let parked = async {
        tokio::join!(
            list_waiting(&relay, n, Some(&ta), 0, 30),
            list_waiting(&relay, m, Some(&tm), 0, 30)
        )
    };
    let third = async {
        until_parked(&relay, 2).await;
        // A read past the cap is refused with a Retry-After; a post goes through and
        // answers at once.
        let r = Client::new()
            .get(format!("{}/v2/nameplate/{n}/messages?wait=30", relay.url))
            .bearer_auth(&ta)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key("retry-after"));
        let (status, got) = post(&relay, m, Some(&tm), &[("a", "pake", "AA==")], 0, 30).await;
        assert_eq!((status, phases(&got)), (StatusCode::OK, vec![]));
        // Side b's claim on n wakes the first waiter; then m's second waiter.
        let (status, claimed) = post(&relay, n, None, &[("b", "pake", "AQ==")], 0, 0).await;
        assert_eq!(status, StatusCode::OK, "{claimed}");
        let (status, _) = post(&relay, m, None, &[("b", "pake", "Ag==")], 0, 0).await;
        assert_eq!(status, StatusCode::OK);
    };
    let ((s1, got1), (s2, got2)) = tokio::join!(parked, third).0;
    assert_eq!(
        (s1, phases(&got1)),
        (StatusCode::OK, vec!["b/pake".to_string()])
    );
    assert_eq!(
        (s2, phases(&got2)),
        (StatusCode::OK, vec!["b/pake".to_string()])
    );
    assert_eq!(relay.relay.mailboxes().parked(), 0);
}

#[tokio::test]
async fn an_abort_wakes_the_waiting_peer_and_the_relay_forgets() {
    let relay = TestRelay::start(relaxed()).await;
    let (n, ta) = allocate(&relay).await;
    send(&relay, n, Some(&ta), "a", "pake", "AA==").await;
    let joiner = post(
        &relay,
        n,
        None,
        &[
            ("b", "pake", "AQ=="),
            ("b", "confirm", "Ag=="),
            ("b", "roster", "Aw=="),
        ],
        1,
        30,
    );
    let creator = async {
        until_parked(&relay, 1).await;
        let (status, got) = post(
            &relay,
            n,
            Some(&ta),
            &[("a", "confirm", "BA=="), ("a", "abort", "")],
            0,
            0,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(phases(&got), ["b/pake", "b/confirm", "b/roster"]);
    };
    let ((status, got), ()) = tokio::join!(joiner, creator);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(phases(&got), ["a/confirm", "a/abort"]);
    assert_eq!(relay.relay.mailboxes().pending(), 0);
    assert_eq!(relay.relay.mailboxes().bytes(), 0);
}

#[tokio::test]
async fn nameplates_expire_after_the_ttl_since_the_last_message() {
    let relay = TestRelay::start(RelayConfig {
        ttl: Duration::from_secs(60),
        ..relaxed()
    })
    .await;
    let (n, ta) = allocate(&relay).await;
    relay.clock.advance(Duration::from_secs(50));
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "pake", "AA==").await.0,
        StatusCode::OK
    );
    relay.clock.advance(Duration::from_secs(50));
    assert_eq!(list(&relay, n, Some(&ta), 0).await.0, StatusCode::OK);
    assert_eq!(list(&relay, n, None, 0).await.0, StatusCode::OK);
    relay.clock.advance(Duration::from_secs(10));
    assert_eq!(list(&relay, n, Some(&ta), 0).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&relay, n, None, "b", "pake", "AA==").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(relay.relay.mailboxes().pending(), 0);
}

#[tokio::test]
async fn v1_limits_apply_to_v2() {
    // Pending nameplates per client.
    let relay = TestRelay::start(RelayConfig {
        max_pending_per_client: 2,
        max_body_bytes: 1024,
        ..relaxed()
    })
    .await;
    let (n, ta) = allocate(&relay).await;
    allocate(&relay).await;
    let r = Client::new()
        .post(format!("{}/v2/nameplate", relay.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Body size.
    let big = "A".repeat(2000);
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "roster", &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // The failed-lookup budget: guessing nameplates spends it; token holders go on.
    let relay = TestRelay::start(RelayConfig {
        max_failed_lookups_per_minute: 3,
        ..relaxed()
    })
    .await;
    let (n, ta) = allocate(&relay).await;
    for guess in 0..3 {
        assert_eq!(
            send(
                &relay,
                1000 + (n + 1 + guess) % 9000,
                None,
                "b",
                "pake",
                "AA=="
            )
            .await
            .0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        send(&relay, n, None, "b", "pake", "AA==").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "pake", "AA==").await.0,
        StatusCode::OK
    );
    assert_eq!(list(&relay, n, Some(&ta), 0).await.0, StatusCode::OK);

    // The request rate per client covers the v2 routes.
    let relay = TestRelay::start(RelayConfig {
        rate_per_second: 0.001,
        rate_burst: 2,
        ..relaxed()
    })
    .await;
    let offer = || Client::new().get(format!("{}/v2", relay.url)).send();
    assert_eq!(offer().await.unwrap().status(), StatusCode::OK);
    assert_eq!(offer().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        offer().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
