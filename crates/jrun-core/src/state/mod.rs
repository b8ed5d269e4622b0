//! The state store: what jrun has deployed, in `$JRUN_HOME/state.json`.
//!
//! [`StateStore::lock`] takes the instance's exclusive lock, then reads; the runtime
//! changes [`StateLock::state`] as each step succeeds (see [`State::begin_jail`],
//! [`State::mark_deployed`]) and saves.

pub mod jailrun;
mod model;
mod record;
mod store;

pub use model::{JailState, MeshPeer, PairDirection, RemoteJail, State, VmState, STATE_VERSION};
pub use store::{HeldLock, LockWait, StateError, StateLock, StateStore};
