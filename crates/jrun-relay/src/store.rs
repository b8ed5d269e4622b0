//! The pending pairings: created, joined once, collected once, then gone; expired ones are
//! swept. Memory stays bounded by `max_pending` pairings of bounded rosters.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jrun_mesh::protocol::{PollStatus, Roster};
use jrun_mesh::PairCode;

use crate::clock::Clock;
use crate::code::draw_code;
use crate::RelayConfig;

/// Why a pairing could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The relay holds as many pending pairings as it allows.
    #[error("the relay has too many pending pairings; try again in a few minutes")]
    Full,
    /// This client address has as many pending pairings as it may.
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
}

struct Pairing {
    creator: IpAddr,
    creator_roster: Arc<Roster>,
    joiner_roster: Option<Roster>,
    expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    pairings: HashMap<PairCode, Pairing>,
    pending_by_client: HashMap<IpAddr, usize>,
    /// Deadlines in the order they were set (the TTL is fixed, so this order is also their
    /// time order); an entry may be stale if the pairing left or got a later deadline.
    deadlines: VecDeque<(Instant, PairCode)>,
}

/// The relay's pairings, shared by all connections.
pub struct Store {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
}

impl Store {
    /// An empty store.
    pub fn new(config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
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

    /// Stores a creator's roster under a new code.
    pub fn create(&self, creator: IpAddr, roster: Roster) -> Result<PairCode, StoreError> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        if inner.pairings.len() >= self.config.max_pending {
            return Err(StoreError::Full);
        }
        let mine = inner.pending_by_client.get(&creator).copied().unwrap_or(0);
        if mine >= self.config.max_pending_per_client {
            return Err(StoreError::ClientFull);
        }
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
                creator_roster: Arc::new(roster),
                joiner_roster: None,
                expires_at,
            },
        );
        *inner.pending_by_client.entry(creator).or_default() += 1;
        inner.deadlines.push_back((expires_at, code.clone()));
        Ok(code)
    }

    /// The creator's poll: waiting, or the joiner's roster — which deletes the pairing.
    /// `None` when there is no such pairing.
    pub fn poll(&self, code: &PairCode) -> Option<PollStatus> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let joined = inner.pairings.get(code)?.joiner_roster.is_some();
        if !joined {
            return Some(PollStatus::Waiting);
        }
        let pairing = remove(&mut inner, code)?;
        Some(PollStatus::Joined(
            pairing.joiner_roster.expect("checked above"),
        ))
    }

    /// The joiner's post: stores its roster and answers with the creator's. Once only.
    pub fn join(&self, code: &PairCode, roster: Roster) -> Result<Arc<Roster>, JoinError> {
        let mut inner = self.lock();
        self.sweep(&mut inner);
        let expires_at = self.clock.now() + self.config.ttl;
        let pairing = inner.pairings.get_mut(code).ok_or(JoinError::NotFound)?;
        if pairing.joiner_roster.is_some() {
            return Err(JoinError::AlreadyJoined);
        }
        pairing.joiner_roster = Some(roster);
        // The creator gets a full TTL to collect, counted from the join.
        pairing.expires_at = expires_at;
        let creator_roster = Arc::clone(&pairing.creator_roster);
        inner.deadlines.push_back((expires_at, code.clone()));
        Ok(creator_roster)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than refusing all service, so carry on with the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, inner: &mut Inner) {
        let now = self.clock.now();
        while let Some((deadline, _)) = inner.deadlines.front() {
            if *deadline > now {
                break;
            }
            let (deadline, code) = inner.deadlines.pop_front().expect("front exists");
            let current = inner.pairings.get(&code).map(|p| p.expires_at);
            if current == Some(deadline) {
                remove(inner, &code);
            }
        }
    }
}

fn remove(inner: &mut Inner, code: &PairCode) -> Option<Pairing> {
    let pairing = inner.pairings.remove(code)?;
    if let Some(n) = inner.pending_by_client.get_mut(&pairing.creator) {
        *n -= 1;
        if *n == 0 {
            inner.pending_by_client.remove(&pairing.creator);
        }
    }
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
}
