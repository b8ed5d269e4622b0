//! The pending pairings: created, joined once, collected once, then gone; expired ones are
//! swept. Memory stays bounded by `max_pending` pairings and `max_pending_bytes` of rosters.

use std::collections::HashMap;
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jrun_mesh::protocol::{Created, CreatorToken, PollStatus, Roster, RosterJail};
use jrun_mesh::PairCode;

use crate::clock::Clock;
use crate::code::draw_code;
use crate::quota::Quota;
use crate::{RelayConfig, MAX_TTL};

/// Why a pairing could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The relay holds as many pending pairings as it allows.
    #[error("the relay has too many pending pairings; try again in a few minutes")]
    Full,
    /// This client (IPv4 address, IPv6 /64) or its network (IPv4 /24, IPv6 /48) has as
    /// many pending pairings as it may.
    #[error("too many pending pairings from your address; finish or let some expire first")]
    ClientFull,
    /// The OS random number generator failed.
    #[error("could not draw a pairing code")]
    Rng,
}

/// Why a join failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No such pairing: never made, expired, or already collected.
    #[error("no pairing with this code: it expired or was already used")]
    NotFound,
    /// Someone joined already; a code is single use.
    #[error("this pairing was already joined; a code can be used once")]
    AlreadyJoined,
    /// The pending rosters take all the memory the relay allows.
    #[error("the relay is holding too many rosters; try again in a few minutes")]
    Full,
}

struct Pairing {
    creator: IpAddr,
    /// The creator's secret, when it asked for one: then only it can poll.
    token: Option<CreatorToken>,
    creator_roster: Arc<Roster>,
    joiner_roster: Option<Roster>,
    expires_at: Instant,
    /// What this pairing counts against `max_pending_bytes`.
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    pairings: HashMap<PairCode, Pairing>,
    /// The pairings' counts, bytes and deadlines.
    quota: Quota<PairCode>,
}

/// The relay's pairings, shared by all connections.
pub struct Store {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
}

impl Store {
    /// An empty store. A TTL over [`MAX_TTL`] is cut to it.
    pub fn new(mut config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        config.ttl = config.ttl.min(MAX_TTL);
        Store {
            inner: Mutex::new(Inner::default()),
            clock,
            config,
        }
    }

    /// How many pairings are pending (created or joined, not yet collected nor expired).
    pub fn pending(&self) -> usize {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner.pairings.len()
    }

    /// Removes every expired pairing.
    pub fn sweep_expired(&self) {
        let mut inner = self.lock();
        self.sweep(&mut inner);
    }

    /// Stores a creator's roster under a new code, without a creator token (as for
    /// Jailrun's clients): anyone holding the code can poll.
    pub fn create(&self, creator: IpAddr, roster: Roster) -> Result<PairCode, StoreError> {
        self.create_with(creator, roster, false).map(|c| c.code)
    }

    /// Stores a creator's roster under a new code; with `token`, also draws the creator
    /// token without which the pairing cannot be polled.
    pub fn create_with(
        &self,
        creator: IpAddr,
        roster: Roster,
        token: bool,
    ) -> Result<Created, StoreError> {
        let token = if token {
            Some(CreatorToken::random().map_err(|_| StoreError::Rng)?)
        } else {
            None
        };
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let bytes = PAIRING_BYTES + roster_bytes(&roster);
        inner
            .quota
            .admit(&self.config, inner.pairings.len(), creator, bytes)?;
        // Collisions are astronomically rare, but a live code is never handed out twice.
        let code = loop {
            let code = draw_code().map_err(|_| StoreError::Rng)?;
            if !inner.pairings.contains_key(&code) {
                break code;
            }
        };
        let expires_at = self.clock.now() + self.config.ttl;
        inner.pairings.insert(
            code.clone(),
            Pairing {
                creator,
                token: token.clone(),
                creator_roster: Arc::new(roster),
                joiner_roster: None,
                expires_at,
                bytes,
            },
        );
        inner.quota.add(creator, bytes, code.clone(), expires_at);
        Ok(Created { code, token })
    }

    /// A poll without a creator token (see [`Store::poll_with`]).
    pub fn poll(&self, code: &PairCode) -> Option<PollStatus> {
        self.poll_with(code, None)
    }

    /// The creator's poll: waiting, or the joiner's roster — which deletes the pairing.
    /// `None` when there is no such pairing, or when it was created with a token and
    /// `token` is not that one (the pairing is then left as it was).
    pub fn poll_with(&self, code: &PairCode, token: Option<&CreatorToken>) -> Option<PollStatus> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let pairing = inner.pairings.get(code)?;
        if !authorized(pairing, token) {
            return None;
        }
        let joined = pairing.joiner_roster.is_some();
        if !joined {
            return Some(PollStatus::Waiting);
        }
        let pairing = remove(&mut inner, code)?;
        Some(PollStatus::Joined(
            pairing.joiner_roster.expect("checked above"),
        ))
    }

    /// Whether `code` is a pending pairing created with exactly this creator token.
    pub fn holds_token(&self, code: &PairCode, token: &CreatorToken) -> bool {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        inner
            .pairings
            .get(code)
            .is_some_and(|p| p.token.as_ref() == Some(token))
    }

    /// The joiner's post: stores its roster and answers with the creator's. Once only.
    pub fn join(&self, code: &PairCode, roster: Roster) -> Result<Arc<Roster>, JoinError> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let expires_at = self.clock.now() + self.config.ttl;
        let Inner { pairings, quota } = &mut *inner;
        let pairing = pairings.get_mut(code).ok_or(JoinError::NotFound)?;
        if pairing.joiner_roster.is_some() {
            return Err(JoinError::AlreadyJoined);
        }
        let bytes = roster_bytes(&roster);
        if !quota.fits(&self.config, bytes) {
            return Err(JoinError::Full);
        }
        pairing.joiner_roster = Some(roster);
        pairing.bytes += bytes;
        // The creator gets a full TTL to collect, counted from the join.
        pairing.expires_at = expires_at;
        let creator_roster = Arc::clone(&pairing.creator_roster);
        quota.grow(bytes);
        quota.due(code.clone(), expires_at);
        Ok(creator_roster)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than refusing all service, so carry on with the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, inner: &mut Inner) {
        let now = self.clock.now();
        while let Some((deadline, code)) = inner.quota.pop_expired(now) {
            let current = inner.pairings.get(&code).map(|p| p.expires_at);
            if current == Some(deadline) {
                remove(inner, &code);
            }
        }
    }
}

/// What a pairing costs besides its rosters: the map entry, its code, a deadline entry.
const PAIRING_BYTES: usize =
    size_of::<(PairCode, Pairing)>() + size_of::<(Instant, PairCode)>() + 2 * 64;

/// The heap a roster takes, as counted against `max_pending_bytes`: its entries and their
/// names (a serialised answer is made from it per request and not kept).
pub(crate) fn roster_bytes(roster: &Roster) -> usize {
    size_of::<Roster>()
        + roster
            .jails
            .iter()
            .map(|j| size_of::<RosterJail>() + j.name.as_str().len())
            .sum::<usize>()
}

/// Whether a poll presenting `token` may see `pairing`: always for a pairing made without
/// a token (Jailrun's clients send none), else only with that very token.
fn authorized(pairing: &Pairing, token: Option<&CreatorToken>) -> bool {
    match &pairing.token {
        None => true,
        Some(expected) => token == Some(expected),
    }
}

fn remove(inner: &mut Inner, code: &PairCode) -> Option<Pairing> {
    let pairing = inner.pairings.remove(code)?;
    inner.quota.release(pairing.creator, pairing.bytes);
    Some(pairing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use jrun_mesh::protocol::RosterJail;
    use std::time::Duration;

    fn roster(name: &str) -> Roster {
        Roster {
            jails: vec![RosterJail {
                name: name.parse::<String>().unwrap().try_into().unwrap(),
                ygg_address: "200::1".parse().unwrap(),
            }],
        }
    }

    fn store(config: RelayConfig) -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (Store::new(config, clock.clone()), clock)
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn lifecycle() {
        let (s, _) = store(RelayConfig::default());
        let code = s.create(A, roster("a")).unwrap();
        assert_eq!(s.poll(&code), Some(PollStatus::Waiting));
        assert_eq!(
            s.join(&code, roster("b")).unwrap().jails[0].name.as_str(),
            "a"
        );
        assert_eq!(s.join(&code, roster("c")), Err(JoinError::AlreadyJoined));
        assert_eq!(s.poll(&code), Some(PollStatus::Joined(roster("b"))));
        assert_eq!(s.poll(&code), None);
        assert_eq!(s.join(&code, roster("c")), Err(JoinError::NotFound));
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn expiry_of_unjoined_and_uncollected_pairings() {
        let (s, clock) = store(RelayConfig::default());
        let unjoined = s.create(A, roster("a")).unwrap();
        clock.advance(Duration::from_secs(300));
        let joined = s.create(A, roster("a")).unwrap();
        s.join(&joined, roster("b")).unwrap();
        clock.advance(Duration::from_secs(300));
        // The first one's ten minutes are up; the second was joined five minutes ago.
        assert_eq!(s.poll(&unjoined), None);
        assert_eq!(s.join(&unjoined, roster("b")), Err(JoinError::NotFound));
        assert_eq!(s.pending(), 1);
        clock.advance(Duration::from_secs(299));
        assert_eq!(s.pending(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.poll(&joined), None);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn limits_pending_pairings() {
        let config = RelayConfig {
            max_pending: 3,
            max_pending_per_client: 2,
            ..RelayConfig::default()
        };
        let (s, clock) = store(config);
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = s.create(A, roster("a")).unwrap();
        s.create(A, roster("a")).unwrap();
        assert_eq!(s.create(A, roster("a")), Err(StoreError::ClientFull));
        s.create(b, roster("a")).unwrap();
        assert_eq!(s.create(b, roster("a")), Err(StoreError::Full));
        // Collecting one frees a place for its creator.
        s.join(&first, roster("b")).unwrap();
        s.poll(&first).unwrap();
        s.create(A, roster("a")).unwrap();
        // Expiry frees everything.
        clock.advance(Duration::from_secs(600));
        assert_eq!(s.pending(), 0);
        s.create(A, roster("a")).unwrap();
        s.create(A, roster("a")).unwrap();
    }

    #[test]
    fn pending_pairings_per_ipv6_48() {
        let config = RelayConfig {
            max_pending_per_client: 2,
            max_pending_per_network: 3,
            ..RelayConfig::default()
        };
        let (s, _) = store(config);
        // Three /64s of one /48 (as the API hands them over), then another /48.
        let c = |t: &str| t.parse::<IpAddr>().unwrap();
        s.create(c("2001:db8:1:1::"), roster("a")).unwrap();
        s.create(c("2001:db8:1:2::"), roster("a")).unwrap();
        let third = s.create(c("2001:db8:1:3::"), roster("a")).unwrap();
        assert_eq!(
            s.create(c("2001:db8:1:4::"), roster("a")),
            Err(StoreError::ClientFull)
        );
        s.create(c("2001:db8:2:1::"), roster("a")).unwrap();
        // Collecting one frees a place in its /48.
        s.join(&third, roster("b")).unwrap();
        s.poll(&third).unwrap();
        s.create(c("2001:db8:1:4::"), roster("a")).unwrap();
    }

    #[test]
    fn pending_pairings_per_ipv4_24() {
        let config = RelayConfig {
            max_pending_per_client: 2,
            max_pending_per_network: 3,
            ..RelayConfig::default()
        };
        let (s, _) = store(config);
        let c = |t: &str| t.parse::<IpAddr>().unwrap();
        s.create(c("192.0.2.1"), roster("a")).unwrap();
        s.create(c("192.0.2.2"), roster("a")).unwrap();
        let third = s.create(c("192.0.2.3"), roster("a")).unwrap();
        // A fourth address of the /24 has its own allowance, but the network has none.
        assert_eq!(
            s.create(c("192.0.2.4"), roster("a")),
            Err(StoreError::ClientFull)
        );
        s.create(c("192.0.3.1"), roster("a")).unwrap();
        s.join(&third, roster("b")).unwrap();
        s.poll(&third).unwrap();
        s.create(c("192.0.2.4"), roster("a")).unwrap();
    }

    #[test]
    fn collect_without_creator_token_is_refused() {
        let (s, _) = store(RelayConfig::default());
        let created = s.create_with(A, roster("a"), true).unwrap();
        let token = created.token.clone().unwrap();
        let code = &created.code;
        let other = CreatorToken::random().unwrap();
        // Waiting: invisible without the token.
        assert_eq!(s.poll(code), None);
        assert_eq!(s.poll_with(code, Some(&other)), None);
        assert_eq!(s.poll_with(code, Some(&token)), Some(PollStatus::Waiting));
        assert!(s.holds_token(code, &token) && !s.holds_token(code, &other));
        s.join(code, roster("b")).unwrap();
        // Joined: a stranger's collect neither gets the roster nor deletes the pairing.
        assert_eq!(s.poll(code), None);
        assert_eq!(s.poll_with(code, Some(&other)), None);
        assert_eq!(s.pending(), 1);
        assert_eq!(
            s.poll_with(code, Some(&token)),
            Some(PollStatus::Joined(roster("b")))
        );
        assert_eq!(s.poll_with(code, Some(&token)), None);
        assert!(!s.holds_token(code, &token));
        // A pairing made without a token is polled as Jailrun's clients do, token or not.
        let open = s.create(A, roster("a")).unwrap();
        assert_eq!(s.poll(&open), Some(PollStatus::Waiting));
        assert_eq!(s.poll_with(&open, Some(&other)), Some(PollStatus::Waiting));
    }

    fn big_roster(jails: usize) -> Roster {
        Roster {
            jails: (0..jails)
                .map(|i| RosterJail {
                    name: format!("{}{i}", "j".repeat(50)).try_into().unwrap(),
                    ygg_address: "200::1".parse().unwrap(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_rosters_memory_is_budgeted() {
        let big = big_roster(256);
        let one = PAIRING_BYTES + roster_bytes(&big);
        let config = RelayConfig {
            max_pending_bytes: 3 * one,
            max_pending_per_client: usize::MAX,
            ..RelayConfig::default()
        };
        let (s, clock) = store(config);
        let first = s.create(A, big.clone()).unwrap();
        let second = s.create(A, big.clone()).unwrap();
        s.create(A, roster("a")).unwrap();
        // A third big one does not fit, nor does a big joiner roster.
        assert_eq!(s.create(A, big.clone()), Err(StoreError::Full));
        assert_eq!(s.join(&first, big.clone()), Err(JoinError::Full));
        // A small join fits; the pairing stays joinable after a refused join.
        s.join(&second, roster("b")).unwrap();
        assert_eq!(s.poll(&first), Some(PollStatus::Waiting));
        // Collecting frees its bytes.
        s.poll(&second).unwrap();
        s.join(&first, big.clone()).unwrap();
        s.poll(&first).unwrap();
        s.create(A, big.clone()).unwrap();
        s.create(A, big.clone()).unwrap();
        // Expiry frees everything.
        clock.advance(Duration::from_secs(600));
        assert_eq!(s.pending(), 0);
        assert_eq!(s.lock().quota.bytes(), 0);
    }

    #[test]
    fn a_huge_ttl_is_cut_to_a_day() {
        let config = RelayConfig {
            ttl: Duration::MAX,
            ..RelayConfig::default()
        };
        let (s, clock) = store(config);
        let code = s.create(A, roster("a")).unwrap();
        s.join(&code, roster("b")).unwrap();
        clock.advance(MAX_TTL);
        assert_eq!(s.poll(&code), None);
    }
}
