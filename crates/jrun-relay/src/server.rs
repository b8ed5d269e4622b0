//! Serving the API: our own accept loop, so that slow clients time out, connections are
//! capped, and shutdown lets requests in flight finish.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::api::{self, AppState};
use crate::clock::{Clock, SystemClock};
use crate::rate_limit::RateLimiter;
use crate::store::Store;
use crate::RelayConfig;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A relay: its pairings and its HTTP API.
#[derive(Clone)]
pub struct Relay {
    state: Arc<AppState>,
}

impl Relay {
    /// A relay on the system clock.
    pub fn new(config: RelayConfig) -> Self {
        Relay::with_clock(config, Arc::new(SystemClock))
    }

    /// A relay on the given clock (tests move time by hand).
    pub fn with_clock(config: RelayConfig, clock: Arc<dyn Clock>) -> Self {
        let limiter = RateLimiter::new(config.rate_per_second, config.rate_burst, clock.clone());
        let store = Store::new(config.clone(), clock);
        Relay {
            state: Arc::new(AppState {
                config,
                store,
                limiter,
            }),
        }
    }

    /// The pairings (for tests and metrics).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The HTTP routes; requests need a `ConnectInfo<SocketAddr>` extension to be told apart
    /// by client (without one they all count as one client).
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then drains requests in flight.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let router = self.router();
        let config = &self.state.config;
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let per_client = Arc::new(ConnectionCounts::default());
        let graceful = GracefulShutdown::new();
        let sweeper = tokio::spawn(sweep_forever(self.state.clone()));
        tokio::pin!(shutdown);
        info!(addr = %listener.local_addr()?, "relay listening");
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit.expect("semaphore never closes"),
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Behind a local proxy every connection comes from loopback: the proxy is one
            // peer, not one client, so only the total cap applies to it.
            let counted = !(config.behind_proxy && peer.ip().is_loopback());
            let held = if counted {
                let client = api::client_key(peer.ip());
                match per_client.enter(client, config.max_connections_per_client) {
                    Some(held) => Some(held),
                    None => {
                        debug!(%peer, "too many connections from this client; closed");
                        continue;
                    }
                }
            } else {
                None
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.read_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
                drop(held);
            });
        }
        sweeper.abort();
        drop(listener);
        info!("relay shutting down; draining requests in flight");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
        }
        Ok(())
    }
}

/// Open connections per client (IPv4 address or IPv6 /64).
#[derive(Default)]
struct ConnectionCounts(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; dropping it frees the client's place.
struct Held {
    counts: Arc<ConnectionCounts>,
    client: IpAddr,
}

impl ConnectionCounts {
    /// Counts a connection of `client`, unless it holds `max` already.
    fn enter(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Held> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(client).or_default();
        if *n >= max.max(1) {
            if *n == 0 {
                map.remove(&client);
            }
            return None;
        }
        *n += 1;
        Some(Held {
            counts: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Frees expired pairings even when no request comes to do it.
async fn sweep_forever(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.store.sweep_expired();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_client_and_freed_on_drop() {
        let counts = Arc::new(ConnectionCounts::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.enter(a, 2).unwrap();
        let _second = counts.enter(a, 2).unwrap();
        assert!(counts.enter(a, 2).is_none());
        let _other = counts.enter(b, 2).unwrap();
        drop(first);
        let _third = counts.enter(a, 2).unwrap();
        drop((_second, _third, _other));
        assert!(counts.0.lock().unwrap().is_empty());
    }
}
