//! Pairing v2's routes over real HTTP on 127.0.0.1: the offer, the message sequence, side
//! tokens, forgetting after both sides end, the TTL, and v1's limits applied to v2.

mod common;

use std::time::Duration;

use common::{relaxed, TestRelay};
use jrun_relay::RelayConfig;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

async fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
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

async fn send(
    relay: &TestRelay,
    n: u64,
    token: Option<&str>,
    side: &str,
    phase: &str,
    body: &str,
) -> (StatusCode, Value) {
    let mut r = Client::new()
        .post(format!("{}/v2/nameplate/{n}/messages", relay.url))
        .header("content-type", "application/json")
        .body(json!({"side": side, "phase": phase, "body": body}).to_string());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    json_of(r.send().await.unwrap()).await
}

async fn list(relay: &TestRelay, n: u64, token: Option<&str>, after: usize) -> (StatusCode, Value) {
    let mut r = Client::new().get(format!(
        "{}/v2/nameplate/{n}/messages?after={after}",
        relay.url
    ));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    json_of(r.send().await.unwrap()).await
}

#[tokio::test]
async fn the_relay_offers_v2_and_carries_opaque_messages_until_both_sides_end() {
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
        (StatusCode::OK, json!({"versions": [2]}))
    );
    let (n, ta) = allocate(&relay).await;
    assert!((1000..=9999).contains(&n), "{n}");
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "pake", "AAEC").await,
        (StatusCode::OK, json!({}))
    );
    // Side b claims with its first message and gets its own token; a second claim is 409.
    let (status, claimed) = send(&relay, n, None, "b", "pake", "AwQ=").await;
    assert_eq!(status, StatusCode::OK);
    let tb = claimed["token"].as_str().unwrap().to_string();
    assert_eq!(
        send(&relay, n, None, "b", "pake", "AA==").await.0,
        StatusCode::CONFLICT
    );
    // Posting as a side without its token is an unknown nameplate.
    assert_eq!(
        send(&relay, n, Some(&ta), "b", "confirm", "AA==").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&relay, n, None, "a", "confirm", "AA==").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, all) = list(&relay, n, Some(&tb), 0).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all,
        json!({"messages": [
            {"side": "a", "phase": "pake", "body": "AAEC"},
            {"side": "b", "phase": "pake", "body": "AwQ="},
        ]})
    );
    assert_eq!(
        list(&relay, n, Some(&ta), 1).await.1["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Without a token, with a wrong one, or for an unknown nameplate: the same 404.
    let (s1, b1) = list(&relay, n, None, 0).await;
    let (s2, b2) = list(&relay, n, Some("00000000000000000000000000000000"), 0).await;
    let (s3, b3) = list(&relay, 999_999, Some(&ta), 0).await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND
        )
    );
    assert!(b1 == b2 && b2 == b3, "{b1} {b2} {b3}");
    // Malformed messages are 400s naming the field.
    let (status, err) = send(&relay, n, Some(&ta), "a", "confirm", "not base64!").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "body");
    assert_eq!(
        send(&relay, n, Some(&ta), "c", "confirm", "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "done", "AA==").await.0,
        StatusCode::BAD_REQUEST
    );
    // Both end: the relay forgets everything.
    assert_eq!(
        send(&relay, n, Some(&ta), "a", "done", "").await.0,
        StatusCode::OK
    );
    assert_eq!(relay.relay.mailboxes().pending(), 1);
    assert_eq!(
        send(&relay, n, Some(&tb), "b", "done", "").await.0,
        StatusCode::OK
    );
    assert_eq!(relay.relay.mailboxes().pending(), 0);
    assert_eq!(relay.relay.mailboxes().bytes(), 0);
    assert_eq!(list(&relay, n, Some(&ta), 0).await.0, StatusCode::NOT_FOUND);
    // v1 is untouched beside it.
    assert_eq!(relay.relay.store().pending(), 0);
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
