use std::fmt;

use serde::{Deserialize, Serialize};

/// One DNS label as jrun accepts it for jail names: 1–63 characters of lowercase ASCII
/// letters, digits and `-`, not starting or ending with `-`.
///
/// This is what may appear in `<jail>.local.jrun`, in an nftables set name, a namespace
/// name or a file name; nothing else can be built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsLabel(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; at most 63 are allowed")]
    TooLong(usize),
    #[error("contains {0:?}; only lowercase letters, digits and '-' are allowed")]
    BadChar(char),
    #[error("starts or ends with '-'")]
    Hyphen,
}

impl DnsLabel {
    pub fn new(s: impl Into<String>) -> Result<Self, LabelError> {
        let s = s.into();
        if s.is_empty() {
            return Err(LabelError::Empty);
        }
        if s.len() > 63 {
            return Err(LabelError::TooLong(s.chars().count()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(LabelError::BadChar(c));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(LabelError::Hyphen);
        }
        Ok(DnsLabel(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DnsLabel {
    type Error = LabelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DnsLabel::new(s)
    }
}

impl From<DnsLabel> for String {
    fn from(l: DnsLabel) -> String {
        l.0
    }
}

impl AsRef<str> for DnsLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels() {
        for ok in ["a", "web", "my-app", "db2", &"x".repeat(63)] {
            assert!(DnsLabel::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_could_inject() {
        assert_eq!(DnsLabel::new(""), Err(LabelError::Empty));
        assert_eq!(DnsLabel::new("x".repeat(64)), Err(LabelError::TooLong(64)));
        assert_eq!(DnsLabel::new("-a"), Err(LabelError::Hyphen));
        assert_eq!(DnsLabel::new("a-"), Err(LabelError::Hyphen));
        for bad in ["A", "a.b", "a b", "x\" IN A 1.2.3.4", "a\nb", "a;b", "é"] {
            assert!(
                matches!(DnsLabel::new(bad), Err(LabelError::BadChar(_))),
                "{bad}"
            );
        }
    }
}
