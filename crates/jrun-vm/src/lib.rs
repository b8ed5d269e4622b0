//! jrun's vm runtime: FreeBSD in QEMU, renderers for the guest, QMP and SSH.
//!
//! - [`spec`]: the validated description of what the guest must look like.
//! - [`render`]: every file the guest receives, and the one provisioning script.
//! - [`quote`]: the single way a value reaches a generated shell script.

pub mod build;
pub mod console;
pub mod image;
pub mod mesh_apply;
pub mod paths;
pub mod qemu;
pub mod qmp;
pub mod quote;
pub mod ready;
pub mod render;
pub mod runtime;
pub mod runtime_trait;
pub mod seed;
pub mod snapshot;
pub mod spec;
pub mod ssh;
pub mod up;
pub mod vitals;
