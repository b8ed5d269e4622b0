use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The address of one Yggdrasil node: an IPv6 address inside `200::/8`.
///
/// Subnets (`300::/8`) and anything outside the Yggdrasil range are refused, so a
/// roster can never widen a firewall allowance beyond single nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct YggAddress(Ipv6Addr);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YggAddressError {
    #[error("{0:?} is not an IPv6 address")]
    NotIpv6(String),
    #[error("{0} is not a Yggdrasil node address (those lie in 200::/8)")]
    OutsideRange(Ipv6Addr),
}

impl YggAddress {
    pub fn new(addr: Ipv6Addr) -> Result<Self, YggAddressError> {
        if addr.octets()[0] == 0x02 {
            Ok(YggAddress(addr))
        } else {
            Err(YggAddressError::OutsideRange(addr))
        }
    }

    pub fn ip(&self) -> Ipv6Addr {
        self.0
    }
}

impl FromStr for YggAddress {
    type Err = YggAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addr: Ipv6Addr = s
            .parse()
            .map_err(|_| YggAddressError::NotIpv6(s.to_string()))?;
        YggAddress::new(addr)
    }
}

impl TryFrom<String> for YggAddress {
    type Error = YggAddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<YggAddress> for String {
    fn from(a: YggAddress) -> String {
        a.0.to_string()
    }
}

impl fmt::Display for YggAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_addresses() {
        assert!("200:848a:604f:bb7e:4384:65db:8db6:6895"
            .parse::<YggAddress>()
            .is_ok());
        for bad in ["::/0", "::", "300::1", "fe80::1", "1.2.3.4", "200::1 ", ""] {
            assert!(bad.parse::<YggAddress>().is_err(), "{bad}");
        }
    }
}
