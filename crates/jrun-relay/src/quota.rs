//! What the relay's pending entries — v1's pairings and v2's nameplates — hold of its limits:
//! how many each client and each network has, the bytes they keep, and when each expires.
//! Both kinds are bounded alike (`max_pending*`, `max_pending_bytes`, the TTL); only what an
//! entry is differs, so the counting lives here once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use crate::rate_limit::network_key;
use crate::store::StoreError;
use crate::RelayConfig;

/// The counts behind the limits, for entries keyed by `K`.
pub(crate) struct Quota<K> {
    by_client: HashMap<IpAddr, usize>,
    /// Per network (IPv4 /24, IPv6 /48).
    by_network: HashMap<IpAddr, usize>,
    /// The sum of the live entries' bytes.
    bytes: usize,
    /// Deadlines in the order they were set (the TTL is fixed, so this order is also their
    /// time order); an entry may be stale if its key left or got a later deadline.
    deadlines: VecDeque<(Instant, K)>,
}

impl<K> Default for Quota<K> {
    fn default() -> Self {
        Quota {
            by_client: HashMap::new(),
            by_network: HashMap::new(),
            bytes: 0,
            deadlines: VecDeque::new(),
        }
    }
}

impl<K> Quota<K> {
    /// Whether one more entry from `creator`, keeping `bytes`, fits beside the `live`
    /// ones: in total, per client, per network, in bytes.
    pub fn admit(
        &self,
        config: &RelayConfig,
        live: usize,
        creator: IpAddr,
        bytes: usize,
    ) -> Result<(), StoreError> {
        let count = |map: &HashMap<IpAddr, usize>, key| map.get(&key).copied().unwrap_or(0);
        if live >= config.max_pending {
            Err(StoreError::Full)
        } else if count(&self.by_client, creator) >= config.max_pending_per_client
            || count(&self.by_network, network_key(creator)) >= config.max_pending_per_network
        {
            Err(StoreError::ClientFull)
        } else if !self.fits(config, bytes) {
            Err(StoreError::Full)
        } else {
            Ok(())
        }
    }

    /// Whether `bytes` more fit in `max_pending_bytes`.
    pub fn fits(&self, config: &RelayConfig, bytes: usize) -> bool {
        self.bytes.saturating_add(bytes) <= config.max_pending_bytes
    }

    /// Counts a new entry of `creator` keeping `bytes`, due at `expires_at`.
    pub fn add(&mut self, creator: IpAddr, bytes: usize, key: K, expires_at: Instant) {
        *self.by_client.entry(creator).or_default() += 1;
        *self.by_network.entry(network_key(creator)).or_default() += 1;
        self.grow(bytes);
        self.due(key, expires_at);
    }

    /// An entry keeps `bytes` more.
    pub fn grow(&mut self, bytes: usize) {
        self.bytes += bytes;
    }

    /// An entry is due at `expires_at` now (later than any deadline set before).
    pub fn due(&mut self, key: K, expires_at: Instant) {
        self.deadlines.push_back((expires_at, key));
    }

    /// An entry of `creator` that kept `bytes` is gone.
    pub fn release(&mut self, creator: IpAddr, bytes: usize) {
        self.bytes -= bytes;
        for (map, key) in [
            (&mut self.by_client, creator),
            (&mut self.by_network, network_key(creator)),
        ] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    /// The next deadline that passed by `now`, with its key; the caller removes the entry
    /// only if this is still its deadline.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.deadlines.front() {
            Some((deadline, _)) if *deadline <= now => self.deadlines.pop_front(),
            _ => None,
        }
    }

    /// The live entries' bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_per_client_and_network_and_forgets_empty_keys() {
        let config = RelayConfig {
            max_pending: 10,
            max_pending_per_client: 2,
            max_pending_per_network: 3,
            max_pending_bytes: 100,
            ..RelayConfig::default()
        };
        let (a, b, c) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        let now = Instant::now();
        let mut q = Quota::default();
        q.add(a, 10, 1, now);
        q.add(a, 10, 2, now);
        assert_eq!(q.admit(&config, 2, a, 1), Err(StoreError::ClientFull));
        q.add(b, 10, 3, now);
        // a's /24 is full, another network is not.
        assert_eq!(q.admit(&config, 3, b, 1), Err(StoreError::ClientFull));
        assert_eq!(q.admit(&config, 3, c, 1), Ok(()));
        assert_eq!(q.admit(&config, 10, c, 1), Err(StoreError::Full));
        assert_eq!(q.admit(&config, 3, c, 71), Err(StoreError::Full));
        q.release(a, 10);
        q.release(a, 10);
        q.release(b, 10);
        assert_eq!(q.bytes(), 0);
        assert!(q.by_client.is_empty() && q.by_network.is_empty());
    }

    #[test]
    fn deadlines_come_out_once_passed_in_the_order_set() {
        let t = Instant::now();
        let mut q = Quota::default();
        q.due("x", t + Duration::from_secs(1));
        q.due("y", t + Duration::from_secs(2));
        assert_eq!(q.pop_expired(t), None);
        assert_eq!(q.pop_expired(t + Duration::from_secs(2)).unwrap().1, "x");
        assert_eq!(q.pop_expired(t + Duration::from_secs(2)).unwrap().1, "y");
        assert_eq!(q.pop_expired(t + Duration::from_secs(9)), None);
    }
}
