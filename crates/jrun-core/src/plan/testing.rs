//! Builders for planner unit tests.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::config::{Config, Jail, JailName};
use crate::state::{JailState, State};

pub(crate) fn name(s: &str) -> JailName {
    JailName::new(s).unwrap()
}

pub(crate) fn jail(n: &str) -> Jail {
    Jail {
        name: name(n),
        release: None,
        ip: None,
        base: None,
        depends: Vec::new(),
        mounts: Vec::new(),
        forwards: Vec::new(),
        execs: Vec::new(),
        setup: Vec::new(),
        mesh_allow: None,
    }
}

pub(crate) trait JailExt {
    fn depends(self, on: &[&str]) -> Self;
    fn base(self, from: &str) -> Self;
    fn ip(self, ip: Ipv4Addr) -> Self;
}

impl JailExt for Jail {
    fn depends(mut self, on: &[&str]) -> Self {
        self.depends = on.iter().map(|n| name(n)).collect();
        self
    }
    fn base(mut self, from: &str) -> Self {
        self.base = Some(name(from));
        self
    }
    fn ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = Some(ip);
        self
    }
}

pub(crate) fn config(jails: Vec<Jail>) -> Config {
    Config {
        path: PathBuf::from("/test/jrun.ucl"),
        base: None,
        jails,
    }
}

/// A state holding plain deployed jails at the given addresses.
pub(crate) fn state_with(jails: &[(&str, Ipv4Addr)]) -> State {
    let mut state = State::default();
    for (n, ip) in jails {
        state
            .jails
            .insert(name(n), JailState::from_jail(&jail(n), *ip, true));
    }
    state
}
