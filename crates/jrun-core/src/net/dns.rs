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
}
