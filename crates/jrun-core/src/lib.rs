//! The core of jrun, shared by both runtimes: the typed config, settings, state, the
//! planner and the network model. Nothing in this crate knows which OS it serves.

pub mod config;
pub mod exec;
pub mod fault;
pub mod fs;
pub mod home_trust;
pub mod net;
pub mod plan;
pub mod playbook;
pub mod runtime;
pub mod services;
pub mod settings;
pub mod state;
pub mod text;
