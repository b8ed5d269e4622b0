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

    /// The IPv6 address inside.
    pub fn ip(&self) -> Ipv6Addr {
        self.0
    }

    /// The address Yggdrasil derives from an ed25519 public key (DESIGN §4): invert the
    /// key, count and drop its leading 1 bits and the 0 after them, then `0x02`, the count,
    /// and the next 112 bits.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let inverted = public_key.map(|b| !b);
        let bit = |i: usize| (inverted[i / 8] >> (7 - i % 8)) & 1;
        let ones = (0..256).take_while(|&i| bit(i) == 1).count();
        let mut octets = [0u8; 16];
        octets[0] = 0x02;
        // Yggdrasil keeps the count in a byte; a key of 256 one bits cannot occur in practice.
        octets[1] = ones as u8;
        let rest = (ones + 1..256).map(bit);
        for (i, b) in rest.take(112).enumerate() {
            octets[2 + i / 8] |= b << (7 - i % 8);
        }
        YggAddress(Ipv6Addr::from(octets))
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

    /// The vector of Yggdrasil's own `TestAddress_AddrForKey`.
    #[test]
    fn derives_the_known_vector() {
        let key = [
            189, 186, 207, 216, 34, 64, 222, 61, 205, 18, 57, 36, 203, 181, 82, 86, 251, 141, 171,
            8, 170, 152, 227, 5, 82, 138, 184, 79, 65, 158, 110, 251,
        ];
        assert_eq!(
            YggAddress::from_public_key(&key).to_string(),
            "200:848a:604f:bb7e:4384:65db:8db6:6895"
        );
    }

    #[test]
    fn derivation_counts_leading_ones_of_the_inverted_key() {
        // Inverted: 0xff, 0xf0, then zeros: twelve ones, then the 0, then the bits after it.
        let mut key = [0xffu8; 32];
        key[0] = 0x00;
        key[1] = 0x0f;
        let a = YggAddress::from_public_key(&key).ip().octets();
        assert_eq!(&a[..2], &[0x02, 12]);
        // After the 13 dropped bits, bits 13..16 of 0xf0 are 000, then zeros.
        assert!(a[2..].iter().all(|&b| b == 0), "{a:?}");
        let all_zero = YggAddress::from_public_key(&[0xff; 32]).ip().octets();
        assert_eq!(&all_zero[..2], &[0x02, 0]);
    }

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
