//! What jrun has deployed: the contents of `state.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use jrun_mesh::{DnsLabel, PairCode, YggAddress};
use serde::{Deserialize, Serialize};

use crate::config::{
    Base, BaseForward, BaseMount, Config, Exec, Forward, Jail, JailName, MeshPort, Mount, SetupStep,
};
use crate::net::Redirect;

/// The state format this binary writes; it reads this and every older one.
///
/// 2: jails record the config file that deployed them (`file`), the base the file that
/// applied it (`base_file`); a version-1 file reads as records with no file.
pub const STATE_VERSION: u32 = 2;

/// Everything jrun remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version, [`STATE_VERSION`] when written by this binary.
    pub version: u32,
    /// The `base { }` block last applied to the VM (`None`: never applied).
    #[serde(default)]
    pub base: Option<Base>,
    /// The config file (canonical path) whose `base` block `base` is; `None`: recorded by
    /// an older jrun, or never applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_file: Option<PathBuf>,
    /// Every jail that exists, deployed fully or not, by name.
    #[serde(default)]
    pub jails: BTreeMap<JailName, JailState>,
    /// The VM wiring in effect, while an instance has been started.
    #[serde(default)]
    pub vm: Option<VmState>,
    /// Mesh pairings, by pairing code.
    #[serde(default)]
    pub peers: BTreeMap<PairCode, MeshPeer>,
    /// The journal of a pairing change: set (and saved) before `pair` or `pair --drop`
    /// touches a firewall or a record, cleared once the running instance matches `peers`.
    /// Found set, `up` and `start` apply the wiring `peers` implies, so a crash at any
    /// point leaves only access that `pair --list` shows and `--drop` removes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mesh_pending: bool,
    /// The pid of a `jrun up` at work (set when it starts deploying, cleared when it is
    /// done): while that process lives, jails not yet deployed are being deployed, not
    /// failed. A crashed `up` leaves a dead pid, which means nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploying: Option<u32>,
    /// Free-form data a runtime keeps for itself (e.g. native: instance id,
    /// started-at), under a key naming the runtime (`"native"`, `"vm"`). The planner
    /// never reads it; each runtime validates what it reads back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime: BTreeMap<String, serde_json::Value>,
}

/// One jail as it was last deployed (or is being deployed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailState {
    pub name: JailName,
    /// The address it holds; it keeps it until it is removed.
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub base: Option<JailName>,
    #[serde(default)]
    pub depends: Vec<JailName>,
    #[serde(default)]
    pub forwards: Vec<Forward>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub execs: Vec<Exec>,
    #[serde(default)]
    pub setup: Vec<SetupStep>,
    /// Whether its last deployment ran to the end. `false` while a deployment is in
    /// progress or after one failed: the next `up` redeploys it.
    pub deployed: bool,
    /// The config file (canonical absolute path) that deployed it. `up` of another file
    /// leaves it alone. `None`: recorded by an older jrun or converted from Jailrun's
    /// state; the first file that lists it takes it over, and no other file removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Converted from Jailrun's state: it does not exist in this instance (jrun's VM is
    /// not Jailrun's). Only `up` of a file that lists it creates it; `start`, `down` of
    /// other jails and pairing changes leave it as recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_jailrun: bool,
    /// Its `mesh { allow }`: the only ports paired peers may reach; `None`: every port
    /// (also every record written before the key existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_allow: Option<BTreeSet<MeshPort>>,
}

/// The wiring the VM (or native instance) is running with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    /// The host port that reaches the VM.
    pub ssh_port: u16,
    /// Jail forwards in effect, sorted by (proto, host port).
    #[serde(default)]
    pub redirects: Vec<Redirect>,
    /// Base forwards (host port to a VM port) in effect.
    #[serde(default)]
    pub base_forwards: Vec<BaseForward>,
    /// Host folders shared into the VM at launch.
    #[serde(default)]
    pub shares: Vec<BaseMount>,
}

/// Which side of a pairing this instance was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairDirection {
    /// This instance created the code (`jrun pair`).
    Created,
    /// This instance joined with a code (`jrun pair <code>`).
    Joined,
}

/// One pairing with a remote jrun instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshPeer {
    pub code: PairCode,
    pub direction: PairDirection,
    /// When the pairing completed, in seconds since the Unix epoch.
    pub paired_at: u64,
    /// The remote instance's jails, validated on arrival.
    pub jails: Vec<RemoteJail>,
    /// The local jails this pairing shares: only they admit the remote jails' addresses.
    /// Set to the jails offered in this side's roster (`jrun pair --share`, or every
    /// deployed jail), changed by `jrun pair --share <jails> <code>`; a jail deployed
    /// later is not in it. `None`: a pairing recorded before jrun recorded shares, which
    /// shares every local jail, including jails deployed later (as it did then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<BTreeSet<JailName>>,
}

impl MeshPeer {
    /// Whether local jail `jail` admits this pairing's remote jails.
    pub fn shares(&self, jail: &JailName) -> bool {
        self.shared.as_ref().is_none_or(|s| s.contains(jail))
    }
}

/// A jail of a paired instance, reachable as `<name>.<code>.jrun`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJail {
    pub name: DnsLabel,
    pub ygg_address: YggAddress,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            base: None,
            base_file: None,
            jails: BTreeMap::new(),
            vm: None,
            peers: BTreeMap::new(),
            mesh_pending: false,
            deploying: None,
            runtime: BTreeMap::new(),
        }
    }
}

impl JailState {
    /// The record of `jail` deployed at `ip` (from no recorded file: see
    /// [`JailState::file`]).
    pub fn from_jail(jail: &Jail, ip: Ipv4Addr, deployed: bool) -> Self {
        JailState {
            name: jail.name.clone(),
            ip,
            release: jail.release.clone(),
            base: jail.base.clone(),
            depends: jail.depends.clone(),
            forwards: jail.forwards.clone(),
            mounts: jail.mounts.clone(),
            execs: jail.execs.clone(),
            setup: jail.setup.clone(),
            deployed,
            file: None,
            from_jailrun: false,
            mesh_allow: jail.mesh_allow.clone(),
        }
    }

    /// The jail as a config declares it. It carries no static address: planned against
    /// the state it came from, the jail keeps its recorded one.
    pub fn as_jail(&self) -> Jail {
        Jail {
            name: self.name.clone(),
            release: self.release.clone(),
            ip: None,
            base: self.base.clone(),
            depends: self.depends.clone(),
            mounts: self.mounts.clone(),
            forwards: self.forwards.clone(),
            execs: self.execs.clone(),
            setup: self.setup.clone(),
            mesh_allow: self.mesh_allow.clone(),
        }
    }
}

impl State {
    /// Every remote address of every pairing.
    pub fn mesh_addresses(&self) -> impl Iterator<Item = YggAddress> + '_ {
        self.peers
            .values()
            .flat_map(|p| p.jails.iter().map(|j| j.ygg_address))
    }

    /// The remote addresses local jail `jail` admits: those of every pairing that shares
    /// it ([`MeshPeer::shares`]). What its `mesh_peers` set holds.
    pub fn mesh_addresses_for<'a>(
        &'a self,
        jail: &'a JailName,
    ) -> impl Iterator<Item = YggAddress> + 'a {
        self.peers
            .values()
            .filter(move |p| p.shares(jail))
            .flat_map(|p| p.jails.iter().map(|j| j.ygg_address))
    }

    /// The recorded base and jails as a config (named `path` in messages): planning it
    /// against this state keeps everything as it is, which is where `down` (drop some
    /// jails first) and pairing changes (swap firewalls and records) start from.
    pub fn as_config(&self, path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            base: self.base.clone(),
            jails: self.jails.values().map(JailState::as_jail).collect(),
        }
    }

    /// The config files recorded for jails or the base that no longer exist (a file that
    /// cannot be read for another reason counts as existing). Their jails may be taken
    /// over by another file ([`crate::plan::Probe::missing_files`]).
    pub fn missing_files(&self) -> std::collections::BTreeSet<PathBuf> {
        self.jails
            .values()
            .filter_map(|j| j.file.clone())
            .chain(self.base_file.clone())
            .filter(|f| {
                matches!(std::fs::metadata(f), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
            })
            .collect()
    }

    /// Every remote jail with the code it is reachable under.
    pub fn remote_jails(&self) -> impl Iterator<Item = (&PairCode, &RemoteJail)> {
        self.peers
            .values()
            .flat_map(|p| p.jails.iter().map(move |j| (&p.code, j)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Proto;
    use crate::plan::{self, Options, Probe};

    fn jail(name: &str, depends: &[&str], ip: Option<Ipv4Addr>) -> Jail {
        Jail {
            name: JailName::new(name).unwrap(),
            release: Some("15.0-RELEASE".into()),
            ip,
            base: None,
            depends: depends.iter().map(|d| JailName::new(*d).unwrap()).collect(),
            mounts: Vec::new(),
            forwards: vec![Forward {
                name: "http".into(),
                proto: Proto::Tcp,
                host: 8000 + u16::from(name.len() as u8),
                jail: 80,
            }],
            execs: Vec::new(),
            setup: Vec::new(),
            mesh_allow: None,
        }
    }

    #[test]
    fn as_config_plans_the_recorded_jails_unchanged() {
        let db_ip = Ipv4Addr::new(10, 17, 89, 40);
        let web_ip = Ipv4Addr::new(10, 17, 89, 7);
        let db = jail("db", &[], Some(db_ip));
        let web = jail("web", &["db"], None);
        let mut state = State::default();
        for (j, ip) in [(&db, db_ip), (&web, web_ip)] {
            let record = JailState::from_jail(j, ip, true);
            state.jails.insert(record.name.clone(), record);
        }
        state.base = Some(Base::default());

        let config = state.as_config("/home/me/.jrun/state.json");
        assert_eq!(config.path, PathBuf::from("/home/me/.jrun/state.json"));
        assert_eq!(config.base, state.base);
        // The same jails, without static addresses (the recorded one is kept by the planner).
        let db_unpinned = Jail { ip: None, ..db };
        assert_eq!(config.jails, [db_unpinned, web]);

        let plan = plan::plan(&config, &state, &Probe::default(), &Options::default()).unwrap();
        assert!(plan.removals.is_empty(), "{plan:?}");
        let ips: Vec<_> = plan
            .jails
            .iter()
            .map(|j| (j.jail.name.as_str(), j.ip))
            .collect();
        assert_eq!(ips, [("db", db_ip), ("web", web_ip)]);
        assert!(plan.jails.iter().all(|j| j.actions.is_empty()), "{plan:?}");
    }
}
