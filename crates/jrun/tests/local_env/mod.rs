//! Every jrun a test runs starts from here: the settings whose defaults reach the internet
//! (the public relay and its Yggdrasil node, FreeBSD's mirror, GitHub, the host's DNS
//! upstream) point at this machine instead, so no test can dial out. A test that needs one
//! of them sets its own local value after this (a later `env` wins).

#![allow(dead_code)]

use std::process::Command;

/// A port nothing listens on: connections to it are refused at once.
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// The local stand-ins for the internet defaults.
pub const LOCAL_ENV: &[(&str, &str)] = &[
    ("JRUN_RELAY", NOWHERE),
    ("JRUN_RELAY_PEER", "none"),
    ("JRUN_BSD_MIRROR", NOWHERE),
    ("JRUN_GITHUB_RAW", NOWHERE),
    ("JRUN_DNS_UPSTREAM", "127.0.0.1:9"),
];

/// The jrun binary under test, with [`LOCAL_ENV`] set.
pub fn jrun() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jrun"));
    cmd.envs(LOCAL_ENV.iter().copied());
    cmd
}
