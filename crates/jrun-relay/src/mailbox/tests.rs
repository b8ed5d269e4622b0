use super::*;
use crate::ManualClock;

const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const NOW: Duration = Duration::ZERO;

fn msg(side: Side, phase: Phase, body: &[u8]) -> Stored {
    let wire = jrun_mesh::pair_v2::encode_messages(&[jrun_mesh::pair_v2::Message {
        side,
        phase,
        body: body.to_vec(),
    }]);
    Stored {
        side,
        phase,
        wire: wire.into(),
    }
}

/// A post by a caller that spent its lookup, without its answer.
fn post(
    m: &Mailboxes,
    n: u32,
    token: Option<&CreatorToken>,
    batch: Vec<Stored>,
) -> Result<(Side, Option<CreatorToken>), PostError> {
    m.post(n, token, &batch, true, 0).map(|p| (p.side, p.token))
}

fn boxes(config: RelayConfig) -> (Arc<Mailboxes>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (Arc::new(Mailboxes::new(config, clock.clone())), clock)
}

fn phases(list: &[Stored]) -> Vec<(Side, Phase)> {
    list.iter().map(|m| (m.side, m.phase)).collect()
}

/// A read by `reader` from index `after` that waits (up to 600 s), spawned; returned once
/// it is parked at the relay.
async fn parked_read(
    m: &Arc<Mailboxes>,
    n: u32,
    reader: Reader,
    after: usize,
) -> tokio::task::JoinHandle<Result<Vec<Stored>, ReadError>> {
    let before = m.parked();
    let waiting = {
        let m = m.clone();
        tokio::spawn(async move {
            m.read(n, reader, after, Duration::from_secs(600), false)
                .await
        })
    };
    while m.parked() == before {
        tokio::task::yield_now().await;
    }
    waiting
}

#[tokio::test]
async fn claims_batches_and_forgetting_once_both_last_messages_were_delivered() {
    let (m, _) = boxes(RelayConfig::default());
    let (n, ta) = m.allocate(A).unwrap();
    assert!((NAMEPLATE_MIN..=9999).contains(&n));
    post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Pake, b"pa")]).unwrap();
    // A joiner reads a's PAKE without a token.
    let got = m.read(n, Reader::Joiner, 0, NOW, false).await.unwrap();
    assert_eq!(phases(&got), [(Side::A, Phase::Pake)]);
    // Side a's messages need a's token; b's first post, its PAKE first, claims b.
    assert_eq!(
        post(&m, n, None, vec![msg(Side::A, Phase::Confirm, b"x")]),
        Err(PostError::NotFound)
    );
    assert_eq!(
        post(&m, n, None, vec![msg(Side::B, Phase::Confirm, b"x")]),
        Err(PostError::NotFound)
    );
    let b_first = vec![
        msg(Side::B, Phase::Pake, b"pb"),
        msg(Side::B, Phase::Confirm, b"cb"),
        msg(Side::B, Phase::Roster, b"rb"),
    ];
    let (side, tb) = post(&m, n, None, b_first).unwrap();
    let tb = tb.unwrap();
    assert_eq!(side, Side::B);
    assert_eq!(m.side_of(n, &tb), Some(Side::B));
    assert_eq!(
        post(&m, n, None, vec![msg(Side::B, Phase::Pake, b"pc")]),
        Err(PostError::Conflict)
    );
    assert_eq!(
        m.read(n, Reader::Joiner, 0, NOW, false).await,
        Err(ReadError::Claimed)
    );
    // A token posts only its own side, each phase once, all of a batch or nothing.
    assert_eq!(
        post(&m, n, Some(&ta), vec![msg(Side::B, Phase::Ack, b"x")]),
        Err(PostError::NotFound)
    );
    assert_eq!(
        post(
            &m,
            n,
            Some(&ta),
            vec![
                msg(Side::A, Phase::Confirm, b"x"),
                msg(Side::A, Phase::Pake, b"again")
            ]
        ),
        Err(PostError::Conflict)
    );
    let got = m
        .read(n, Reader::Side(Side::A), 0, NOW, false)
        .await
        .unwrap();
    assert_eq!(phases(&got).len(), 3);
    assert_eq!(
        m.read(n, Reader::Side(Side::A), 1, NOW, false)
            .await
            .unwrap()[0]
            .wire,
        msg(Side::B, Phase::Confirm, b"cb").wire
    );
    assert!(m
        .read(n, Reader::Side(Side::B), 1, NOW, false)
        .await
        .unwrap()
        .is_empty());
    post(
        &m,
        n,
        Some(&ta),
        vec![
            msg(Side::A, Phase::Confirm, b"ca"),
            msg(Side::A, Phase::Roster, b"ra"),
            msg(Side::A, Phase::Ack, b"aa"),
        ],
    )
    .unwrap();
    // a ended: nothing more from it.
    assert_eq!(
        post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Abort, b"")]),
        Err(PostError::Conflict)
    );
    // b is handed a's last message; then b's ack reaches a: forgotten, memory back.
    let got = m
        .read(n, Reader::Side(Side::B), 1, NOW, false)
        .await
        .unwrap();
    assert_eq!(
        phases(&got),
        [
            (Side::A, Phase::Confirm),
            (Side::A, Phase::Roster),
            (Side::A, Phase::Ack)
        ]
    );
    post(&m, n, Some(&tb), vec![msg(Side::B, Phase::Ack, b"ab")]).unwrap();
    assert_eq!(m.pending(), 1, "a has not read b's ack yet");
    let got = m
        .read(n, Reader::Side(Side::A), 3, NOW, false)
        .await
        .unwrap();
    assert_eq!(phases(&got), [(Side::B, Phase::Ack)]);
    assert_eq!(m.pending(), 0);
    assert_eq!(m.bytes(), 0);
    assert_eq!(
        m.read(n, Reader::Side(Side::A), 0, NOW, false).await,
        Err(ReadError::NotFound)
    );
}

#[tokio::test]
async fn a_stranger_spends_a_lookup_before_anything_happens() {
    let (m, _) = boxes(RelayConfig::default());
    let (n, ta) = m.allocate(A).unwrap();
    let other = if n == NAMEPLATE_MIN { n + 1 } else { n - 1 };
    let stranger = CreatorToken::random().unwrap();
    let pake = [msg(Side::A, Phase::Pake, b"pa")];
    for (n, token) in [(n, None), (n, Some(&stranger)), (other, Some(&ta))] {
        let posted = m.post(n, token, &pake, false, 0);
        assert_eq!(posted.unwrap_err(), PostError::Unadmitted);
        let fetched = m.fetch(n, token, false, 0, NOW).await;
        assert_eq!(fetched, Err(ReadError::Unadmitted));
    }
    assert_eq!(m.bytes(), CHANNEL_BYTES, "nothing was stored");
    // Once it spent its lookup, a stranger finds nothing.
    let posted = m.post(n, Some(&stranger), &pake, true, 0);
    assert_eq!(posted.unwrap_err(), PostError::NotFound);
    let fetched = m.fetch(n, Some(&stranger), true, 0, NOW).await;
    assert_eq!(fetched, Err(ReadError::NotFound));
    // A side's own token needs no lookup; the answer comes from the same lock.
    let posted = m.post(n, Some(&ta), &pake, false, 0).unwrap();
    assert_eq!((posted.side, posted.token.is_none()), (Side::A, true));
    assert_eq!(m.answer(posted.answer, NOW).await, vec![]);
    // A joiner (after its lookup) reads a's PAKE, then claims b and gets a's PAKE again
    // with its token.
    let got = m.fetch(n, None, true, 0, NOW).await.unwrap();
    assert_eq!(phases(&got), [(Side::A, Phase::Pake)]);
    let pb = [msg(Side::B, Phase::Pake, b"pb")];
    let posted = m.post(n, None, &pb, true, 0).unwrap();
    assert_eq!(posted.side, Side::B);
    let tb = posted.token.clone();
    let answer = m.answer(posted.answer, NOW).await;
    assert_eq!(phases(&answer), [(Side::A, Phase::Pake)]);
    assert_eq!(answer[0].wire, pake[0].wire);
    let got = m.fetch(n, tb.as_ref(), false, 0, NOW).await;
    assert_eq!(got.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wait_ends_with_the_peers_post_or_empty_when_it_runs_out() {
    let (m, _) = boxes(RelayConfig::default());
    let (n, ta) = m.allocate(A).unwrap();
    let started = tokio::time::Instant::now();
    let got = m
        .read(n, Reader::Joiner, 0, Duration::from_millis(50), false)
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(m.parked(), 0);
    let waiting = parked_read(&m, n, Reader::Joiner, 0).await;
    post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Pake, b"pa")]).unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(phases(&got), [(Side::A, Phase::Pake)]);
    assert_eq!(m.parked(), 0);
}

#[tokio::test]
async fn an_abort_wakes_the_waiting_peer_and_the_nameplate_goes() {
    let (m, _) = boxes(RelayConfig::default());
    let (n, ta) = m.allocate(A).unwrap();
    post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Pake, b"pa")]).unwrap();
    let (_, tb) = post(&m, n, None, vec![msg(Side::B, Phase::Pake, b"pb")]).unwrap();
    assert!(tb.is_some());
    let waiting = parked_read(&m, n, Reader::Side(Side::B), 1).await;
    post(
        &m,
        n,
        Some(&ta),
        vec![
            msg(Side::A, Phase::Confirm, b"ca"),
            msg(Side::A, Phase::Abort, b""),
        ],
    )
    .unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(
        phases(&got),
        [(Side::A, Phase::Confirm), (Side::A, Phase::Abort)]
    );
    assert_eq!(m.pending(), 0);
    assert_eq!(m.bytes(), 0);
}

#[tokio::test]
async fn waiting_reads_are_capped_relay_wide() {
    let config = RelayConfig {
        max_parked: 1,
        ..RelayConfig::default()
    };
    let (m, _) = boxes(config);
    let (n, _) = m.allocate(A).unwrap();
    let first = parked_read(&m, n, Reader::Joiner, 0).await;
    let long = Duration::from_secs(600);
    assert_eq!(
        m.read(n, Reader::Joiner, 0, long, false).await,
        Err(ReadError::Busy)
    );
    // A post's read answers at once instead.
    assert_eq!(
        m.read(n, Reader::Joiner, 0, long, true).await,
        Ok(Vec::new())
    );
    assert_eq!(m.parked(), 1);
    first.abort();
    let _ = first.await;
    assert_eq!(m.parked(), 0);
    assert_eq!(
        m.read(n, Reader::Joiner, 0, Duration::from_millis(1), false)
            .await,
        Ok(Vec::new())
    );
}

#[tokio::test]
async fn the_ttl_runs_from_the_last_message() {
    let (m, clock) = boxes(RelayConfig::default());
    let (n, ta) = m.allocate(A).unwrap();
    clock.advance(Duration::from_secs(500));
    post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Pake, b"pa")]).unwrap();
    clock.advance(Duration::from_secs(500));
    assert!(m
        .read(n, Reader::Side(Side::A), 0, NOW, false)
        .await
        .is_ok());
    clock.advance(Duration::from_secs(100));
    assert_eq!(
        m.read(n, Reader::Side(Side::A), 0, NOW, false).await,
        Err(ReadError::NotFound)
    );
    assert_eq!(m.pending(), 0);
    assert_eq!(m.bytes(), 0);
}

#[test]
fn limits_as_v1() {
    let config = RelayConfig {
        max_pending: 3,
        max_pending_per_client: 2,
        ..RelayConfig::default()
    };
    let (m, clock) = boxes(config);
    let b: IpAddr = "127.0.0.2".parse().unwrap();
    m.allocate(A).unwrap();
    m.allocate(A).unwrap();
    assert_eq!(m.allocate(A), Err(StoreError::ClientFull));
    m.allocate(b).unwrap();
    assert_eq!(m.allocate(b), Err(StoreError::Full));
    clock.advance(Duration::from_secs(600));
    assert_eq!(m.pending(), 0);
    m.allocate(A).unwrap();
    // Bytes: a budget for one channel and a small message.
    let config = RelayConfig {
        max_pending_bytes: CHANNEL_BYTES + 200,
        ..RelayConfig::default()
    };
    let (m, _) = boxes(config);
    let (n, ta) = m.allocate(A).unwrap();
    assert_eq!(
        post(
            &m,
            n,
            Some(&ta),
            vec![msg(Side::A, Phase::Roster, &[0; 500])]
        ),
        Err(PostError::Full)
    );
    post(&m, n, Some(&ta), vec![msg(Side::A, Phase::Pake, &[0; 33])]).unwrap();
    assert_eq!(m.allocate(A), Err(StoreError::Full));
}
