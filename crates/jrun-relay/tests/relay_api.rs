//! The relay over real HTTP on 127.0.0.1: the protocol of the seed's sequence diagram,
//! its lifecycle, every limit and every validation rule.

mod common;

use std::time::Duration;

use common::{relaxed, roster_json, TestRelay};
use jrun_relay::RelayConfig;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(url: &str, body: impl Into<String>) -> Response {
    Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap()
}

async fn get(url: &str) -> Response {
    Client::new().get(url).send().await.unwrap()
}

/// The status and the JSON body; every answer of the relay is JSON.
async fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let ct = r.headers().get("content-type").cloned();
    let text = r.text().await.unwrap();
    assert_eq!(ct.unwrap(), "application/json", "{status} {text}");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

async fn create(relay: &TestRelay, names: &[&str]) -> String {
    let (status, body) =
        json_of(post(&format!("{}/pair", relay.url), roster_json(names)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_sequence_of_the_seed_diagram() {
    let relay = TestRelay::start(relaxed()).await;
    // A client that asks for no token (Jailrun's) gets exactly the seed's answer.
    let (status, created) = json_of(
        post(
            &format!("{}/pair", relay.url),
            roster_json(&["myapp", "db"]),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created.as_object().unwrap().len(), 1, "{created}");
    let code = created["code"].as_str().unwrap().to_string();
    assert!(code.parse::<jrun_mesh::PairCode>().is_ok(), "{code}");
    let pair = format!("{}/pair/{code}", relay.url);

    assert_eq!(
        json_of(get(&pair).await).await,
        (StatusCode::OK, json!({"joined": false}))
    );
    assert_eq!(
        json_of(get(&pair).await).await,
        (StatusCode::OK, json!({"joined": false}))
    );

    let (status, creators) = json_of(post(&pair, roster_json(&["web"])).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        creators,
        serde_json::from_str::<Value>(&roster_json(&["myapp", "db"])).unwrap()
    );

    let (status, joined) = json_of(get(&pair).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        joined,
        json!({"joined": true, "jails": [{"name": "web", "ygg_address": "200::1"}]})
    );

    // Consumed and deleted.
    let (status, err) = json_of(get(&pair).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("expired or was already used"));
    assert_eq!(relay.relay.store().pending(), 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_code_is_joined_once() {
    let relay = TestRelay::start(relaxed()).await;
    let code = create(&relay, &["a"]).await;
    let pair = format!("{}/pair/{code}", relay.url);
    assert_eq!(
        post(&pair, roster_json(&["b"])).await.status(),
        StatusCode::OK
    );
    let (status, err) = json_of(post(&pair, roster_json(&["c"])).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(err["error"].as_str().unwrap().contains("already joined"));
    // The first joiner's roster is what the creator collects.
    let (_, joined) = json_of(get(&pair).await).await;
    assert_eq!(joined["jails"][0]["name"], "b");
}

#[tokio::test]
async fn unknown_and_malformed_codes_are_404() {
    let relay = TestRelay::start(relaxed()).await;
    for code in [
        "1-abandon-ability-able",
        "0-x-y-z",
        "not%20a%20code",
        "%ff",
        "81-a-b-c-d",
    ] {
        let url = format!("{}/pair/{code}", relay.url);
        assert_eq!(
            json_of(get(&url).await).await.0,
            StatusCode::NOT_FOUND,
            "{code}"
        );
        let (status, _) = json_of(post(&url, roster_json(&["a"])).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{code}");
    }
}

#[tokio::test]
async fn pairings_expire_without_sleeping() {
    let relay = TestRelay::start(RelayConfig {
        ttl: Duration::from_secs(60),
        ..relaxed()
    })
    .await;
    let unjoined = create(&relay, &["a"]).await;
    let uncollected = create(&relay, &["a"]).await;
    let u2 = format!("{}/pair/{uncollected}", relay.url);
    relay.clock.advance(Duration::from_secs(30));
    assert_eq!(
        post(&u2, roster_json(&["b"])).await.status(),
        StatusCode::OK
    );
    relay.clock.advance(Duration::from_secs(30));
    let u1 = format!("{}/pair/{unjoined}", relay.url);
    assert_eq!(json_of(get(&u1).await).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(post(&u1, roster_json(&["b"])).await).await.0,
        StatusCode::NOT_FOUND
    );
    // Joined 30 s ago: still there for its creator, until its own TTL runs out.
    assert_eq!(relay.relay.store().pending(), 1);
    relay.clock.advance(Duration::from_secs(30));
    assert_eq!(json_of(get(&u2).await).await.0, StatusCode::NOT_FOUND);
    assert_eq!(relay.relay.store().pending(), 0);
}

#[tokio::test]
async fn every_roster_rule_is_a_400_naming_the_field() {
    let relay = TestRelay::start(relaxed()).await;
    let code = create(&relay, &["a"]).await;
    let big: Vec<String> = (0..257).map(|i| format!("j{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let cases = [
        (r#"{"jails":[{"name":"Web","ygg_address":"200::1"}]}"#.to_string(), Some("jails[0].name")),
        (r#"{"jails":[{"name":"","ygg_address":"200::1"}]}"#.to_string(), Some("jails[0].name")),
        (format!(r#"{{"jails":[{{"name":"{}","ygg_address":"200::1"}}]}}"#, "a".repeat(64)), Some("jails[0].name")),
        (r#"{"jails":[{"name":"a\n b","ygg_address":"200::1"}]}"#.to_string(), Some("jails[0].name")),
        (r#"{"jails":[{"name":"a","ygg_address":"::/0"}]}"#.to_string(), Some("jails[0].ygg_address")),
        (r#"{"jails":[{"name":"a","ygg_address":"300::1"}]}"#.to_string(), Some("jails[0].ygg_address")),
        (r#"{"jails":[{"name":"a","ygg_address":"10.0.0.1"}]}"#.to_string(), Some("jails[0].ygg_address")),
        (r#"{"jails":[{"name":"a","ygg_address":"200::1","admin":true}]}"#.to_string(), Some("jails[0].admin")),
        (r#"{"jails":[],"extra":1}"#.to_string(), Some("extra")),
        (roster_json(&["a", "a"]), Some("jails[1].name")),
        (r#"{"jails":[{"name":"a","ygg_address":"200::1"},{"name":"b","ygg_address":"200::1"}]}"#.to_string(), Some("jails[1].ygg_address")),
        (roster_json(&big), Some("jails")),
        ("{".to_string(), None),
        ("null".to_string(), None),
        ("[]".to_string(), None),
        (r#"{"jails":[]}{}"#.to_string(), None),
    ];
    for (body, field) in cases {
        for url in [
            format!("{}/pair", relay.url),
            format!("{}/pair/{code}", relay.url),
        ] {
            let (status, err) = json_of(post(&url, body.clone()).await).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err["field"].as_str(), field, "{body}: {err}");
            assert!(!err["error"].as_str().unwrap().is_empty());
        }
    }
    // Nothing was joined by the refused bodies.
    assert_eq!(
        json_of(get(&format!("{}/pair/{code}", relay.url)).await)
            .await
            .1,
        json!({"joined": false})
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let relay = TestRelay::start(relaxed()).await;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("multipart/form-data"),
    ] {
        let mut req = Client::new()
            .post(format!("{}/pair", relay.url))
            .body(roster_json(&["a"]));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (status, _) = json_of(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let ok = Client::new()
        .post(format!("{}/pair", relay.url))
        .header("content-type", "application/json; charset=utf-8")
        .body(roster_json(&["a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn huge_bodies_are_413_declared_or_streamed() {
    let relay = TestRelay::start(relaxed()).await;
    let huge = format!(r#"{{"jails":[],"pad":"{}"}}"#, "x".repeat(17 * 1024));
    let (status, _) = json_of(post(&format!("{}/pair", relay.url), huge.clone()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, so no Content-Length gives it away.
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(b"POST /pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for chunk in huge.as_bytes().chunks(1024) {
        let head = format!("{:x}\r\n", chunk.len());
        // The relay may answer and close before we finish sending.
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_4xx() {
    let relay = TestRelay::start(relaxed()).await;
    let c = Client::new();
    let cases = [
        (c.get(format!("{}/", relay.url)), StatusCode::NOT_FOUND),
        (c.get(format!("{}/pairs", relay.url)), StatusCode::NOT_FOUND),
        (
            c.get(format!("{}/pair/a/b", relay.url)),
            StatusCode::NOT_FOUND,
        ),
        (
            c.get(format!("{}/pair", relay.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            c.delete(format!("{}/pair", relay.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            c.put(format!("{}/pair/1-a-b-c", relay.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            c.post(format!("{}/healthz", relay.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (req, expected) in cases {
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(status, expected, "{body}");
        assert!(body["error"].is_string());
    }
    let (status, body) = json_of(get(&format!("{}/healthz", relay.url)).await).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn pending_limits_answer_503_and_429() {
    let relay = TestRelay::start(RelayConfig {
        max_pending: 3,
        max_pending_per_client: 2,
        ..relaxed()
    })
    .await;
    create(&relay, &["a"]).await;
    create(&relay, &["a"]).await;
    let r = post(&format!("{}/pair", relay.url), roster_json(&["a"])).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json_of(r).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Another client address fills the relay: 127.0.0.2 is loopback too.
    let other = Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let send = || {
        other
            .post(format!("{}/pair", relay.url))
            .header("content-type", "application/json")
            .body(roster_json(&["a"]))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    let (status, err) = json_of(send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
}

#[tokio::test]
async fn behind_a_proxy_limits_count_forwarded_clients() {
    for behind_proxy in [false, true] {
        let relay = TestRelay::start(RelayConfig {
            max_pending_per_client: 1,
            behind_proxy,
            ..relaxed()
        })
        .await;
        let mut statuses = Vec::new();
        for client in ["198.51.100.1", "198.51.100.2"] {
            let r = Client::new()
                .post(format!("{}/pair", relay.url))
                .header("content-type", "application/json")
                .header("x-forwarded-for", client)
                .body(roster_json(&["a"]))
                .send()
                .await
                .unwrap();
            statuses.push(r.status());
        }
        let second = if behind_proxy {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(
            statuses,
            [StatusCode::OK, second],
            "behind_proxy={behind_proxy}"
        );
    }
}

#[tokio::test]
async fn request_rate_is_limited_per_address_with_retry_after() {
    let relay = TestRelay::start(RelayConfig {
        rate_per_second: 1.0,
        rate_burst: 3,
        ..RelayConfig::default()
    })
    .await;
    let url = format!("{}/pair/1-a-b-c", relay.url);
    for _ in 0..3 {
        assert_eq!(get(&url).await.status(), StatusCode::NOT_FOUND);
    }
    let r = get(&url).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(json_of(r).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Health checks and unknown paths are inside the limits too (they could otherwise
    // keep connections busy for free); time refills the bucket.
    for path in ["/healthz", "/nowhere"] {
        let (status, _) = json_of(get(&format!("{}{path}", relay.url)).await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    relay.clock.advance(Duration::from_secs(1));
    assert_eq!(
        get(&format!("{}/healthz", relay.url)).await.status(),
        StatusCode::OK
    );
    relay.clock.advance(Duration::from_secs(1));
    assert_eq!(get(&url).await.status(), StatusCode::NOT_FOUND);
}

async fn create_with_token(relay: &TestRelay, names: &[&str]) -> (String, String) {
    let r = Client::new()
        .post(format!("{}/pair", relay.url))
        .header("content-type", "application/json")
        .header("x-jrun-token", "1")
        .body(roster_json(names))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    (body["code"].as_str().unwrap().to_string(), token)
}

async fn get_with_token(url: &str, token: &str) -> Response {
    Client::new()
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn collect_without_creator_token_is_refused() {
    let relay = TestRelay::start(relaxed()).await;
    let (code, token) = create_with_token(&relay, &["web"]).await;
    let pair = format!("{}/pair/{code}", relay.url);
    let wrong = "0123456789abcdef0123456789abcdef";
    // Waiting: nobody but the creator can even see that the code is live.
    assert_eq!(json_of(get(&pair).await).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(get_with_token(&pair, wrong).await).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        json_of(get_with_token(&pair, &token).await).await,
        (StatusCode::OK, json!({"joined": false}))
    );
    // The joiner needs only the code, as in the seed's protocol.
    let (status, creators) = json_of(post(&pair, roster_json(&["db"])).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(creators["jails"][0]["name"], "web");
    // Joined: a stranger's collect gets nothing and deletes nothing.
    for _ in 0..3 {
        assert_eq!(json_of(get(&pair).await).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            json_of(get_with_token(&pair, wrong).await).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(relay.relay.store().pending(), 1);
    let (status, joined) = json_of(get_with_token(&pair, &token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(joined["jails"][0]["name"], "db");
    assert_eq!(relay.relay.store().pending(), 0);
}

#[tokio::test]
async fn unknown_consumed_and_wrong_token_answers_are_identical() {
    let relay = TestRelay::start(relaxed()).await;
    // Everything a status line and a body could tell apart.
    async fn answer(r: Response) -> (StatusCode, Vec<(String, String)>, String) {
        let status = r.status();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        (status, headers, r.text().await.unwrap())
    }
    let unknown = answer(get(&format!("{}/pair/1-abandon-ability-able", relay.url)).await).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);

    let malformed = answer(get(&format!("{}/pair/not%20a%20code", relay.url)).await).await;
    // A live pairing made with a token, polled without it and with a wrong one.
    let (live, _token) = create_with_token(&relay, &["a"]).await;
    let live = format!("{}/pair/{live}", relay.url);
    let no_token = answer(get(&live).await).await;
    let wrong_token = answer(get_with_token(&live, "0123456789abcdef0123456789abcdef").await).await;
    let junk_token = answer(get_with_token(&live, "x").await).await;
    // Consumed: a seed-style pairing after its creator collected it.
    let used = create(&relay, &["a"]).await;
    let used = format!("{}/pair/{used}", relay.url);
    assert_eq!(
        post(&used, roster_json(&["b"])).await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&used).await.status(), StatusCode::OK);
    let consumed = answer(get(&used).await).await;
    // Expired, with its token.
    let (old, old_token) = create_with_token(&relay, &["a"]).await;
    relay.clock.advance(Duration::from_secs(601));
    let expired =
        answer(get_with_token(&format!("{}/pair/{old}", relay.url), &old_token).await).await;
    for (what, other) in [
        ("malformed", malformed),
        ("no token", no_token),
        ("wrong token", wrong_token),
        ("junk token", junk_token),
        ("consumed", consumed),
        ("expired", expired),
    ] {
        assert_eq!(other, unknown, "{what}");
    }
}

#[tokio::test]
async fn failed_lookups_over_the_global_budget_are_429_for_everyone_but_token_holders() {
    let relay = TestRelay::start(RelayConfig {
        max_failed_lookups_per_minute: 3,
        ..relaxed()
    })
    .await;
    let (mine, token) = create_with_token(&relay, &["a"]).await;
    let mine = format!("{}/pair/{mine}", relay.url);
    let seed = create(&relay, &["a"]).await;
    let seed = format!("{}/pair/{seed}", relay.url);
    // Lookups that find their pairing cost nothing.
    for _ in 0..10 {
        assert_eq!(get(&seed).await.status(), StatusCode::OK);
    }
    // Three failures, from clients anywhere, spend the budget.
    for code in ["1-a-b-c", "2-a-b-c", "3-a-b-c"] {
        let url = format!("{}/pair/{code}", relay.url);
        assert_eq!(get(&url).await.status(), StatusCode::NOT_FOUND);
    }
    // Then every lookup is refused alike, live code or not, poll or join: no oracle.
    let unknown = format!("{}/pair/4-a-b-c", relay.url);
    for (what, r) in [
        ("unknown poll", get(&unknown).await),
        ("live poll", get(&seed).await),
        ("tokenless poll", get(&mine).await),
        ("unknown join", post(&unknown, roster_json(&["b"])).await),
        ("live join", post(&seed, roster_json(&["b"])).await),
    ] {
        assert!(r.headers().contains_key("retry-after"), "{what}");
        let (status, body) = json_of(r).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{what}: {body}");
    }
    // A creator with its token is no guesser: its polls go on.
    assert_eq!(
        json_of(get_with_token(&mine, &token).await).await,
        (StatusCode::OK, json!({"joined": false}))
    );
    // A minute's budget refills over a minute: 20 s give one lookup back.
    relay.clock.advance(Duration::from_secs(20));
    assert_eq!(get(&seed).await.status(), StatusCode::OK);
    assert_eq!(get(&unknown).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&seed).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Reads one answer (headers and a Content-Length body) off a raw connection; `None` at
/// end of stream.
async fn read_answer(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            Ok(_) => return None,
            Err(_) => panic!("no answer within 5 s: {}", String::from_utf8_lossy(&buf)),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.unwrap();
    Some(head + &String::from_utf8(body).unwrap())
}

/// Whether the relay closes `s` within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn connection_is_closed_after_its_request_budget() {
    let relay = TestRelay::start(RelayConfig {
        max_requests_per_connection: 3,
        ..relaxed()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    for n in 1..=3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut s).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            answer.to_ascii_lowercase().contains("connection: close"),
            n == 3,
            "request {n}: {answer}"
        );
    }
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn connection_is_closed_after_its_lifetime() {
    let relay = TestRelay::start(RelayConfig {
        max_connection_lifetime: Duration::from_millis(300),
        // Far longer than the lifetime: the idle timeout is not what closes it.
        read_timeout: Duration::from_secs(30),
        ..relaxed()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut s).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = std::time::Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connections_are_capped_per_network() {
    let relay = TestRelay::start(RelayConfig {
        max_connections_per_client: 10,
        max_connections_per_network: 2,
        ..relaxed()
    })
    .await;
    // 127.0.0.1 and 127.0.0.2 are two clients of one /24.
    let _a = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let _b = socket.connect(relay.addr).await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut third = socket.connect(relay.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the connection over the network cap was kept open"
    );
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
}

#[tokio::test]
async fn slow_clients_time_out() {
    let relay = TestRelay::start(RelayConfig {
        read_timeout: Duration::from_millis(300),
        ..relaxed()
    })
    .await;
    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the relay kept a slow client's connection open"
    );

    // A body that never arrives: 408.
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(b"POST /pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let relay = TestRelay::start(RelayConfig {
        read_timeout: Duration::from_millis(300),
        ..relaxed()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "an idle connection was kept open");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_lets_the_listener_go() {
    let relay = TestRelay::start(relaxed()).await;
    let addr = relay.addr;
    relay.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let relay = TestRelay::start(RelayConfig {
        max_connections_per_client: 2,
        ..relaxed()
    })
    .await;
    let first = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    // Over the cap: closed at once, without an answer.
    let mut third = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection over the cap was kept open");
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    // The held ones are served.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    second.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    // Closing connections frees places.
    drop((first, second));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = Client::new()
            .get(format!("{}/healthz", relay.url))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "places were not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
