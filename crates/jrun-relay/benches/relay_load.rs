//! Load benchmark of the relay (`cargo bench -p jrun-relay`): complete pairings (create,
//! join, collecting poll) from concurrent keep-alive clients over loopback, against the
//! requests/s of a bare axum handler measured in the same run on the same machine; then
//! resident memory with 100,000 pending pairings.
//!
//! Targets (2 cores): ≥ 10,000 pairings/s, p99 < 5 ms per request, RSS < 100 MB.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use jrun_mesh::protocol::{Roster, RosterJail};
use jrun_relay::{Relay, RelayConfig};

const CLIENTS: usize = 16;
const WARMUP_PAIRINGS_PER_CLIENT: usize = 100;
const PAIRINGS_PER_CLIENT: usize = 1_000;
const PENDING_FOR_MEMORY: usize = 100_000;

fn roster(first: u16, n: u16) -> String {
    let jails: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"jail{i}","ygg_address":"200:{:x}::{:x}"}}"#,
                first,
                i + 1
            )
        })
        .collect();
    format!(r#"{{"jails":[{}]}}"#, jails.join(","))
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends one request, returns the body and records its latency in microseconds.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<&str>,
    latencies: &mut Vec<u32>,
) -> Bytes {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "relay");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
        .unwrap();
    let started = Instant::now();
    sender.ready().await.unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    assert!(status.is_success(), "{method} {path}: {status} {bytes:?}");
    bytes
}

async fn pairings(addr: SocketAddr, client: usize, count: usize) -> Vec<u32> {
    let mut creator = connect(addr).await;
    let mut joiner = connect(addr).await;
    let mine = roster(client as u16, 3);
    let theirs = roster(client as u16 + 1000, 2);
    let mut latencies = Vec::with_capacity(count * 3);
    for _ in 0..count {
        let created = send(&mut creator, "POST", "/pair", Some(&mine), &mut latencies).await;
        let code: serde_json::Value = serde_json::from_slice(&created).unwrap();
        let path = format!("/pair/{}", code["code"].as_str().unwrap());
        send(&mut joiner, "POST", &path, Some(&theirs), &mut latencies).await;
        let polled = send(&mut creator, "GET", &path, None, &mut latencies).await;
        assert!(polled.starts_with(br#"{"joined":true"#));
    }
    latencies
}

async fn bare_requests(addr: SocketAddr, count: usize) -> Vec<u32> {
    let mut sender = connect(addr).await;
    let body = roster(1, 3);
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        send(&mut sender, "POST", "/x", Some(&body), &mut latencies).await;
    }
    latencies
}

/// Runs `clients` tasks and returns (elapsed, all latencies).
async fn drive<F, Fut>(clients: usize, f: F) -> (Duration, Vec<u32>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<u32>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(f(c))).collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (started.elapsed(), all)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The baseline: a bare axum handler answering a small JSON body.
        let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_addr = bare.local_addr().unwrap();
        let app = axum::Router::new().route("/x", post(|| async { r#"{"code":"1-a-b-c"}"# }));
        tokio::spawn(async move { axum::serve(bare, app).await.unwrap() });

        let relay = Relay::new(RelayConfig {
            rate_per_second: 1e9,
            rate_burst: u32::MAX,
            network_rate_per_second: 1e9,
            network_rate_burst: u32::MAX,
            max_failed_lookups_per_minute: u32::MAX,
            max_pending_per_client: usize::MAX,
            max_pending_per_network: usize::MAX,
            max_connections_per_client: usize::MAX,
            max_connections_per_network: usize::MAX,
            max_requests_per_connection: usize::MAX,
            max_connection_lifetime: jrun_relay::MAX_TTL,
            // The memory measurement holds this many pairings: lift the defaults for it.
            max_pending: PENDING_FOR_MEMORY,
            max_pending_bytes: usize::MAX,
            ..RelayConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = relay.clone();
        tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });

        drive(CLIENTS, |c| pairings(addr, c, WARMUP_PAIRINGS_PER_CLIENT)).await;
        drive(CLIENTS, |_| bare_requests(bare_addr, WARMUP_PAIRINGS_PER_CLIENT)).await;

        // As many requests in flight as the pairing clients have: each sends one at a time.
        let (bare_time, mut bare_latencies) =
            drive(CLIENTS, |_| bare_requests(bare_addr, PAIRINGS_PER_CLIENT * 3)).await;
        bare_latencies.sort_unstable();
        let bare_rps = (CLIENTS * PAIRINGS_PER_CLIENT * 3) as f64 / bare_time.as_secs_f64();

        let (time, mut latencies) = drive(CLIENTS, |c| pairings(addr, c, PAIRINGS_PER_CLIENT)).await;
        let pairings_per_s = (CLIENTS * PAIRINGS_PER_CLIENT) as f64 / time.as_secs_f64();
        let relay_rps = pairings_per_s * 3.0;
        latencies.sort_unstable();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));

        println!("relay load benchmark: {CLIENTS} concurrent clients (one request in flight each, keep-alive) over loopback, 2 worker threads");
        println!(
            "  bare axum handler:  {bare_rps:>10.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
            percentile(&bare_latencies, 0.5),
            percentile(&bare_latencies, 0.99)
        );
        println!("  relay:              {relay_rps:>10.0} requests/s = {pairings_per_s:.0} complete pairings/s ({})", verdict(pairings_per_s >= 10_000.0));
        println!("  ratio relay/bare:   {:>10.2} (requests/s)", relay_rps / bare_rps);
        println!("  latency per request: p50 {p50:.2} ms, p99 {p99:.2} ms ({})", verdict(p99 < 5.0));

        let before = rss_mb();
        let store = relay.store();
        for i in 0..PENDING_FOR_MEMORY {
            let r: Roster = Roster {
                jails: (0..3u16)
                    .map(|j| RosterJail {
                        name: format!("jail{j}").try_into().unwrap(),
                        ygg_address: format!("200:{:x}::{:x}", i % 65536, j + 1).parse().unwrap(),
                    })
                    .collect(),
            };
            store
                .create(std::net::Ipv4Addr::from(i as u32).into(), r)
                .unwrap();
        }
        let after = rss_mb();
        assert_eq!(store.pending(), PENDING_FOR_MEMORY);
        println!(
            "  resident memory with {PENDING_FOR_MEMORY} pending pairings (3 jails each): {after:.1} MB, {:.1} MB of it for the pairings ({})",
            after - before,
            verdict(after < 100.0)
        );
    });
}
