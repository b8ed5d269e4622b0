//! Forward wiring: which host (proto, port) reaches which jail address and port, and
//! what changed compared with the wiring in effect.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Redirect;
use crate::config::{BaseForward, Forward, JailName, Proto};

/// The redirects one jail's forwards make, for the jail at `ip`.
pub fn redirects_for(jail: &JailName, ip: Ipv4Addr, forwards: &[Forward]) -> Vec<Redirect> {
    forwards
        .iter()
        .map(|f| Redirect {
            proto: f.proto,
            host_port: f.host,
            jail: jail.clone(),
            jail_ip: ip,
            jail_port: f.jail,
        })
        .collect()
}

/// What must change to go from the wiring in effect to the desired one. A host port
/// whose target moved (another jail, address or port) appears in both lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForwardChanges {
    /// Redirects to set up, sorted.
    pub added: Vec<Redirect>,
    /// Redirects to tear down (the old target of each), sorted.
    pub removed: Vec<Redirect>,
}

impl ForwardChanges {
    /// Compares two wirings; neither needs to be sorted.
    pub fn between(in_effect: &[Redirect], desired: &[Redirect]) -> Self {
        let old: BTreeSet<&Redirect> = in_effect.iter().collect();
        let new: BTreeSet<&Redirect> = desired.iter().collect();
        ForwardChanges {
            added: new.difference(&old).map(|r| (*r).clone()).collect(),
            removed: old.difference(&new).map(|r| (*r).clone()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Who claims a host port, for conflict messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortOwner {
    /// The port that reaches the VM itself (`JRUN_SSH_PORT`).
    Ssh,
    /// `base { forward { <name> } }`.
    Base { forward: String },
    /// `jail "<jail>" { forward { <name> } }`.
    Jail { jail: JailName, forward: String },
}

impl std::fmt::Display for PortOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortOwner::Ssh => f.write_str("the VM's SSH port (JRUN_SSH_PORT)"),
            PortOwner::Base { forward } => write!(f, "base forward {forward:?}"),
            PortOwner::Jail { jail, forward } => write!(f, "forward {forward:?} of jail {jail}"),
        }
    }
}

/// Two claims on one host (proto, port).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host port {proto}/{port} is claimed by both {first} and {second}; give one of them another `host` port")]
pub struct PortConflict {
    pub proto: Proto,
    pub port: u16,
    pub first: PortOwner,
    pub second: PortOwner,
}

/// Refuses two forwards on one host (proto, port), and any forward on the SSH port
/// (which is TCP; a UDP forward on the same number does not collide).
pub fn check_host_ports<'a>(
    ssh_port: u16,
    base: &[BaseForward],
    jails: impl IntoIterator<Item = (&'a JailName, &'a [Forward])>,
) -> Result<(), PortConflict> {
    let mut claims: BTreeMap<(Proto, u16), PortOwner> = BTreeMap::new();
    claims.insert((Proto::Tcp, ssh_port), PortOwner::Ssh);
    let mut claim = |proto: Proto, port: u16, owner: PortOwner| match claims.get(&(proto, port)) {
        Some(first) => Err(PortConflict {
            proto,
            port,
            first: first.clone(),
            second: owner,
        }),
        None => {
            claims.insert((proto, port), owner);
            Ok(())
        }
    };
    for f in base {
        claim(
            f.proto,
            f.host,
            PortOwner::Base {
                forward: f.name.clone(),
            },
        )?;
    }
    for (jail, forwards) in jails {
        for f in forwards {
            claim(
                f.proto,
                f.host,
                PortOwner::Jail {
                    jail: jail.clone(),
                    forward: f.name.clone(),
                },
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(name: &str, proto: Proto, host: u16, jail: u16) -> Forward {
        Forward {
            name: name.into(),
            proto,
            host,
            jail,
        }
    }

    #[test]
    fn changes_list_added_and_removed() {
        let web = JailName::new("web").unwrap();
        let ip = Ipv4Addr::new(10, 17, 89, 10);
        let old = redirects_for(&web, ip, &[fwd("a", Proto::Tcp, 8080, 80)]);
        let new = redirects_for(
            &web,
            ip,
            &[fwd("a", Proto::Tcp, 8080, 81), fwd("b", Proto::Udp, 53, 53)],
        );
        let ch = ForwardChanges::between(&old, &new);
        assert_eq!(ch.removed, old);
        assert_eq!(ch.added.len(), 2);
        assert!(ForwardChanges::between(&new, &new).is_empty());
    }

    #[test]
    fn conflicts_name_both_claims() {
        let web = JailName::new("web").unwrap();
        let db = JailName::new("db").unwrap();
        let a = [fwd("http", Proto::Tcp, 8080, 80)];
        let b = [fwd("admin", Proto::Tcp, 8080, 81)];
        let err = check_host_ports(2222, &[], [(&web, &a[..]), (&db, &b[..])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port tcp/8080 is claimed by both forward \"http\" of jail web and forward \
             \"admin\" of jail db; give one of them another `host` port"
        );
        let ssh = [fwd("ssh", Proto::Tcp, 2222, 22)];
        let err = check_host_ports(2222, &[], [(&web, &ssh[..])]).unwrap_err();
        assert_eq!(err.first, PortOwner::Ssh);
        // Same number, other protocol: no conflict.
        let udp = [fwd("dns", Proto::Udp, 8080, 53)];
        assert!(check_host_ports(2222, &[], [(&web, &a[..]), (&db, &udp[..])]).is_ok());
    }
}
