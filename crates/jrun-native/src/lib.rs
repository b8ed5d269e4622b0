//! jrun's native runtime: jails as Linux network namespaces, nftables, unbound and Yggdrasil.
//!
//! The "VM" is one network namespace per instance holding the bridge (10.17.89.1), the
//! resolver, the VM's Yggdrasil node and its firewall; it reaches the host over a veth
//! pair. Each jail is a namespace with a veth on the bridge. Long-lived processes belong to
//! the [`supervisor`]. Every host command goes through [`jrun_core::exec::Runner`].

// Linux only (network namespaces, nftables, prctl): elsewhere the crate is empty and jrun
// offers the vm runtime alone.
#![cfg(target_os = "linux")]

mod deploy;
mod instance;
pub mod jailns;
mod link;
pub mod mesh;
pub mod names;
mod netns;
pub mod nft;
mod nl;
mod plumbing;
mod probe;
mod procgroup;
mod runtime;
mod setup;
pub mod supervisor;
mod sweep;
pub mod unbound;
pub mod usage;
mod vmfw;
mod workload;
mod ygg;

pub use deploy::fault_point;
pub use instance::InstanceInfo;
pub use runtime::{NativeOptions, NativeRuntime};
pub use setup::kill_running_step;
