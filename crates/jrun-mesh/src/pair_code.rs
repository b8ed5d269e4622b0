use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A pairing code: `<1–999>-<word>-<word>-<word>`, e.g. `81-zephyr-night-climb`.
///
/// Always a valid DNS label, because it becomes part of `<jail>.<code>.jrun`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PairCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a pairing code (expected a number from 1 to 999 and three words, like 81-zephyr-night-climb)")]
pub struct PairCodeError(pub String);

impl PairCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PairCode {
    type Err = PairCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PairCodeError(s.to_string());
        let parts: Vec<&str> = s.split('-').collect();
        let [num, words @ ..] = parts.as_slice() else {
            return Err(bad());
        };
        let n_ok = !num.is_empty()
            && num.len() <= 3
            && !num.starts_with('0')
            && num.bytes().all(|b| b.is_ascii_digit());
        let words_ok = words.len() == 3
            && words
                .iter()
                .all(|w| (1..=16).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()));
        if n_ok && words_ok {
            Ok(PairCode(s.to_string()))
        } else {
            Err(bad())
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
    fn codes() {
        for ok in ["81-zephyr-night-climb", "1-a-b-c", "999-abc-def-ghi"] {
            assert!(ok.parse::<PairCode>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0-a-b-c",
            "1000-a-b-c",
            "81-zephyr-night",
            "81-a-b-c-d",
            "81-A-b-c",
            "81-a-b-c\n",
            "81-a-b-c.x",
            "x-a-b-c",
            "081-a-b-c",
            "81--b-c",
        ] {
            assert!(bad.parse::<PairCode>().is_err(), "{bad:?}");
        }
    }
}
