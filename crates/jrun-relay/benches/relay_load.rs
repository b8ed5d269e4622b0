//! Load benchmark of the relay (`cargo bench -p jrun-relay`): complete pairings from
//! concurrent keep-alive clients over loopback, against the requests/s of a bare axum
//! handler measured in the same run on the same machine; then resident memory with
//! 100,000 pending pairings.
//!
//! A v1 pairing is create, join, collecting poll. A v2 pairing (docs/pairing.md) is the six
//! requests two jrun clients send, the two sides running concurrently on their own
//! connections so that the posts and reads that wait for the peer really park at the relay:
//! the creator allocates a nameplate, posts its PAKE message and waits for the joiner's
//! PAKE, confirmation and sealed roster, then posts its confirmation, sealed roster and ack
//! and waits for the joiner's ack; the joiner reads the creator's PAKE (without a token),
//! posts its PAKE, confirmation and sealed roster (claiming side b) and waits for the
//! creator's three, then posts its ack — and the relay forgets the nameplate. The bodies
//! are real: made once by `pair_v2::Session` with 5 jails a side and framed as jrun frames
//! them (`application/octet-stream`), so the benchmark measures the relay, not the
//! cryptography. Bare, v1 and v2 run interleaved, in
//! [`ROUNDS`] rounds; the figures are the medians.
//!
//! Targets (2 cores): ≥ 10,000 v1 pairings/s, p99 < 5 ms per request, RSS < 100 MB;
//! v2 pairings/s ≥ 0.50 × v1's (issue 15).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use jrun_mesh::pair_v2::{self, Allocated, Message, Phase, Session, Side, V2Code};
use jrun_mesh::protocol::{Roster, RosterJail};
use jrun_mesh::{DnsLabel, Identity};
use jrun_relay::{Relay, RelayConfig};

const CLIENTS: usize = 16;
const WARMUP_PAIRINGS_PER_CLIENT: usize = 100;
const PAIRINGS_PER_CLIENT: usize = 1_000;
/// Fewer v2 pairings per round: each takes [`V2_REQUESTS`] requests.
const V2_PAIRINGS_PER_CLIENT: usize = 250;
const ROUNDS: usize = 5;
/// Jails per side in the v2 rosters.
const V2_JAILS: u8 = 5;
const PENDING_FOR_MEMORY: usize = 100_000;
/// Requests of one complete pairing.
const V1_REQUESTS: usize = 3;
const V2_REQUESTS: usize = 6;
/// Issue 15: relay v2 throughput at least this share of v1's pairings/s.
const V2_TARGET_RATIO: f64 = 0.50;

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

/// Sends one request with a JSON body (or none), returns the body and records its
/// latency in microseconds.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<&str>,
    latencies: &mut Vec<u32>,
) -> Bytes {
    let body = body.map(|b| ("application/json", b.as_bytes()));
    send_as(sender, method, path, body, None, latencies).await
}

/// [`send`] with a body of any type (v2's frames), and an optional `Authorization: Bearer`
/// token (v2's side tokens).
async fn send_as(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    bearer: Option<&str>,
    latencies: &mut Vec<u32>,
) -> Bytes {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "relay");
    if let Some((content_type, _)) = body {
        req = req.header("content-type", content_type);
    }
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let bytes = body.map_or(&[][..], |(_, b)| b);
    let req = req.body(Full::new(Bytes::copy_from_slice(bytes))).unwrap();
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

/// The bodies of one v2 pairing's posts, in protocol order: the creator's
/// `[pake]` and `[confirm, roster, ack]`, the joiner's `[pake, confirm, roster]` and
/// `[ack]`. Made once by two real sessions, with [`V2_JAILS`] jails a side, so their sizes
/// are those of a real pairing.
struct V2Bodies {
    a: [Vec<u8>; 2],
    b: [Vec<u8>; 2],
}

fn v2_jails(prefix: &str) -> Vec<(DnsLabel, Identity)> {
    (0..V2_JAILS)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[0] = i;
            seed[1] = prefix.as_bytes()[0];
            (
                format!("{prefix}-jail{i}").try_into().unwrap(),
                Identity::from_seed(&seed),
            )
        })
        .collect()
}

fn v2_bodies() -> V2Bodies {
    let code = V2Code::parse(&"4821-zebra-night-climb".parse().unwrap()).unwrap();
    let (mut a, pake_a) = Session::start(Side::A, &code);
    let (mut b, pake_b) = Session::start(Side::B, &code);
    let confirm_b = b.receive_pake(&pake_a).unwrap();
    let roster_b = b.seal_roster(&v2_jails("b")).unwrap();
    let confirm_a = a.receive_pake(&pake_b).unwrap();
    a.receive_confirm(&confirm_b).unwrap();
    assert_eq!(a.open_roster(&roster_b, 256).unwrap().jails.len(), 5);
    let roster_a = a.seal_roster(&v2_jails("a")).unwrap();
    b.receive_confirm(&confirm_a).unwrap();
    assert_eq!(b.open_roster(&roster_a, 256).unwrap().jails.len(), 5);
    let (ack_a, ack_b) = (a.ack().unwrap(), b.ack().unwrap());
    a.receive_ack(&ack_b).unwrap();
    b.receive_ack(&ack_a).unwrap();
    let post = |side, list: Vec<(Phase, Vec<u8>)>| -> Vec<u8> {
        let messages: Vec<Message> = list
            .into_iter()
            .map(|(phase, body)| Message { side, phase, body })
            .collect();
        pair_v2::encode_messages(&messages)
    };
    V2Bodies {
        a: [
            post(Side::A, vec![(Phase::Pake, pake_a)]),
            post(
                Side::A,
                vec![
                    (Phase::Confirm, confirm_a),
                    (Phase::Roster, roster_a),
                    (Phase::Ack, ack_a),
                ],
            ),
        ],
        b: [
            post(
                Side::B,
                vec![
                    (Phase::Pake, pake_b),
                    (Phase::Confirm, confirm_b),
                    (Phase::Roster, roster_b),
                ],
            ),
            post(Side::B, vec![(Phase::Ack, ack_b)]),
        ],
    }
}

/// Checks that an answer carries exactly the peer's `phases`, in order; returns side b's
/// token if it carries one. It checks the frames as a client does, without copying the
/// bodies out (as v1's check reads only the poll answer's start), so that the clients' own
/// work does not take the relay's CPU.
fn expect_messages(answer: &[u8], side: Side, phases: &[Phase]) -> Option<String> {
    let token_len = usize::from(answer[0]);
    let frames = pair_v2::parse_frames(&answer[1 + token_len..], 5).unwrap();
    let got: Vec<(Side, Phase)> = frames.iter().map(|f| (f.side, f.phase)).collect();
    let want: Vec<(Side, Phase)> = phases.iter().map(|&p| (side, p)).collect();
    assert_eq!(got, want);
    (token_len > 0).then(|| String::from_utf8(answer[1..1 + token_len].to_vec()).unwrap())
}

/// `count` complete v2 pairings, each side on its own connection, the two sides running
/// concurrently as two jrun clients do: [`V2_REQUESTS`] requests a pairing.
async fn v2_pairings(addr: SocketAddr, bodies: std::sync::Arc<V2Bodies>, count: usize) -> Vec<u32> {
    let mut a = connect(addr).await;
    let mut b = connect(addr).await;
    let mut lat = Vec::with_capacity(count * V2_REQUESTS);
    for _ in 0..count {
        let allocated = send(&mut a, "POST", "/v2/nameplate", Some(""), &mut lat).await;
        let Allocated { nameplate, token } = serde_json::from_slice(&allocated).unwrap();
        let path = |after: usize, wait: u64| {
            format!("/v2/nameplate/{nameplate}/messages?after={after}&wait={wait}")
        };
        let (mut lat_a, mut lat_b) = (Vec::new(), Vec::new());
        let creator = async {
            let ta = Some(token.as_str());
            let got = send_as(
                &mut a,
                "POST",
                &path(0, 25),
                Some((pair_v2::MEDIA_TYPE, &bodies.a[0])),
                ta,
                &mut lat_a,
            )
            .await;
            expect_messages(&got, Side::B, &[Phase::Pake, Phase::Confirm, Phase::Roster]);
            let got = send_as(
                &mut a,
                "POST",
                &path(3, 25),
                Some((pair_v2::MEDIA_TYPE, &bodies.a[1])),
                ta,
                &mut lat_a,
            )
            .await;
            expect_messages(&got, Side::B, &[Phase::Ack]);
        };
        let joiner = async {
            let got = send_as(&mut b, "GET", &path(0, 25), None, None, &mut lat_b).await;
            expect_messages(&got, Side::A, &[Phase::Pake]);
            let got = send_as(
                &mut b,
                "POST",
                &path(1, 25),
                Some((pair_v2::MEDIA_TYPE, &bodies.b[0])),
                None,
                &mut lat_b,
            )
            .await;
            let tb = expect_messages(&got, Side::A, &[Phase::Confirm, Phase::Roster, Phase::Ack])
                .expect("side b's token");
            let got = send_as(
                &mut b,
                "POST",
                &path(4, 0),
                Some((pair_v2::MEDIA_TYPE, &bodies.b[1])),
                Some(&tb),
                &mut lat_b,
            )
            .await;
            expect_messages(&got, Side::A, &[]);
        };
        tokio::join!(creator, joiner);
        lat.extend(lat_a);
        lat.extend(lat_b);
    }
    assert_eq!(lat.len(), count * V2_REQUESTS);
    lat
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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

        let bodies = std::sync::Arc::new(v2_bodies());
        drive(CLIENTS, |c| pairings(addr, c, WARMUP_PAIRINGS_PER_CLIENT)).await;
        drive(CLIENTS, |_| v2_pairings(addr, bodies.clone(), WARMUP_PAIRINGS_PER_CLIENT)).await;
        drive(CLIENTS, |_| bare_requests(bare_addr, WARMUP_PAIRINGS_PER_CLIENT)).await;
        assert_eq!(relay.mailboxes().pending(), 0, "every v2 nameplate forgotten");

        let sizes: Vec<usize> = bodies.a.iter().chain(&bodies.b).map(Vec::len).collect();
        println!("relay load benchmark: {CLIENTS} concurrent clients (one request in flight each, keep-alive) over loopback, 2 worker threads, {ROUNDS} rounds (medians)");
        println!("  v2 post bodies (bytes of frames; a: [pake], [confirm, roster of {V2_JAILS} jails, ack]; b: [pake, confirm, roster], [ack]): {sizes:?}");
        let (mut bare_rates, mut v1_rates, mut v2_rates) = (Vec::new(), Vec::new(), Vec::new());
        let mut ratios = Vec::new();
        let (mut bare_latencies, mut latencies, mut v2_latencies) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            // As many requests in flight as the pairing clients have: each sends one at a time.
            let (bare_time, l) =
                drive(CLIENTS, |_| bare_requests(bare_addr, PAIRINGS_PER_CLIENT * V1_REQUESTS)).await;
            bare_latencies.extend(l);
            bare_rates.push((CLIENTS * PAIRINGS_PER_CLIENT * V1_REQUESTS) as f64 / bare_time.as_secs_f64());

            let (time, l) = drive(CLIENTS, |c| pairings(addr, c, PAIRINGS_PER_CLIENT)).await;
            latencies.extend(l);
            v1_rates.push((CLIENTS * PAIRINGS_PER_CLIENT) as f64 / time.as_secs_f64());

            let (time, l) = drive(CLIENTS, |_| {
                v2_pairings(addr, bodies.clone(), V2_PAIRINGS_PER_CLIENT)
            })
            .await;
            v2_latencies.extend(l);
            v2_rates.push((CLIENTS * V2_PAIRINGS_PER_CLIENT) as f64 / time.as_secs_f64());
            assert_eq!(relay.mailboxes().pending(), 0, "every v2 nameplate forgotten");
            let (v1, v2) = (v1_rates[round - 1], v2_rates[round - 1]);
            // The rounds share the machine's load with whatever else runs: compare v2 with
            // the v1 of its own round.
            ratios.push(v2 / v1);
            println!(
                "  round {round}: bare {:.0} requests/s, v1 {v1:.0} pairings/s, v2 {v2:.0} pairings/s, v2/v1 {:.2}",
                bare_rates[round - 1],
                v2 / v1
            );
        }
        let bare_rps = median(&mut bare_rates);
        let pairings_per_s = median(&mut v1_rates);
        let v2_per_s = median(&mut v2_rates);
        let relay_rps = pairings_per_s * V1_REQUESTS as f64;
        bare_latencies.sort_unstable();
        latencies.sort_unstable();
        v2_latencies.sort_unstable();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));

        println!(
            "  bare axum handler:  {bare_rps:>10.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
            percentile(&bare_latencies, 0.5),
            percentile(&bare_latencies, 0.99)
        );
        println!("  relay v1:           {relay_rps:>10.0} requests/s = {pairings_per_s:.0} complete pairings/s ({})", verdict(pairings_per_s >= 10_000.0));
        println!("  ratio relay/bare:   {:>10.2} (requests/s)", relay_rps / bare_rps);
        println!("  latency per request: p50 {p50:.2} ms, p99 {p99:.2} ms ({})", verdict(p99 < 5.0));
        println!(
            "  relay v2:           {:>10.0} requests/s = {v2_per_s:.0} complete pairings/s ({V2_REQUESTS} requests each), p50 {:.2} ms, p99 {:.2} ms (waits for the peer included)",
            v2_per_s * V2_REQUESTS as f64,
            percentile(&v2_latencies, 0.5),
            percentile(&v2_latencies, 0.99)
        );
        let ratio = median(&mut ratios);
        println!(
            "  ratio v2/v1:        {ratio:>10.2} (pairings/s, median of the rounds' ratios; target >= {V2_TARGET_RATIO:.2}: {})",
            if ratio >= V2_TARGET_RATIO { "ok" } else { "MISSED" }
        );
        // Where the gap comes from: requests per pairing, or the cost of each request.
        println!(
            "  why:                {:>10.2} v2/v1 requests/s, but {V2_REQUESTS} requests per v2 pairing against {V1_REQUESTS} per v1 pairing",
            v2_per_s * V2_REQUESTS as f64 / relay_rps
        );
        println!(
            "                      at v2's requests/s, {V2_TARGET_RATIO:.2}x needs <= {:.1} requests per v2 pairing; with every request as cheap as the bare handler, {V2_REQUESTS} requests give {:.2}x",
            v2_per_s * V2_REQUESTS as f64 / (V2_TARGET_RATIO * pairings_per_s),
            bare_rps / V2_REQUESTS as f64 / pairings_per_s
        );

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
