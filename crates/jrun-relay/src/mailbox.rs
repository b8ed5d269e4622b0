//! Pairing v2's nameplates: opaque messages per nameplate, at most one per side and phase,
//! under the same TTL and memory limits as v1's pairings, forgotten once both sides ended
//! (`done` or `abort`) or the TTL ran out since the last message.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jrun_mesh::pair_v2::{Message, Phase, Side, NAMEPLATE_MAX, NAMEPLATE_MIN};
use jrun_mesh::protocol::CreatorToken;

use crate::clock::Clock;
use crate::rate_limit::network_key;
use crate::store::StoreError;
use crate::{RelayConfig, MAX_TTL};

/// The most messages a nameplate holds: one per side and phase.
pub const MAX_MESSAGES: usize = 12;

/// Why a post was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// No such nameplate, or a token that is not this side's (told apart from nothing).
    #[error("no pairing with this nameplate: it expired, ended, or the token is wrong")]
    NotFound,
    /// This side already posted this phase, or side b is already claimed.
    #[error("this side already sent that message (someone else may have claimed the pairing)")]
    Conflict,
    /// The messages take all the memory the relay allows.
    #[error("the relay is holding too many messages; try again in a few minutes")]
    Full,
}

struct Channel {
    creator: IpAddr,
    tokens: [Option<CreatorToken>; 2],
    messages: Vec<Message>,
    ended: [bool; 2],
    expires_at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<u32, Channel>,
    pending_by_client: HashMap<IpAddr, usize>,
    pending_by_network: HashMap<IpAddr, usize>,
    bytes: usize,
    deadlines: VecDeque<(Instant, u32)>,
}

/// The relay's v2 nameplates.
pub struct Mailboxes {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
}

const CHANNEL_BYTES: usize = size_of::<(u32, Channel)>() + size_of::<(Instant, u32)>() + 64;

fn message_bytes(m: &Message) -> usize {
    size_of::<Message>() + m.body.len()
}

impl Mailboxes {
    /// No nameplates yet. A TTL over [`MAX_TTL`] is cut to it.
    pub fn new(mut config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        config.ttl = config.ttl.min(MAX_TTL);
        Mailboxes {
            inner: Mutex::new(Inner::default()),
            clock,
            config,
        }
    }

    /// How many nameplates are live.
    pub fn pending(&self) -> usize {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner.channels.len()
    }

    /// The bytes the live nameplates count against the memory budget.
    pub fn bytes(&self) -> usize {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner.bytes
    }

    /// A fresh nameplate for `creator`, with side a's token. The same limits as v1's
    /// `create`: in total, per client, per network, in bytes.
    pub fn allocate(&self, creator: IpAddr) -> Result<(u32, CreatorToken), StoreError> {
        let token = CreatorToken::random().map_err(|_| StoreError::Rng)?;
        let mut inner = self.lock();
        self.sweep(&mut inner);
        if inner.channels.len() >= self.config.max_pending {
            return Err(StoreError::Full);
        }
        if inner.pending_by_client.get(&creator).copied().unwrap_or(0)
            >= self.config.max_pending_per_client
        {
            return Err(StoreError::ClientFull);
        }
        let network = network_key(creator);
        if inner.pending_by_network.get(&network).copied().unwrap_or(0)
            >= self.config.max_pending_per_network
        {
            return Err(StoreError::ClientFull);
        }
        if inner.bytes.saturating_add(CHANNEL_BYTES) > self.config.max_pending_bytes {
            return Err(StoreError::Full);
        }
        // Four digits while few are live (short codes), six when busy.
        let top = if inner.channels.len() < 4000 {
            9999
        } else {
            NAMEPLATE_MAX
        };
        let mut nameplate = None;
        for _ in 0..256 {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).map_err(|_| StoreError::Rng)?;
            let n = NAMEPLATE_MIN + u32::from_le_bytes(b) % (top - NAMEPLATE_MIN + 1);
            if !inner.channels.contains_key(&n) {
                nameplate = Some(n);
                break;
            }
        }
        let nameplate = nameplate.ok_or(StoreError::Full)?;
        let expires_at = self.clock.now() + self.config.ttl;
        inner.channels.insert(
            nameplate,
            Channel {
                creator,
                tokens: [Some(token.clone()), None],
                messages: Vec::new(),
                ended: [false, false],
                expires_at,
                bytes: CHANNEL_BYTES,
            },
        );
        *inner.pending_by_client.entry(creator).or_default() += 1;
        *inner.pending_by_network.entry(network).or_default() += 1;
        inner.bytes += CHANNEL_BYTES;
        inner.deadlines.push_back((expires_at, nameplate));
        Ok((nameplate, token))
    }

    /// Whether `token` is one of the nameplate's side tokens.
    pub fn holds_token(&self, nameplate: u32, token: &CreatorToken) -> bool {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner
            .channels
            .get(&nameplate)
            .is_some_and(|c| c.tokens.iter().any(|t| t.as_ref() == Some(token)))
    }

    /// Appends a message. Side a posts with its token. Side b's first post (its PAKE
    /// message, without a token) claims side b and is answered with b's token; later posts
    /// of b carry it. Returns the token handed out, if any.
    pub fn post(
        &self,
        nameplate: u32,
        token: Option<&CreatorToken>,
        message: Message,
    ) -> Result<Option<CreatorToken>, PostError> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let expires_at = self.clock.now() + self.config.ttl;
        let used = inner.bytes;
        let channel = inner
            .channels
            .get_mut(&nameplate)
            .ok_or(PostError::NotFound)?;
        let side = message.side.index();
        let mut issued = None;
        match (&channel.tokens[side], token) {
            (Some(expected), Some(t)) if expected == t => {}
            (None, None) if message.side == Side::B && message.phase == Phase::Pake => {
                let t = CreatorToken::random().map_err(|_| PostError::Full)?;
                channel.tokens[side] = Some(t.clone());
                issued = Some(t);
            }
            // Side b already claimed by someone: the first joiner wins, as in v1.
            (Some(_), None) if message.side == Side::B && message.phase == Phase::Pake => {
                return Err(PostError::Conflict)
            }
            _ => return Err(PostError::NotFound),
        }
        if channel
            .messages
            .iter()
            .any(|m| m.side == message.side && m.phase == message.phase)
            || channel.ended[side]
            || channel.messages.len() >= MAX_MESSAGES
        {
            if issued.is_some() {
                channel.tokens[side] = None;
            }
            return Err(PostError::Conflict);
        }
        let bytes = message_bytes(&message);
        if used.saturating_add(bytes) > self.config.max_pending_bytes {
            if issued.is_some() {
                channel.tokens[side] = None;
            }
            return Err(PostError::Full);
        }
        if message.phase.is_final() {
            channel.ended[side] = true;
        }
        channel.messages.push(message);
        channel.bytes += bytes;
        channel.expires_at = expires_at;
        let both_ended = channel.ended == [true, true];
        inner.bytes += bytes;
        if both_ended {
            remove(&mut inner, nameplate);
        } else {
            inner.deadlines.push_back((expires_at, nameplate));
        }
        Ok(issued)
    }

    /// The messages from index `after` on, for a holder of either side's token; `None`
    /// for an unknown nameplate or a wrong token.
    pub fn messages(
        &self,
        nameplate: u32,
        token: &CreatorToken,
        after: usize,
    ) -> Option<Vec<Message>> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let channel = inner.channels.get(&nameplate)?;
        if !channel.tokens.iter().any(|t| t.as_ref() == Some(token)) {
            return None;
        }
        Some(channel.messages.iter().skip(after).cloned().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, inner: &mut Inner) {
        let now = self.clock.now();
        while let Some((deadline, _)) = inner.deadlines.front() {
            if *deadline > now {
                break;
            }
            let (deadline, n) = inner.deadlines.pop_front().expect("front exists");
            if inner.channels.get(&n).map(|c| c.expires_at) == Some(deadline) {
                remove(inner, n);
            }
        }
    }
}

fn remove(inner: &mut Inner, nameplate: u32) {
    let Some(channel) = inner.channels.remove(&nameplate) else {
        return;
    };
    inner.bytes -= channel.bytes;
    for (map, key) in [
        (&mut inner.pending_by_client, channel.creator),
        (&mut inner.pending_by_network, network_key(channel.creator)),
    ] {
        if let Some(n) = map.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn msg(side: Side, phase: Phase, body: &[u8]) -> Message {
        Message {
            side,
            phase,
            body: body.to_vec(),
        }
    }

    fn boxes(config: RelayConfig) -> (Mailboxes, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (Mailboxes::new(config, clock.clone()), clock)
    }

    #[test]
    fn lifecycle_claims_and_forgetting() {
        let (m, _) = boxes(RelayConfig::default());
        let (n, ta) = m.allocate(A).unwrap();
        assert!((NAMEPLATE_MIN..=9999).contains(&n));
        m.post(n, Some(&ta), msg(Side::A, Phase::Pake, b"pa"))
            .unwrap();
        // Side a's messages need a's token; b's first post claims b.
        assert_eq!(
            m.post(n, None, msg(Side::A, Phase::Confirm, b"x")),
            Err(PostError::NotFound)
        );
        assert_eq!(
            m.post(n, None, msg(Side::B, Phase::Confirm, b"x")),
            Err(PostError::NotFound)
        );
        let tb = m
            .post(n, None, msg(Side::B, Phase::Pake, b"pb"))
            .unwrap()
            .unwrap();
        assert_eq!(
            m.post(n, None, msg(Side::B, Phase::Pake, b"pc")),
            Err(PostError::Conflict)
        );
        assert_eq!(
            m.post(n, Some(&ta), msg(Side::B, Phase::Confirm, b"x")),
            Err(PostError::NotFound)
        );
        assert_eq!(
            m.post(n, Some(&ta), msg(Side::A, Phase::Pake, b"again")),
            Err(PostError::Conflict)
        );
        let all = m.messages(n, &tb, 0).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(m.messages(n, &ta, 1).unwrap()[0].body, b"pb");
        assert_eq!(m.messages(n, &CreatorToken::random().unwrap(), 0), None);
        assert_eq!(m.messages(n + 1, &ta, 0), None);
        m.post(n, Some(&ta), msg(Side::A, Phase::Done, b""))
            .unwrap();
        assert_eq!(m.pending(), 1);
        assert_eq!(
            m.post(n, Some(&ta), msg(Side::A, Phase::Ack, b"late")),
            Err(PostError::Conflict)
        );
        m.post(n, Some(&tb), msg(Side::B, Phase::Abort, b""))
            .unwrap();
        // Both ended: forgotten, memory back.
        assert_eq!(m.pending(), 0);
        assert_eq!(m.bytes(), 0);
        assert_eq!(m.messages(n, &ta, 0), None);
    }

    #[test]
    fn the_ttl_runs_from_the_last_message() {
        let (m, clock) = boxes(RelayConfig::default());
        let (n, ta) = m.allocate(A).unwrap();
        clock.advance(Duration::from_secs(500));
        m.post(n, Some(&ta), msg(Side::A, Phase::Pake, b"pa"))
            .unwrap();
        clock.advance(Duration::from_secs(500));
        assert!(m.messages(n, &ta, 0).is_some());
        clock.advance(Duration::from_secs(100));
        assert_eq!(m.messages(n, &ta, 0), None);
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
            m.post(n, Some(&ta), msg(Side::A, Phase::Roster, &[0; 500])),
            Err(PostError::Full)
        );
        m.post(n, Some(&ta), msg(Side::A, Phase::Pake, &[0; 33]))
            .unwrap();
        assert_eq!(m.allocate(A), Err(StoreError::Full));
    }
}
