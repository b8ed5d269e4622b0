//! A relay served in-process on 127.0.0.1:0, stopped when the guard drops.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use jrun_relay::{ManualClock, Relay, RelayConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestRelay {
    pub addr: SocketAddr,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub relay: Relay,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestRelay {
    pub async fn start(config: RelayConfig) -> TestRelay {
        let clock = Arc::new(ManualClock::new());
        let relay = Relay::with_clock(config, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = relay.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        TestRelay {
            addr,
            url: format!("http://{addr}"),
            clock,
            relay,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and waits until the relay has shut down.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A config whose rate limits never get in the way of a test that is not about them.
pub fn relaxed() -> RelayConfig {
    RelayConfig {
        rate_per_second: 1e6,
        rate_burst: 1_000_000,
        network_rate_per_second: 1e6,
        network_rate_burst: 1_000_000,
        max_failed_lookups_per_minute: 1_000_000,
        max_requests_per_connection: 1_000_000,
        ..RelayConfig::default()
    }
}

pub fn roster_json(names: &[&str]) -> String {
    let jails: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#"{{"name":"{n}","ygg_address":"200::{:x}"}}"#, i + 1))
        .collect();
    format!(r#"{{"jails":[{}]}}"#, jails.join(","))
}
