//! jrun's pairing relay server (`jrun relay`): the v1 HTTP protocol of DESIGN §5 and
//! pairing v2's nameplates (docs/pairing.md), with
//! bounded memory, per-client limits and strict validation of every roster, and
//! optionally a supervised Yggdrasil node that instances peer with.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use jrun_relay::{Relay, RelayConfig};
//! let relay = Relay::new(RelayConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! relay.serve(listener, std::future::pending()).await
//! # }
//! ```

mod api;
mod api_error;
pub mod clock;
mod code;
mod config;
pub mod mailbox;
mod quota;
mod rate_limit;
mod server;
mod store;
pub mod ygg_node;

pub use clock::{Clock, ManualClock, SystemClock};
pub use code::{draw_code, words};
pub use config::{RelayConfig, MAX_TTL};
pub use server::Relay;
pub use store::{JoinError, Store, StoreError};
