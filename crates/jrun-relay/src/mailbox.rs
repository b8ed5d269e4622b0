//! Pairing v2's nameplates: opaque messages per nameplate and side, at most one per side
//! and phase, under the same TTL and memory limits as v1's pairings. A read may wait for
//! the peer's next message (long poll) without holding any lock: each nameplate has a
//! `Notify` that every post, and forgetting the nameplate, wakes. A nameplate is forgotten
//! once neither side needs anything more from it — each side gave up or was handed the
//! peer's last message — or when the TTL ran out since the last message.

use std::collections::HashMap;
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use jrun_mesh::pair_v2::{Frame, Phase, Side, NAMEPLATE_MAX, NAMEPLATE_MIN};
use jrun_mesh::protocol::CreatorToken;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::quota::Quota;
use crate::store::StoreError;
use crate::{RelayConfig, MAX_TTL};

/// The most messages a side posts: pake, confirm, roster, then ack or abort.
pub const MAX_MESSAGES_PER_SIDE: usize = 4;

/// Why a post was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// No such nameplate, or a token that is not this side's (told apart from nothing).
    #[error("no pairing with this nameplate: it expired, ended, or the token is wrong")]
    NotFound,
    /// This side already posted this phase or ended, or side b is already claimed.
    #[error("this side already sent that message (someone else may have claimed the pairing)")]
    Conflict,
    /// The messages take all the memory the relay allows.
    #[error("the relay is holding too many messages; try again in a few minutes")]
    Full,
    /// The token is none of this nameplate's (or there is no such nameplate), and the
    /// caller has not yet spent a lookup on it: nothing was done.
    #[error("spend a lookup first")]
    Unadmitted,
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No such nameplate (or it was forgotten while waiting).
    #[error("no pairing with this nameplate: it expired or ended")]
    NotFound,
    /// A joiner without a token, but side b is already claimed.
    #[error("this pairing was already joined by someone else")]
    Claimed,
    /// Too many requests are waiting relay-wide.
    #[error("the relay is holding too many waiting requests; try again in a moment")]
    Busy,
    /// As [`PostError::Unadmitted`]: nothing was read.
    #[error("spend a lookup first")]
    Unadmitted,
}

/// One message as posted: its side and phase, and its frame exactly as it came (checked
/// once by `pair_v2::parse_post`), which the peer is handed without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Who sent it.
    pub side: Side,
    /// Which step.
    pub phase: Phase,
    /// The frame: head and body.
    pub wire: Bytes,
}

impl Stored {
    /// The messages of a post's checked `frames`, sharing `body`'s bytes (the frames lie
    /// in it).
    pub fn from_frames(body: &Bytes, frames: &[Frame<'_>]) -> Vec<Stored> {
        frames
            .iter()
            .map(|f| Stored {
                side: f.side,
                phase: f.phase,
                wire: body.slice_ref(f.wire),
            })
            .collect()
    }
}

/// Who reads: a side (by its token), or a joiner that has not claimed side b yet and may
/// read only side a's PAKE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A holder of this side's token: reads the peer's messages.
    Side(Side),
    /// No token: side a's PAKE message, while side b is unclaimed.
    Joiner,
}

struct Channel {
    creator: IpAddr,
    tokens: [Option<CreatorToken>; 2],
    /// Each side's messages, in the order posted.
    messages: [Vec<Stored>; 2],
    /// Side `s` was handed the peer's last message (`ack` or `abort`).
    got_final: [bool; 2],
    expires_at: Instant,
    bytes: usize,
    /// Wakes every waiting reader on each post, and when the nameplate goes. A reader
    /// takes its `notified()` under the lock, so that no post slips by unseen.
    changed: Arc<Notify>,
}

impl Channel {
    fn ended(&self, side: Side) -> bool {
        self.messages[side.index()]
            .last()
            .is_some_and(|m| m.phase.is_final())
    }

    fn aborted(&self, side: Side) -> bool {
        self.messages[side.index()]
            .last()
            .is_some_and(|m| m.phase == Phase::Abort)
    }

    /// Neither side will read again: each gave up or holds the peer's last message.
    fn finished(&self) -> bool {
        [Side::A, Side::B]
            .into_iter()
            .all(|s| self.aborted(s) || self.got_final[s.index()])
    }
}

#[derive(Default)]
struct Inner {
    channels: HashMap<u32, Channel>,
    /// The nameplates' counts, bytes and deadlines, as v1's pairings'.
    quota: Quota<u32>,
}

/// The relay's v2 nameplates.
pub struct Mailboxes {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
    parked: AtomicUsize,
}

const CHANNEL_BYTES: usize = size_of::<(u32, Channel)>() + size_of::<(Instant, u32)>() + 64;

fn message_bytes(m: &Stored) -> usize {
    size_of::<Stored>() + m.wire.len()
}

/// One waiting request, counted against `max_parked` until dropped.
struct Parked<'a>(&'a AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A post taken: the side that posted, side b's token if this post claimed it, and its
/// answer to come.
#[derive(Debug)]
pub struct Posted {
    /// The side that posted.
    pub side: Side,
    /// Side b's token, handed out to the post that claimed it.
    pub token: Option<CreatorToken>,
    /// The peer's messages from the poster's cursor on, for [`Mailboxes::answer`].
    pub answer: Pending,
}

/// A read begun under the post's lock: what it found, and where to look again.
#[derive(Debug)]
pub struct Pending {
    first: Read,
    nameplate: u32,
    reader: Reader,
    after: usize,
}

#[derive(Debug)]
enum Read {
    Ready(Vec<Stored>),
    Empty(OwnedNotified),
}

impl Mailboxes {
    /// No nameplates yet. A TTL over [`MAX_TTL`] is cut to it.
    pub fn new(mut config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        config.ttl = config.ttl.min(MAX_TTL);
        Mailboxes {
            inner: Mutex::new(Inner::default()),
            clock,
            config,
            parked: AtomicUsize::new(0),
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
        inner.quota.bytes()
    }

    /// How many reads are waiting now.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// A fresh nameplate for `creator`, with side a's token. The same limits as v1's
    /// `create`: in total, per client, per network, in bytes.
    pub fn allocate(&self, creator: IpAddr) -> Result<(u32, CreatorToken), StoreError> {
        let token = CreatorToken::random().map_err(|_| StoreError::Rng)?;
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner
            .quota
            .admit(&self.config, inner.channels.len(), creator, CHANNEL_BYTES)?;
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
                messages: [Vec::new(), Vec::new()],
                got_final: [false, false],
                expires_at,
                bytes: CHANNEL_BYTES,
                changed: Arc::new(Notify::new()),
            },
        );
        inner
            .quota
            .add(creator, CHANNEL_BYTES, nameplate, expires_at);
        Ok((nameplate, token))
    }

    /// The side whose token `token` is, if it is one of the nameplate's.
    pub fn side_of(&self, nameplate: u32, token: &CreatorToken) -> Option<Side> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        side_in(inner.channels.get(&nameplate)?, token)
    }

    /// Whether `token` is one of the nameplate's side tokens.
    pub fn holds_token(&self, nameplate: u32, token: &CreatorToken) -> bool {
        self.side_of(nameplate, token).is_some()
    }

    /// Appends one side's messages (all of one side, as `pair_v2::parse_post` checks), all
    /// or none, and takes, under the same lock, what the poster may read of the peer's
    /// messages from index `after` on ([`Mailboxes::answer`] hands it over, or waits).
    ///
    /// Side a posts with its token. Side b's first post, without a token and starting with
    /// its PAKE message, claims side b and is answered with b's token; later posts of b
    /// carry it. Unless the caller was `admitted` (it spent a lookup), a token that is none
    /// of this nameplate's is [`PostError::Unadmitted`] and nothing happens: the common
    /// post, with its own token, takes the lock once for the post and its answer.
    pub fn post(
        &self,
        nameplate: u32,
        token: Option<&CreatorToken>,
        batch: &[Stored],
        admitted: bool,
        after: usize,
    ) -> Result<Posted, PostError> {
        let first = batch.first().ok_or(PostError::Conflict)?;
        let (side, claims) = (first.side, first.phase == Phase::Pake);
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let expires_at = self.clock.now() + self.config.ttl;
        let unknown = if admitted {
            PostError::NotFound
        } else {
            PostError::Unadmitted
        };
        let Inner { channels, quota } = &mut *inner;
        let Some(channel) = channels.get_mut(&nameplate) else {
            return Err(unknown);
        };
        if !admitted && token.and_then(|t| side_in(channel, t)).is_none() {
            return Err(PostError::Unadmitted);
        }
        let mut issued = None;
        match (&channel.tokens[side.index()], token) {
            (Some(expected), Some(t)) if expected == t => {}
            (None, None) if side == Side::B && claims => {
                issued = Some(CreatorToken::random().map_err(|_| PostError::Full)?);
            }
            // Side b already claimed by someone: the first joiner wins, as in v1.
            (Some(_), None) if side == Side::B && claims => return Err(PostError::Conflict),
            _ => return Err(PostError::NotFound),
        }
        let mine = &channel.messages[side.index()];
        let repeated = batch.iter().enumerate().any(|(i, m)| {
            m.side != side
                || mine.iter().any(|old| old.phase == m.phase)
                || batch[..i].iter().any(|earlier| earlier.phase == m.phase)
        });
        if repeated || channel.ended(side) || mine.len() + batch.len() > MAX_MESSAGES_PER_SIDE {
            return Err(PostError::Conflict);
        }
        let bytes: usize = batch.iter().map(message_bytes).sum();
        if !quota.fits(&self.config, bytes) {
            return Err(PostError::Full);
        }
        if let Some(t) = &issued {
            channel.tokens[side.index()] = Some(t.clone());
        }
        channel.messages[side.index()].extend_from_slice(batch);
        channel.bytes += bytes;
        channel.expires_at = expires_at;
        channel.changed.notify_waiters();
        let finished = channel.finished();
        quota.grow(bytes);
        if finished {
            remove(&mut inner, nameplate);
        } else {
            quota.due(nameplate, expires_at);
        }
        let reader = Reader::Side(side);
        // Even with the nameplate gone (after this side's last message), the post went
        // through: its answer is a success, empty.
        let first =
            read_locked(&mut inner, nameplate, reader, after).unwrap_or(Read::Ready(Vec::new()));
        Ok(Posted {
            side,
            token: issued,
            answer: Pending {
                first,
                nameplate,
                reader,
                after,
            },
        })
    }

    /// A post's answer: the peer's messages it found, or, if there were none, those that
    /// arrive within `wait` (none when too many reads wait already, or the nameplate went).
    pub async fn answer(&self, pending: Pending, wait: Duration) -> Vec<Stored> {
        let Pending {
            first,
            nameplate,
            reader,
            after,
        } = pending;
        self.wait_for(first, nameplate, reader, after, wait, true)
            .await
            .unwrap_or_default()
    }

    /// A `GET`: the peer's messages from index `after` on for the holder of a side's
    /// `token`; without a token, side a's PAKE message (a joiner). Waits up to `wait` for
    /// one. Unless `admitted`, a token that is none of this nameplate's, or none at all, is
    /// [`ReadError::Unadmitted`] and nothing happens.
    pub async fn fetch(
        &self,
        nameplate: u32,
        token: Option<&CreatorToken>,
        admitted: bool,
        after: usize,
        wait: Duration,
    ) -> Result<Vec<Stored>, ReadError> {
        let (reader, first) = {
            let mut inner = self.lock();
            self.sweep(&mut inner);
            let side = inner
                .channels
                .get(&nameplate)
                .zip(token)
                .and_then(|(channel, t)| side_in(channel, t));
            let reader = match (side, token) {
                (Some(side), _) => Reader::Side(side),
                _ if !admitted => return Err(ReadError::Unadmitted),
                (None, None) => Reader::Joiner,
                (None, Some(_)) => return Err(ReadError::NotFound),
            };
            (reader, read_locked(&mut inner, nameplate, reader, after)?)
        };
        self.wait_for(first, nameplate, reader, after, wait, false)
            .await
    }

    /// What `reader` may read from index `after` on: the peer's messages for a side, side
    /// a's PAKE message for a joiner. With a `wait`, an empty answer is held until there is
    /// something to read or the wait ran out; `park_or_skip` says what to do when too many
    /// reads are waiting already: `true` answers at once (possibly empty), `false` refuses
    /// ([`ReadError::Busy`]).
    pub async fn read(
        &self,
        nameplate: u32,
        reader: Reader,
        after: usize,
        wait: Duration,
        park_or_skip: bool,
    ) -> Result<Vec<Stored>, ReadError> {
        let first = self.try_read(nameplate, reader, after)?;
        self.wait_for(first, nameplate, reader, after, wait, park_or_skip)
            .await
    }

    /// Holds an empty `first` read until the channel changes or `wait` runs out, then looks
    /// again.
    async fn wait_for(
        &self,
        first: Read,
        nameplate: u32,
        reader: Reader,
        after: usize,
        wait: Duration,
        park_or_skip: bool,
    ) -> Result<Vec<Stored>, ReadError> {
        let mut changed = match first {
            Read::Ready(list) => return Ok(list),
            Read::Empty(changed) => changed,
        };
        if wait.is_zero() {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut parked = None;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            if parked.is_none() {
                match self.park() {
                    Some(p) => parked = Some(p),
                    None if park_or_skip => return Ok(Vec::new()),
                    None => return Err(ReadError::Busy),
                }
            }
            // A post, or forgetting the nameplate: look again.
            let _ = tokio::time::timeout_at(deadline, changed).await;
            changed = match self.try_read(nameplate, reader, after)? {
                Read::Ready(list) => return Ok(list),
                Read::Empty(changed) => changed,
            };
        }
    }

    fn park(&self) -> Option<Parked<'_>> {
        let before = self.parked.fetch_add(1, Ordering::Relaxed);
        let parked = Parked(&self.parked);
        (before < self.config.max_parked).then_some(parked)
    }

    fn try_read(&self, nameplate: u32, reader: Reader, after: usize) -> Result<Read, ReadError> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        read_locked(&mut inner, nameplate, reader, after)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, inner: &mut Inner) {
        let now = self.clock.now();
        while let Some((deadline, n)) = inner.quota.pop_expired(now) {
            if inner.channels.get(&n).map(|c| c.expires_at) == Some(deadline) {
                remove(inner, n);
            }
        }
    }
}

/// The side whose token `token` is.
fn side_in(channel: &Channel, token: &CreatorToken) -> Option<Side> {
    [Side::A, Side::B]
        .into_iter()
        .find(|s| channel.tokens[s.index()].as_ref() == Some(token))
}

fn read_locked(
    inner: &mut Inner,
    nameplate: u32,
    reader: Reader,
    after: usize,
) -> Result<Read, ReadError> {
    let channel = inner
        .channels
        .get_mut(&nameplate)
        .ok_or(ReadError::NotFound)?;
    let list: Vec<Stored> = match reader {
        Reader::Side(side) => channel.messages[side.peer().index()]
            .iter()
            .skip(after)
            .cloned()
            .collect(),
        Reader::Joiner => {
            if channel.tokens[Side::B.index()].is_some() {
                return Err(ReadError::Claimed);
            }
            channel.messages[Side::A.index()]
                .iter()
                .filter(|m| m.phase == Phase::Pake)
                .skip(after)
                .cloned()
                .collect()
        }
    };
    if list.is_empty() {
        return Ok(Read::Empty(channel.changed.clone().notified_owned()));
    }
    if let Reader::Side(side) = reader {
        if list.iter().any(|m| m.phase.is_final()) {
            channel.got_final[side.index()] = true;
            if channel.finished() {
                remove(inner, nameplate);
            }
        }
    }
    Ok(Read::Ready(list))
}

fn remove(inner: &mut Inner, nameplate: u32) {
    let Some(channel) = inner.channels.remove(&nameplate) else {
        return;
    };
    // Its waiting readers look again, and find it gone.
    channel.changed.notify_waiters();
    inner.quota.release(channel.creator, channel.bytes);
}

#[cfg(test)]
mod tests;
