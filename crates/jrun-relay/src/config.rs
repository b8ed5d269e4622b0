//! The relay's limits: each a `jrun relay` flag with a sane default.

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
    /// The most pairings pending at once created from one client address (more: 429).
    pub max_pending_per_client: usize,
    /// The most pairings pending at once created from one IPv6 /48 (more: 429): one site
    /// commonly holds a /48, that is 65,536 client /64s.
    pub max_pending_per_network: usize,
    /// Requests per second one client address may make, on average (more: 429).
    pub rate_per_second: f64,
    /// How many requests a client address may make in a burst.
    pub rate_burst: u32,
    /// How long a client may take to send its request headers, and then its body.
    pub read_timeout: Duration,
    /// The most connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// The most connections one client address (IPv6: its /64) may hold open at once;
    /// further ones are closed as soon as they are accepted.
    pub max_connections_per_client: usize,
    /// Behind a reverse proxy on the same machine: for connections from loopback, the
    /// client is the last address of `X-Forwarded-For` (limits apply per real client).
    pub behind_proxy: bool,
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
            read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_client: 64,
            behind_proxy: false,
        }
    }
}
