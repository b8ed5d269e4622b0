//! The mesh side of jrun: who a jail is on the Yggdrasil network, and how two jrun
//! instances exchange their rosters through a relay.
//!
//! Everything that arrives from a peer or the relay passes through the validated types
//! of this crate ([`DnsLabel`], [`YggAddress`]) before it reaches a firewall rule or a
//! DNS record.

#[cfg(feature = "client")]
mod client;
mod fingerprint;
pub mod fsutil;
mod identity;
mod key_store;
mod label;
mod pair_code;
pub mod pair_v2;
pub mod protocol;
mod ygg_address;
pub mod yggdrasil;

#[cfg(feature = "client")]
pub use client::{
    exchange_v2, ClientError, ClientOptions, Mailbox, PollOptions, RelayClient, RelayMailbox,
};
pub use fingerprint::fingerprint;
pub use identity::{Identity, IdentityError};
pub use key_store::{KeyStore, StoredKey};
pub use label::{DnsLabel, LabelError};
pub use pair_code::{PairCode, PairCodeError};
pub use ygg_address::{YggAddress, YggAddressError};
