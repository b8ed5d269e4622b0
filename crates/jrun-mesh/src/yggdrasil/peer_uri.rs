//! Validated pieces of a Yggdrasil config: peer/listen URIs and TUN interface names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Yggdrasil peer or listen URI such as `tcp://10.17.89.1:19001` or `tls://[::]:0`.
///
/// Only schemes Yggdrasil knows are accepted, with a `host:port` after them and nothing that
/// could break out of a config string or an argv word (whitespace, quotes, control characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerUri(String);

/// Why a string is not a peer URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a Yggdrasil peer URI: {why} (expected e.g. tcp://10.17.89.1:19001 or tls://[::]:0)")]
pub struct PeerUriError {
    /// The refused text.
    pub uri: String,
    /// What is wrong with it.
    pub why: &'static str,
}

const SCHEMES: &[&str] = &[
    "tcp", "tls", "quic", "ws", "wss", "socks", "sockstls", "unix",
];

impl FromStr for PeerUri {
    type Err = PeerUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| PeerUriError {
            uri: s.to_string(),
            why,
        };
        if s.len() > 1024 {
            return Err(bad("it is longer than 1024 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'\\`".contains(&b))
        {
            return Err(bad(
                "it contains whitespace, quotes or non-ASCII characters",
            ));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("it has no scheme"))?;
        if !SCHEMES.contains(&scheme) {
            return Err(bad(
                "the scheme is not one of tcp, tls, quic, ws, wss, socks, sockstls, unix",
            ));
        }
        if scheme == "unix" {
            return if rest.starts_with('/') {
                Ok(PeerUri(s.to_string()))
            } else {
                Err(bad("a unix socket path must be absolute"))
            };
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("it has no port"))?;
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        port.parse::<u16>()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        Ok(PeerUri(s.to_string()))
    }
}

impl PeerUri {
    /// The URI as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PeerUri {
    type Error = PeerUriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PeerUri> for String {
    fn from(u: PeerUri) -> String {
        u.0
    }
}

impl fmt::Display for PeerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network interface name Linux and FreeBSD accept: 1–15 characters of ASCII letters,
/// digits, `_`, `.` and `-` (e.g. `ygg0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfName(String);

impl FromStr for IfName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=15).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !matches!(s, "none" | "auto" | "." | "..");
        if ok {
            Ok(IfName(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not an interface name (1-15 letters, digits, '_', '.', '-')"
            ))
        }
    }
}

impl IfName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_uris() {
        for ok in [
            "tcp://10.17.89.1:19001",
            "tls://[::]:0",
            "tcp://relay.example:443",
            "quic://[200::1]:9000?key=abc",
            "unix:///run/ygg.sock",
        ] {
            assert!(ok.parse::<PeerUri>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "10.0.0.1:1",
            "http://a:1",
            "tcp://a",
            "tcp://:1",
            "tcp://a:99999",
            "tcp://a:1\"",
            "tcp://a:1 b",
            "tcp://a:1\n",
            "unix://rel/path",
        ] {
            assert!(bad.parse::<PeerUri>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_names() {
        assert!("ygg0".parse::<IfName>().is_ok());
        for bad in ["", "none", "auto", "a b", "waytoolonginterface", "a/b"] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?}");
        }
    }
}
