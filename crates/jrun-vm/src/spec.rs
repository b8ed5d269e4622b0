//! What the guest must look like: the validated input of every renderer.
//!
//! A [`GuestSpec`] is built from the planner's output (resolved IPs, firewall policy, DNS
//! records). Every string in it that reaches a rendered file is either a validated type
//! ([`JailName`], [`Release`], [`PeerUri`], an address) or is quoted by the renderer that
//! places it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use jrun_core::config::{BaseForward, BaseMount, Exec, JailName, Mount, SetupStep};
use jrun_core::net::{DnsRecords, JailFirewall, VmFirewall};
pub use jrun_mesh::yggdrasil::{PeerUri, YggVersion};
use jrun_mesh::Identity;
use serde::{Deserialize, Serialize};

/// Everything the guest receives on one `jrun up`.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// The FreeBSD release the VM runs; jails without a release of their own get it.
    pub release: Release,
    /// Where the resolver forwards names outside `jrun.` (QEMU's user network: 10.0.2.3).
    pub upstream_dns: Vec<IpAddr>,
    pub vm_firewall: VmFirewall,
    pub base_forwards: Vec<BaseForward>,
    pub base_mounts: Vec<BaseMount>,
    pub base_setup: Vec<SetupStep>,
    pub dns: DnsRecords,
    /// In dependency order: a jail comes after its base and what it depends on.
    pub jails: Vec<GuestJail>,
    /// Jails deployed before and gone from the config: they are stopped and destroyed.
    pub removed: Vec<JailName>,
    /// `None` when `JRUN_MESH_NETWORK` is off.
    pub mesh: Option<MeshSpec>,
    /// `--provision`: run every setup step again, not only those of new jails.
    pub provision: bool,
    /// How long the script waits for the services it (re)started to be ready, in seconds;
    /// `None` (`--no-wait`, pairing) does not wait.
    pub ready_timeout_secs: Option<u64>,
    /// `JRUN_BSD_MIRROR`: where jails' `base.txz` are fetched from.
    pub bsd_mirror: String,
}

/// One jail as the guest sees it, with its resolved address.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestJail {
    pub name: JailName,
    pub ip: Ipv4Addr,
    /// `None`: the VM's own release.
    pub release: Option<Release>,
    /// Cloned from this jail instead of installed from a release.
    pub base: Option<JailName>,
    /// Jails that must run before this one (jail.conf `depend`).
    pub depends: Vec<JailName>,
    pub mounts: Vec<Mount>,
    pub execs: Vec<Exec>,
    pub setup: Vec<SetupStep>,
    pub firewall: JailFirewall,
    /// The plan rebuilds it (new release, base or address): its root is destroyed and
    /// made again, and its setup steps run.
    pub recreate: bool,
    /// The TCP ports of the jail that host forwards reach: a service without a health
    /// check is ready once these accept connections.
    pub forwarded_tcp_ports: Vec<u16>,
}

/// The Yggdrasil side: keys for the VM node and each jail, and the version to render for.
#[derive(Debug, Clone)]
pub struct MeshSpec {
    /// The Yggdrasil installed in the guest (FreeBSD packages: 0.5).
    pub version: YggVersion,
    /// The relay's Yggdrasil peer, which the VM node dials.
    pub relay_peer: Option<PeerUri>,
    pub vm_key: Identity,
    /// One key per jail in [`GuestSpec::jails`], by name.
    pub jail_keys: std::collections::BTreeMap<JailName, Identity>,
}

/// A FreeBSD release name such as `15.0-RELEASE`, `14.3-RC1` or `15.0-STABLE`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Release(String);

/// Why a value cannot be placed into a guest file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0:?} is not a FreeBSD release (expected e.g. 15.0-RELEASE, 14.3-RC1, 15.0-STABLE)")]
    Release(String),
}

impl Release {
    /// `15.0` (a bare `JRUN_BSD_VERSION`) becomes `15.0-RELEASE`.
    pub fn from_version(v: &str) -> Result<Self, SpecError> {
        if v.contains('-') {
            v.parse()
        } else {
            format!("{v}-RELEASE").parse()
        }
    }

    /// A config's `release`: `15.0` means `15.0-RELEASE`; a patch level (`-p2`) is dropped,
    /// since release tarballs exist per release and patches come from freebsd-update.
    pub fn from_config(v: &str) -> Result<Self, SpecError> {
        let base = match v.rsplit_once("-p") {
            Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
            _ => v,
        };
        Release::from_version(base).map_err(|_| SpecError::Release(v.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Release {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Release(s.to_string());
        let (num, kind) = s.split_once('-').ok_or_else(bad)?;
        let (major, minor) = num.split_once('.').ok_or_else(bad)?;
        let digits =
            |d: &str| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit());
        let kind_ok = match kind {
            "RELEASE" | "STABLE" | "CURRENT" => true,
            k => ["RC", "BETA", "ALPHA"]
                .iter()
                .any(|p| k.strip_prefix(p).is_some_and(|n| digits(n) && n.len() <= 2)),
        };
        if digits(major) && digits(minor) && kind_ok {
            Ok(Release(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl TryFrom<String> for Release {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        s.parse()
    }
}

impl From<Release> for String {
    fn from(r: Release) -> String {
        r.0
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        for ok in [
            "15.0-RELEASE",
            "14.3-RC1",
            "15.0-STABLE",
            "16.0-CURRENT",
            "15.0-BETA2",
        ] {
            assert_eq!(ok.parse::<Release>().unwrap().as_str(), ok);
        }
        for bad in [
            "15.0",
            "15-RELEASE",
            "15.0-RELEASE;",
            "15.0-RC",
            "a.b-RELEASE",
            "15.0-RELEASE\n",
        ] {
            assert!(bad.parse::<Release>().is_err(), "{bad}");
        }
        assert_eq!(
            Release::from_version("15.0").unwrap().as_str(),
            "15.0-RELEASE"
        );
        assert!(Release::from_version("15.0$(x)").is_err());
        assert_eq!(
            Release::from_config("14.3-RELEASE-p2").unwrap().as_str(),
            "14.3-RELEASE"
        );
        assert_eq!(
            Release::from_config("15.0").unwrap().as_str(),
            "15.0-RELEASE"
        );
        assert!(Release::from_config("15.0-p").is_err());
    }
}
