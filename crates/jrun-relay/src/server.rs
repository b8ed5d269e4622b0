//! Serving the API: our own accept loop, so that slow clients time out, connections are
//! capped (in total, per client, per network) and recycled (after a number of requests or
//! a lifetime), and shutdown lets requests in flight finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::api::{self, AppState};
use crate::clock::{Clock, SystemClock};
use crate::mailbox::Mailboxes;
use crate::rate_limit::{client_key, network_key, LookupBudget, RequestLimits};
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
        let limits = RequestLimits::new(
            (config.rate_per_second, config.rate_burst),
            (config.network_rate_per_second, config.network_rate_burst),
            clock.clone(),
        );
        let lookups = LookupBudget::new(config.max_failed_lookups_per_minute, clock.clone());
        let store = Store::new(config.clone(), clock.clone());
        let mailboxes = Mailboxes::new(config.clone(), clock);
        Relay {
            state: Arc::new(AppState {
                config,
                store,
                mailboxes,
                limits,
                lookups,
            }),
        }
    }

    /// The pairings (for tests and metrics).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Pairing v2's nameplates (for tests and metrics).
    pub fn mailboxes(&self) -> &Mailboxes {
        &self.state.mailboxes
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
        let max_connections = config.max_connections.clamp(1, u32::MAX as usize);
        let slots = Arc::new(Semaphore::new(max_connections));
        let per_client = Arc::new(ConnectionCounts::default());
        let per_network = Arc::new(ConnectionCounts::default());
        let (stop, stopping) = watch::channel(false);
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
            // A trusted proxy is one peer carrying many clients, so only the total cap
            // applies to its connections (its clients' requests are limited one by one).
            let held = if config.is_trusted_proxy(peer.ip()) {
                None
            } else {
                let client =
                    per_client.enter(client_key(peer.ip()), config.max_connections_per_client);
                let network =
                    per_network.enter(network_key(peer.ip()), config.max_connections_per_network);
                match (client, network) {
                    (Some(c), Some(n)) => Some((c, n)),
                    _ => {
                        debug!(%peer, "too many connections from this client or network; closed");
                        continue;
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let served = Arc::new(AtomicUsize::new(0));
            let max_requests = config.max_requests_per_connection.max(1);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let last = served.fetch_add(1, Ordering::Relaxed) + 1 >= max_requests;
                let router = router.clone();
                async move {
                    let mut response = router.oneshot(req).await?;
                    if last {
                        // hyper closes the connection once this answer is written.
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.read_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let lifetime = config.max_connection_lifetime;
            let grace = config.read_timeout;
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                tokio::pin!(conn);
                let ended = tokio::select! {
                    ended = conn.as_mut() => Some(ended),
                    () = tokio::time::sleep(lifetime) => None,
                    _ = stopping.wait_for(|stop| *stop) => None,
                };
                let ended = match ended {
                    Some(ended) => ended,
                    None => {
                        // Closes an idle connection at once, a busy one after its answer;
                        // one that will not finish within the grace time is dropped.
                        conn.as_mut().graceful_shutdown();
                        tokio::time::timeout(grace, conn).await.unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = ended {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
                drop(held);
            });
        }
        sweeper.abort();
        drop(listener);
        info!("relay shutting down; draining requests in flight");
        let _ = stop.send(true);
        // Every connection holds a slot until it ends: all slots back means all drained.
        let drained = slots.acquire_many(max_connections as u32);
        if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
            warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
        }
        Ok(())
    }
}

/// Open connections per client (IPv4 address, IPv6 /64) or per network (IPv4 /24, IPv6 /48).
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
        state.mailboxes.pending();
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
