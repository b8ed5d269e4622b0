//! Requests per client address: a token bucket per address, in bounded memory.

use std::collections::HashMap;
use std::net::IpAddr;
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
