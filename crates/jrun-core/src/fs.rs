//! Crash-safe file replacement: one helper for state, keys, configs and pid files.
//! Implemented in `jrun_mesh::fsutil` (which cannot depend on this crate) and re-exported
//! here so the runtimes have one place to look.

pub use jrun_mesh::fsutil::{is_shared, temp_prefix, write_atomic, write_atomic_new};
