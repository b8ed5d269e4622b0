//! Requests per client and per network: a token bucket per key, in bounded memory; and
//! the relay-wide budget of failed code lookups.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// More than this many tracked addresses triggers dropping the idle ones.
const PRUNE_ABOVE: usize = 10_000;

/// The slowest rate a limiter uses (one request a day); a slower, zero, negative or NaN
/// rate is taken as this one. `jrun relay` refuses such rates before they get here.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per client address.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    /// The size at which idle buckets are dropped next; it doubles with the live ones so
    /// that pruning stays amortised O(1) per request even when many clients are active.
    prune_at: usize,
}

impl RateLimiter {
    /// `rate` requests per second on average (at least [`MIN_RATE`]), `burst` at once.
    pub fn new(rate: f64, burst: u32, clock: Arc<dyn Clock>) -> Self {
        // `f64::max` ignores a NaN operand, so NaN becomes MIN_RATE too.
        RateLimiter {
            rate: rate.max(MIN_RATE),
            burst: f64::from(burst.max(1)),
            clock,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_ABOVE,
            }),
        }
    }

    /// Takes one request from `client`'s allowance; `Err(wait)` when it has none left.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.map.len() > buckets.prune_at {
            // An address whose bucket refilled is indistinguishable from a new one.
            let full_after = seconds(self.burst / self.rate);
            buckets
                .map
                .retain(|_, b| now.duration_since(b.last) < full_after);
            buckets.prune_at = PRUNE_ABOVE.max(2 * buckets.map.len());
        }
        let bucket = buckets.map.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(seconds((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// The unit per-client limits count: an IPv4 address, or the /64 of an IPv6 address (one
/// host commonly holds a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

/// The unit per-network limits count: an IPv4 /24, or an IPv6 /48 (one site commonly
/// holds a /48, that is 65,536 /64s).
pub(crate) fn network_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
    }
}

/// A request's allowance: its client's bucket and its network's.
pub struct RequestLimits {
    clients: RateLimiter,
    networks: RateLimiter,
}

impl RequestLimits {
    /// Per-client and per-network rates (per second) and bursts.
    pub fn new(
        (client_rate, client_burst): (f64, u32),
        (network_rate, network_burst): (f64, u32),
        clock: Arc<dyn Clock>,
    ) -> Self {
        RequestLimits {
            clients: RateLimiter::new(client_rate, client_burst, clock.clone()),
            networks: RateLimiter::new(network_rate, network_burst, clock),
        }
    }

    /// Takes one request from `ip`'s client allowance and its network's; `Err(wait)` when
    /// either has none left.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.clients.check(client_key(ip))?;
        self.networks.check(network_key(ip))
    }
}

/// The relay-wide budget of failed code lookups: a token bucket holding a minute's worth,
/// refilled continuously. A lookup takes a token before it looks; a lookup that found its
/// pairing gives it back, so only failures spend the budget.
pub struct LookupBudget {
    per_second: f64,
    capacity: f64,
    clock: Arc<dyn Clock>,
    state: Mutex<Bucket>,
}

impl LookupBudget {
    /// `per_minute` failed lookups (at least one).
    pub fn new(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        let capacity = f64::from(per_minute.max(1));
        let now = clock.now();
        LookupBudget {
            per_second: capacity / 60.0,
            capacity,
            clock,
            state: Mutex::new(Bucket {
                tokens: capacity,
                last: now,
            }),
        }
    }

    /// Takes a token for a lookup; `Err(wait)` when the budget is spent.
    pub fn take(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(seconds((1.0 - b.tokens) / self.per_second))
        }
    }

    /// Gives back the token of a lookup that found its pairing.
    pub fn refund(&self) {
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        b.tokens = (b.tokens + 1.0).min(self.capacity);
    }
}

/// A positive number of seconds as a duration, saturating instead of panicking.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn bursts_then_refills_per_address() {
        let clock = Arc::new(ManualClock::new());
        let rl = RateLimiter::new(2.0, 3, clock.clone());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            rl.check(a).unwrap();
        }
        let wait = rl.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        rl.check(b).unwrap();
        clock.advance(Duration::from_millis(500));
        rl.check(a).unwrap();
        assert!(rl.check(a).is_err());
    }

    #[test]
    fn zero_tiny_and_nan_rates_do_not_panic() {
        for rate in [0.0, -1.0, 1e-300, f64::NAN] {
            let clock = Arc::new(ManualClock::new());
            let rl = RateLimiter::new(rate, 1, clock.clone());
            let a: IpAddr = "127.0.0.1".parse().unwrap();
            rl.check(a).unwrap();
            let wait = rl.check(a).unwrap_err();
            assert!(wait <= Duration::from_secs(86_400), "{rate}: {wait:?}");
            // Pruning computes the refill time too.
            for i in 0..=PRUNE_ABOVE as u32 + 1 {
                let _ = rl.check(IpAddr::from(i.to_be_bytes()));
            }
        }
    }

    fn limits(clock: &Arc<ManualClock>) -> RequestLimits {
        // 1 request/s with a burst of 3 per client, 2/s with a burst of 5 per network.
        RequestLimits::new((1.0, 3), (2.0, 5), clock.clone())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_the_ipv4_address_and_24_the_ipv6_64_and_48() {
        let key = |s: &str| client_key(ip(s)).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::ffff"), "2001:db8:1:2::");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        let net = |s: &str| network_key(ip(s)).to_string();
        assert_eq!(net("192.0.2.7"), "192.0.2.0");
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.0");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1::");
        assert_eq!(net("2001:db8:1:ffff::1"), "2001:db8:1::");
    }

    #[test]
    fn requests_are_limited_per_ipv4_address() {
        let clock = Arc::new(ManualClock::new());
        let l = limits(&clock);
        for _ in 0..3 {
            l.check(ip("192.0.2.1")).unwrap();
        }
        assert!(l.check(ip("192.0.2.1")).is_err());
        // Its neighbour has its own bucket (and the /24 has two requests left).
        l.check(ip("192.0.2.2")).unwrap();
    }

    #[test]
    fn requests_are_limited_per_ipv4_24() {
        let clock = Arc::new(ManualClock::new());
        let l = limits(&clock);
        // Five addresses of one /24 spend the network's burst of five between them.
        for i in 1..=5 {
            l.check(ip(&format!("192.0.2.{i}"))).unwrap();
        }
        let wait = l.check(ip("192.0.2.200")).unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        // Another /24 is not touched; time refills the network.
        l.check(ip("192.0.3.1")).unwrap();
        clock.advance(Duration::from_millis(500));
        l.check(ip("192.0.2.200")).unwrap();
    }

    #[test]
    fn requests_are_limited_per_ipv6_64() {
        let clock = Arc::new(ManualClock::new());
        let l = limits(&clock);
        // Every address of one /64 is one client.
        for host in ["::1", "::2", "::3"] {
            l.check(ip(&format!("2001:db8:1:1{host}"))).unwrap();
        }
        assert!(l.check(ip("2001:db8:1:1::4")).is_err());
        l.check(ip("2001:db8:1:2::1")).unwrap();
    }

    #[test]
    fn requests_are_limited_per_ipv6_48() {
        let clock = Arc::new(ManualClock::new());
        let l = limits(&clock);
        for i in 1..=5 {
            l.check(ip(&format!("2001:db8:1:{i}::1"))).unwrap();
        }
        // A sixth /64 of the same /48 has a full client bucket but no network allowance.
        assert!(l.check(ip("2001:db8:1:6::1")).is_err());
        l.check(ip("2001:db8:2:1::1")).unwrap();
    }

    #[test]
    fn failed_lookups_have_a_global_budget_per_minute() {
        let clock = Arc::new(ManualClock::new());
        let budget = LookupBudget::new(60, clock.clone());
        for _ in 0..60 {
            budget.take().unwrap();
        }
        let wait = budget.take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Lookups that found their pairing give their token back.
        budget.refund();
        budget.take().unwrap();
        assert!(budget.take().is_err());
        // It refills at a minute's worth per minute, and holds no more than that.
        clock.advance(Duration::from_secs(1));
        budget.take().unwrap();
        assert!(budget.take().is_err());
        clock.advance(Duration::from_secs(3600));
        for _ in 0..60 {
            budget.take().unwrap();
        }
        assert!(budget.take().is_err());
        // Refunds never lift it above its capacity.
        clock.advance(Duration::from_secs(60));
        for _ in 0..10 {
            budget.refund();
        }
        for _ in 0..60 {
            budget.take().unwrap();
        }
        assert!(budget.take().is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let clock = Arc::new(ManualClock::new());
        let rl = RateLimiter::new(10.0, 10, clock.clone());
        for i in 0..=PRUNE_ABOVE as u32 {
            rl.check(IpAddr::from(i.to_be_bytes())).unwrap();
        }
        clock.advance(Duration::from_secs(2));
        rl.check("10.0.0.1".parse().unwrap()).unwrap();
        let buckets = rl.buckets.lock().unwrap();
        assert_eq!(buckets.map.len(), 1);
    }
}
