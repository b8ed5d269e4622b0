//! The relay's limits: each a `jrun relay` flag with a sane default.

use std::net::IpAddr;
use std::time::Duration;

use jrun_mesh::protocol::MAX_ROSTER_JAILS;

/// The longest pairing TTL the store uses (a longer one is cut to this): a pairing is
/// meant to be joined within minutes, and an unbounded TTL would overflow the clock.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the relay allows. Every limit keeps memory bounded or slows an abuser down.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// How long a pairing waits to be joined, and then to be collected.
    pub ttl: Duration,
    /// The largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// The most jails in one roster (more: 400).
    pub max_roster_jails: usize,
    /// The most pairings pending at once in total (more: 503).
    pub max_pending: usize,
    /// The most bytes the pending pairings' rosters may take in total (more: 503). Rosters
    /// differ in size by a factor of a hundred, so a count alone does not bound memory.
    pub max_pending_bytes: usize,
    /// The most pairings pending at once created from one client: an IPv4 address or an
    /// IPv6 /64 (more: 429).
    pub max_pending_per_client: usize,
    /// The most pairings pending at once created from one network: an IPv4 /24 or an IPv6
    /// /48 (more: 429). One site commonly holds a /48, that is 65,536 client /64s.
    pub max_pending_per_network: usize,
    /// Requests per second one client (IPv4 address, IPv6 /64) may make, on average
    /// (more: 429). Every request counts, `/healthz` and unknown paths too.
    pub rate_per_second: f64,
    /// How many requests a client may make in a burst.
    pub rate_burst: u32,
    /// Requests per second one network (IPv4 /24, IPv6 /48) may make, on average (more:
    /// 429): what bounds an attacker who holds many addresses of one network.
    pub network_rate_per_second: f64,
    /// How many requests a network may make in a burst.
    pub network_rate_burst: u32,
    /// Failed code lookups (unknown, used or expired codes, wrong creator tokens) the
    /// whole relay answers per minute, from all clients together (a token bucket holding a
    /// minute's worth). Beyond it, every code lookup is answered 429 except a creator's
    /// poll with its token, so the chance of guessing a live code stays bounded however
    /// many addresses the guesser holds.
    pub max_failed_lookups_per_minute: u32,
    /// The most connections one network (IPv4 /24, IPv6 /48) may hold open at once.
    pub max_connections_per_network: usize,
    /// The most requests served on one connection; the last answer carries
    /// `Connection: close`.
    pub max_requests_per_connection: usize,
    /// The longest a connection stays open: then it is closed once its request in flight
    /// (if any) is answered.
    pub max_connection_lifetime: Duration,
    /// How long a client may take to send its request headers, and then its body.
    pub read_timeout: Duration,
    /// The most connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// The most connections one client address (IPv6: its /64) may hold open at once;
    /// further ones are closed as soon as they are accepted.
    pub max_connections_per_client: usize,
    /// Behind a reverse proxy: for connections from a trusted proxy (loopback, or the
    /// addresses in `trusted_proxies`), the client is the last address of
    /// `X-Forwarded-For` (limits apply per real client). Whoever can connect from a trusted
    /// address can name any client; the failed-lookup budget does not depend on it.
    pub behind_proxy: bool,
    /// With `behind_proxy`: the proxies' addresses. Empty: any loopback address.
    pub trusted_proxies: Vec<IpAddr>,
    /// The longest a pairing v2 request may wait for the peer's next message (`wait=`
    /// asks for less or up to this): a client cannot hold a connection longer.
    pub max_wait: Duration,
    /// The most pairing v2 requests waiting at once, relay-wide (more: a read is answered
    /// 503, a post at once without waiting). Each also holds one of its client's and
    /// network's connections (`max_connections_per_client`, `…_per_network`).
    pub max_parked: usize,
}

impl RelayConfig {
    /// Whether a connection from `peer` comes from a proxy whose `X-Forwarded-For` counts.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.behind_proxy
            && if self.trusted_proxies.is_empty() {
                peer.is_loopback()
            } else {
                self.trusted_proxies
                    .iter()
                    .any(|p| p.to_canonical() == peer)
            }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            ttl: Duration::from_secs(600),
            max_body_bytes: 16 * 1024,
            max_roster_jails: MAX_ROSTER_JAILS,
            max_pending: 10_000,
            max_pending_bytes: 64 * 1024 * 1024,
            max_pending_per_client: 32,
            max_pending_per_network: 256,
            rate_per_second: 10.0,
            rate_burst: 40,
            network_rate_per_second: 40.0,
            network_rate_burst: 160,
            max_failed_lookups_per_minute: 6000,
            read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_client: 64,
            max_connections_per_network: 256,
            max_requests_per_connection: 100,
            max_connection_lifetime: Duration::from_secs(60),
            behind_proxy: false,
            trusted_proxies: Vec::new(),
            max_wait: Duration::from_secs(jrun_mesh::pair_v2::RELAY_DEFAULT_MAX_WAIT_SECS),
            max_parked: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_loopback_or_the_named_ones_and_only_behind_a_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut c = RelayConfig::default();
        assert!(!c.is_trusted_proxy(ip("127.0.0.1")));
        c.behind_proxy = true;
        assert!(c.is_trusted_proxy(ip("127.0.0.1")));
        assert!(c.is_trusted_proxy(ip("::1")));
        assert!(c.is_trusted_proxy(ip("::ffff:127.0.0.1")));
        assert!(!c.is_trusted_proxy(ip("172.17.0.1")));
        c.trusted_proxies = vec![ip("172.17.0.1")];
        assert!(c.is_trusted_proxy(ip("172.17.0.1")));
        assert!(c.is_trusted_proxy(ip("::ffff:172.17.0.1")));
        // Once proxies are named, loopback is one only if named.
        assert!(!c.is_trusted_proxy(ip("127.0.0.1")));
    }
}
