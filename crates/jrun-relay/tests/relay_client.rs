//! The relay client (jrun-mesh, feature `client`) against the in-process relay, a relay
//! that is down, and relays that answer garbage.

mod common;

use std::time::Duration;

use common::{relaxed, TestRelay};
use jrun_mesh::protocol::{Created, Roster, RosterJail};
use jrun_mesh::{ClientError, PairCode, PollOptions, RelayClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn roster(names: &[&str], first: u16) -> Roster {
    Roster {
        jails: names
            .iter()
            .enumerate()
            .map(|(i, n)| RosterJail {
                name: n.to_string().try_into().unwrap(),
                ygg_address: format!("200::{:x}", first + i as u16).parse().unwrap(),
            })
            .collect(),
    }
}

fn fast() -> PollOptions {
    PollOptions {
        deadline: Duration::from_secs(20),
        first_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn happy_path() {
    let relay = TestRelay::start(relaxed()).await;
    let a = RelayClient::new(&relay.url).unwrap();
    let b = RelayClient::new(&format!("{}/", relay.url)).unwrap();
    let mine = roster(&["web", "db"], 1);
    let theirs = roster(&["api"], 100);

    let pairing = a.create(&mine).await.unwrap();
    // jrun's relay gives jrun's client a creator token, which it presents when polling.
    assert!(pairing.token.is_some());
    let code = pairing.code.clone();
    let waiting = {
        let (a, pairing) = (a.clone(), pairing.clone());
        tokio::spawn(async move {
            a.wait_for_join(&pairing, &fast(), std::future::pending())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.join(&code, &theirs).await.unwrap(), mine);
    assert_eq!(waiting.await.unwrap().unwrap(), theirs);

    // Used up: both sides now get the user-facing message.
    let err = b.join(&code, &theirs).await.unwrap_err();
    assert!(matches!(err, ClientError::CodeGone { .. }), "{err}");
    assert!(err.to_string().contains("expired or already used"), "{err}");
    assert!(matches!(
        a.poll(&pairing).await,
        Err(ClientError::CodeGone { .. })
    ));
}

#[tokio::test]
async fn expired_and_taken_codes() {
    let relay = TestRelay::start(relaxed()).await;
    let c = RelayClient::new(&relay.url).unwrap();
    let pairing = c.create(&roster(&["a"], 1)).await.unwrap();
    let code = pairing.code.clone();
    relay.clock.advance(Duration::from_secs(601));
    let err = c.join(&code, &roster(&["b"], 2)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("code {code} expired or already used")),
        "{err}"
    );
    let err = c
        .wait_for_join(&pairing, &fast(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::CodeGone { .. }), "{err}");

    let pairing = c.create(&roster(&["a"], 1)).await.unwrap();
    let code = pairing.code.clone();
    c.join(&code, &roster(&["b"], 2)).await.unwrap();
    let err = c.join(&code, &roster(&["c"], 3)).await.unwrap_err();
    assert!(matches!(err, ClientError::AlreadyJoined { .. }), "{err}");
}

#[tokio::test]
async fn waiting_ends_at_the_deadline_or_on_cancel() {
    let relay = TestRelay::start(relaxed()).await;
    let c = RelayClient::new(&relay.url).unwrap();
    let pairing = c.create(&roster(&["a"], 1)).await.unwrap();
    let code = pairing.code.clone();
    let short = PollOptions {
        deadline: Duration::from_millis(200),
        ..fast()
    };
    let err = c
        .wait_for_join(&pairing, &short, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TimedOut { .. }), "{err}");
    let cancel = tokio::time::sleep(Duration::from_millis(100));
    let err = c
        .wait_for_join(&pairing, &fast(), cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Cancelled { .. }), "{err}");
    // Cancelling leaves the pairing joinable.
    c.join(&code, &roster(&["b"], 2)).await.unwrap();
}

#[tokio::test]
async fn relay_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let c = RelayClient::new(&url).unwrap();
    let err = c.create(&roster(&["a"], 1)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("relay unreachable at {url}/: ")),
        "{err}"
    );
}

/// A relay that answers every request with `answer`, raw.
async fn fake_relay(answer: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    url
}

fn ok_json(body: &str) -> &'static str {
    Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

#[tokio::test]
async fn a_relay_answering_garbage_changes_nothing() {
    let code: PairCode = "1-abandon-ability-able".parse().unwrap();
    let mine = roster(&["a"], 1);
    let garbage = [
        ok_json("<html>hello</html>"),
        ok_json(r#"{"code":"$(reboot)"}"#),
        ok_json(r#"{"jails":[{"name":"x\" IN A 1.2.3.4","ygg_address":"200::1"}]}"#),
        ok_json(r#"{"jails":[{"name":"x","ygg_address":"::/0"}]}"#),
        ok_json(
            r#"{"jails":[{"name":"x","ygg_address":"200::1"},{"name":"x","ygg_address":"200::2"}]}"#,
        ),
        ok_json(r#"{"joined":true}"#),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
        "not http at all\r\n\r\n",
    ];
    for answer in garbage {
        let c = RelayClient::new(&fake_relay(answer).await).unwrap();
        let results = [
            c.create(&mine).await.map(|_| ()),
            c.join(&code, &mine).await.map(|_| ()),
            c.poll(&code.clone().into()).await.map(|_| ()),
        ];
        for r in results {
            let err = r.unwrap_err();
            assert!(
                matches!(
                    err,
                    ClientError::Garbage { .. }
                        | ClientError::Refused { .. }
                        | ClientError::Unreachable { .. }
                ),
                "{answer}: {err}"
            );
        }
    }
    // An oversized answer is cut off, not buffered.
    let huge: &'static str =
        Box::leak(ok_json(&format!("{{\"code\":\"{}\"}}", "x".repeat(300_000))).into());
    let c = RelayClient::new(&fake_relay(huge).await).unwrap();
    let err = c.create(&mine).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn waiting_rides_out_a_busy_relay() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = match n {
                    0 => "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 18\r\nConnection: close\r\n\r\n{\"error\":\"slower\"}",
                    1 => ok_json(r#"{"joined":false}"#),
                    _ => ok_json(r#"{"joined":true,"jails":[{"name":"db","ygg_address":"200::b"}]}"#),
                };
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    let c = RelayClient::new(&url).unwrap();
    let pairing = Created::from("1-abandon-ability-able".parse::<PairCode>().unwrap());
    let started = std::time::Instant::now();
    let got = c
        .wait_for_join(&pairing, &fast(), std::future::pending())
        .await
        .unwrap();
    assert_eq!(got.jails[0].name.as_str(), "db");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    // The relay asked for a second's pause, and got it.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn huge_deadlines_and_intervals_do_not_overflow_the_clock() {
    let relay = TestRelay::start(relaxed()).await;
    let a = RelayClient::new(&relay.url).unwrap();
    let b = RelayClient::new(&relay.url).unwrap();
    let pairing = a.create(&roster(&["web"], 1)).await.unwrap();
    let code = pairing.code.clone();
    let huge = PollOptions {
        deadline: Duration::MAX,
        first_interval: Duration::from_millis(10),
        max_interval: Duration::MAX,
    };
    let cancel = tokio::time::sleep(Duration::from_millis(300));
    let err = a.wait_for_join(&pairing, &huge, cancel).await.unwrap_err();
    assert!(matches!(err, ClientError::Cancelled { .. }), "{err}");
    // Still joinable, and a waiting client with a huge deadline gets the roster.
    let waiting = {
        let (a, pairing) = (a.clone(), pairing.clone());
        let first = PollOptions {
            max_interval: Duration::from_millis(50),
            ..huge
        };
        tokio::spawn(async move {
            a.wait_for_join(&pairing, &first, std::future::pending())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.join(&code, &roster(&["api"], 9)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting client saw the join")
        .unwrap()
        .unwrap();
    assert_eq!(got, roster(&["api"], 9));
}

#[tokio::test]
async fn relay_redirect_is_not_followed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // Where a hostile relay points: a local endpoint that counts every connection.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_url = format!("http://{}/internal", target.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = target.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(ok_json(r#"{"code":"1-a-b-c"}"#).as_bytes())
                .await;
        }
    });
    let code: PairCode = "1-abandon-ability-able".parse().unwrap();
    let mine = roster(&["a"], 1);
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let answer: &'static str = Box::leak(
            format!("HTTP/1.1 {status}\r\nLocation: {target_url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .into_boxed_str(),
        );
        let c = RelayClient::new(&fake_relay(answer).await).unwrap();
        let results = [
            c.create(&mine).await.map(|_| ()),
            c.join(&code, &mine).await.map(|_| ()),
            c.poll(&code.clone().into()).await.map(|_| ()),
            c.wait_for_join(&code.clone().into(), &fast(), std::future::pending())
                .await
                .map(|_| ()),
        ];
        for r in results {
            let err = r.unwrap_err();
            assert!(
                matches!(err, ClientError::Redirected { .. }),
                "{status}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&status[..3]) && text.contains(&target_url),
                "{text}"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a redirect was followed");
}
