use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use jrun_mesh::{DnsLabel, PairCode, YggAddress};
use serde::{Deserialize, Serialize};

use crate::config::JailName;

/// A name jrun answers for, built only from validated labels: `<jail>.local.jrun`
/// or `<jail>.<pair-code>.jrun`. There is no way to construct any other name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsName {
    Local(JailName),
    Peer { jail: DnsLabel, code: PairCode },
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsName::Local(j) => write!(f, "{j}.{}", super::LOCAL_ZONE),
            DnsName::Peer { jail, code } => write!(f, "{jail}.{code}.{}", super::ROOT_ZONE),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(YggAddress),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: DnsName,
    pub data: RecordData,
}

/// The whole record set the resolver serves. It is always computed whole, from every
/// local jail and every pairing, so that no change can drop another kind's records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsRecords(pub BTreeSet<DnsRecord>);

impl DnsRecords {
    /// Builds the whole set: an A record `<jail>.local.jrun` for every local jail and an
    /// AAAA record `<jail>.<code>.jrun` for every remote jail of every pairing.
    pub fn build<'a>(
        local: impl IntoIterator<Item = (&'a JailName, Ipv4Addr)>,
        remote: impl IntoIterator<Item = (&'a PairCode, &'a DnsLabel, YggAddress)>,
    ) -> Self {
        let mut set = BTreeSet::new();
        for (jail, ip) in local {
            set.insert(DnsRecord {
                name: DnsName::Local(jail.clone()),
                data: RecordData::A(ip),
            });
        }
        for (code, jail, addr) in remote {
            set.insert(DnsRecord {
                name: DnsName::Peer {
                    jail: jail.clone(),
                    code: code.clone(),
                },
                data: RecordData::Aaaa(addr),
            });
        }
        DnsRecords(set)
    }

    /// The A records of local jails.
    pub fn local(&self) -> impl Iterator<Item = &DnsRecord> {
        self.0
            .iter()
            .filter(|r| matches!(r.name, DnsName::Local(_)))
    }

    /// The AAAA records of paired remote jails.
    pub fn peers(&self) -> impl Iterator<Item = &DnsRecord> {
        self.0
            .iter()
            .filter(|r| matches!(r.name, DnsName::Peer { .. }))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_render_under_jrun() {
        let j = DnsLabel::new("web").unwrap();
        assert_eq!(DnsName::Local(j.clone()).to_string(), "web.local.jrun");
        let code: PairCode = "81-zephyr-night-climb".parse().unwrap();
        assert_eq!(
            DnsName::Peer { jail: j, code }.to_string(),
            "web.81-zephyr-night-climb.jrun"
        );
    }

    #[test]
    fn build_keeps_both_kinds() {
        let web = DnsLabel::new("web").unwrap();
        let db = DnsLabel::new("db").unwrap();
        let code: PairCode = "81-zephyr-night-climb".parse().unwrap();
        let addr: YggAddress = "200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap();
        let set = DnsRecords::build(
            [(&web, Ipv4Addr::new(10, 17, 89, 10))],
            [(&code, &db, addr)],
        );
        assert_eq!(set.len(), 2);
        assert_eq!(set.local().count(), 1);
        let peer = set.peers().next().unwrap();
        assert_eq!(peer.name.to_string(), "db.81-zephyr-night-climb.jrun");
        assert_eq!(peer.data, RecordData::Aaaa(addr));
    }
}
