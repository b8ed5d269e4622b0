use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A pairing code as a relay issued it: any DNS label of lowercase letters, digits and
/// inner hyphens, up to 63 characters — `jrun relay`'s `81-zephyr-night-climb`, the seed's
/// `a1b2c3`, Jailrun's `18-pulse-lilac`.
///
/// Always a valid DNS label, because it becomes part of `<jail>.<code>.jrun`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PairCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a pairing code (expected what the relay printed: lowercase letters, digits and inner hyphens, at most 63, like 81-zephyr-night-climb)")]
pub struct PairCodeError(pub String);

impl PairCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PairCode {
    type Err = PairCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(PairCode(s.to_string()))
        } else {
            Err(PairCodeError(s.to_string()))
        }
    }
}

impl TryFrom<String> for PairCode {
    type Error = PairCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PairCode> for String {
    fn from(c: PairCode) -> String {
        c.0
    }
}

impl fmt::Display for PairCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dns_labels_whatever_the_relay() {
        for ok in [
            "81-zephyr-night-climb",
            "1-a-b-c",
            "999-abc-def-ghi",
            "a1b2c3",
            "18-pulse-lilac",
            "x",
            &"a".repeat(63),
        ] {
            assert!(ok.parse::<PairCode>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "81-A-b-c",
            "81-a-b-c\n",
            "81-a-b-c.x",
            "a b",
            "a_b",
            "x\" IN A 1.2.3.4",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<PairCode>().is_err(), "{bad:?}");
        }
    }
}
