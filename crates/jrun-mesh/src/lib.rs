//! The mesh side of jrun: who a jail is on the Yggdrasil network, and how two jrun
//! instances exchange their rosters through a relay.
//!
//! Everything that arrives from a peer or the relay passes through the validated types
//! of this crate ([`DnsLabel`], [`YggAddress`]) before it reaches a firewall rule or a
//! DNS record.

mod label;
mod pair_code;
mod ygg_address;

pub use label::{DnsLabel, LabelError};
pub use pair_code::{PairCode, PairCodeError};
pub use ygg_address::{YggAddress, YggAddressError};
