//! The relay protocol, v1 (DESIGN §5): its messages, and pure parsers that validate every
//! roster with the same rules on the relay and on the client.
//!
//! ```text
//! POST /pair         {"jails":[…A…]}  → {"code":"81-zephyr-night-climb"}
//! GET  /pair/{code}                   → {"joined":false}
//! POST /pair/{code}  {"jails":[…B…]}  → {"jails":[…A…]}
//! GET  /pair/{code}                   → {"joined":true,"jails":[…B…]}, then 404
//! ```
//!
//! jrun's extension, invisible to clients that do not ask for it: a `POST /pair` carrying
//! `X-Jrun-Token: 1` is answered `{"code":…,"token":"<32 hex digits>"}`, and that pairing's
//! `GET /pair/{code}` must then carry `Authorization: Bearer <token>`; without it (or with
//! another token) the relay answers exactly as for an unknown code.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{DnsLabel, PairCode, YggAddress};

/// The most jails a roster may hold unless configured otherwise.
pub const MAX_ROSTER_JAILS: usize = 256;

/// One jail of a roster: its name and its node address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterJail {
    /// The jail's name; becomes `<name>.<code>.jrun` on the other side.
    pub name: DnsLabel,
    /// The jail's Yggdrasil address.
    pub ygg_address: YggAddress,
}

/// The jails one side shares: the body of `POST /pair`, `POST /pair/{code}` and the join answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// The jails, names unique.
    pub jails: Vec<RosterJail>,
}

/// The request header with which a creator asks for a [`CreatorToken`] (value `1`).
pub const TOKEN_OPT_IN_HEADER: &str = "x-jrun-token";

/// The answer to `POST /pair`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    /// The code to share with the peer.
    pub code: PairCode,
    /// The creator's secret for collecting the joiner's roster: present when the creator
    /// asked for one ([`TOKEN_OPT_IN_HEADER`]) and the relay knows the extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<CreatorToken>,
}

impl From<PairCode> for Created {
    /// A pairing known by its code alone (a relay that issues no tokens).
    fn from(code: PairCode) -> Self {
        Created { code, token: None }
    }
}

/// A creator's secret: 128 random bits as 32 lowercase hex digits. Compared in constant
/// time, and never shown by `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreatorToken(String);

impl CreatorToken {
    /// A fresh token from the OS RNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(CreatorToken(hex::encode(bytes)))
    }

    /// The token as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token of an `Authorization: Bearer <token>` header value, if it holds one.
    pub fn from_bearer(value: &str) -> Option<Self> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        token.trim().to_string().try_into().ok()
    }
}

impl TryFrom<String> for CreatorToken {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(CreatorToken(s))
        } else {
            Err("a creator token is 32 lowercase hex digits".into())
        }
    }
}

impl From<CreatorToken> for String {
    fn from(t: CreatorToken) -> String {
        t.0
    }
}

impl PartialEq for CreatorToken {
    fn eq(&self, other: &Self) -> bool {
        // Both are 32 bytes once validated; no early exit on the first difference.
        self.0.len() == other.0.len()
            && self
                .0
                .bytes()
                .zip(other.0.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for CreatorToken {}

impl std::fmt::Debug for CreatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreatorToken(…)")
    }
}

/// The answer to `GET /pair/{code}` as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollAnswer {
    /// Whether the peer has joined.
    pub joined: bool,
    /// The joiner's jails, present exactly when `joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jails: Option<Vec<RosterJail>>,
}

/// What a poll tells, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollStatus {
    /// Nobody has joined yet.
    Waiting,
    /// The peer joined with this roster; the relay has deleted the pairing.
    Joined(Roster),
}

/// The body of every error answer of the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The offending field of the request, such as `jails[2].name`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A message that is not valid, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct MessageError {
    /// The path of the bad field (`jails[2].name`), if the fault lies in one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl MessageError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        MessageError {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// Strict JSON decoding that names the field where it failed.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, MessageError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| MessageError {
        field: None,
        message: format!("not valid JSON: {e}"),
    })?;
    require_objects(&value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        MessageError {
            // `.` is the whole document.
            field: (path != ".").then_some(path),
            message: e.into_inner().to_string(),
        }
    })
}

/// serde lets a struct arrive as a JSON array (`[[]]` would be a roster); the protocol
/// has objects only, so anything else where a message or a jail belongs is refused.
fn require_objects(value: &serde_json::Value) -> Result<(), MessageError> {
    let Some(top) = value.as_object() else {
        return Err(MessageError {
            field: None,
            message: "expected a JSON object".into(),
        });
    };
    if let Some(serde_json::Value::Array(jails)) = top.get("jails") {
        if let Some(i) = jails.iter().position(|j| !j.is_object()) {
            return Err(MessageError::at(
                format!("jails[{i}]"),
                "expected an object with name and ygg_address",
            ));
        }
    }
    Ok(())
}

/// Checks the rules serde cannot: size and unique names and addresses.
pub fn validate_roster(roster: &Roster, max_jails: usize) -> Result<(), MessageError> {
    if roster.jails.len() > max_jails {
        return Err(MessageError::at(
            "jails",
            format!(
                "{} jails; a roster holds at most {max_jails}",
                roster.jails.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, jail) in roster.jails.iter().enumerate() {
        if !names.insert(&jail.name) {
            return Err(MessageError::at(
                format!("jails[{i}].name"),
                format!("{:?} appears more than once", jail.name.as_str()),
            ));
        }
        if !addresses.insert(jail.ygg_address) {
            return Err(MessageError::at(
                format!("jails[{i}].ygg_address"),
                format!("{} appears more than once", jail.ygg_address),
            ));
        }
    }
    Ok(())
}

/// Parses and validates a roster (`{"jails":[{"name":…,"ygg_address":…}]}`).
pub fn parse_roster(body: &[u8], max_jails: usize) -> Result<Roster, MessageError> {
    let roster: Roster = decode(body)?;
    validate_roster(&roster, max_jails)?;
    Ok(roster)
}

/// Parses the answer to `POST /pair`.
pub fn parse_created(body: &[u8]) -> Result<Created, MessageError> {
    decode(body)
}

/// Parses and validates the answer to a poll.
pub fn parse_poll(body: &[u8], max_jails: usize) -> Result<PollStatus, MessageError> {
    let answer: PollAnswer = decode(body)?;
    match (answer.joined, answer.jails) {
        (false, None) => Ok(PollStatus::Waiting),
        (true, Some(jails)) => {
            let roster = Roster { jails };
            validate_roster(&roster, max_jails)?;
            Ok(PollStatus::Joined(roster))
        }
        (false, Some(_)) => Err(MessageError::at(
            "jails",
            "present although joined is false",
        )),
        (true, None) => Err(MessageError::at("jails", "missing although joined is true")),
    }
}

/// Parses an error answer; `None` when the body is not one.
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "200:848a:604f:bb7e:4384:65db:8db6:6895";
    const B: &str = "201:1::2";

    fn field_of(body: &str) -> Option<String> {
        parse_roster(body.as_bytes(), MAX_ROSTER_JAILS)
            .unwrap_err()
            .field
    }

    #[test]
    fn parses_a_roster() {
        let body = format!(
            r#"{{"jails":[{{"name":"web","ygg_address":"{A}"}},{{"name":"db","ygg_address":"{B}"}}]}}"#
        );
        let r = parse_roster(body.as_bytes(), 256).unwrap();
        assert_eq!(r.jails.len(), 2);
        assert_eq!(r.jails[1].name.as_str(), "db");
        assert_eq!(r.jails[0].ygg_address.to_string(), A);
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        assert!(parse_roster(br#"{"jails":[]}"#, 256).is_ok());
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (
                r#"{"jails":[{"name":"Web","ygg_address":"200::1"}]}"#,
                "jails[0].name",
            ),
            (
                r#"{"jails":[{"name":"a\"b","ygg_address":"200::1"}]}"#,
                "jails[0].name",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"::/0"}]}"#,
                "jails[0].ygg_address",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"300::1"}]}"#,
                "jails[0].ygg_address",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"fe80::1"}]}"#,
                "jails[0].ygg_address",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":7}]}"#,
                "jails[0].ygg_address",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"200::1","x":1}]}"#,
                "jails[0].x",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"200::1"},{"name":"a","ygg_address":"200::2"}]}"#,
                "jails[1].name",
            ),
            (
                r#"{"jails":[{"name":"a","ygg_address":"200::1"},{"name":"b","ygg_address":"200::1"}]}"#,
                "jails[1].ygg_address",
            ),
            (r#"{"jails":{}}"#, "jails"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body).as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn refuses_structure_errors() {
        for body in [
            "",
            "{",
            "[]",
            "null",
            r#"{"jails":[]} x"#,
            r#"{}"#,
            r#"{"jails":[],"extra":1}"#,
            // serde would take these arrays for structs; the protocol does not.
            "[[]]",
            r#"{"jails":[["web","200::1"]]}"#,
        ] {
            assert!(parse_roster(body.as_bytes(), 256).is_err(), "{body}");
        }
        assert!(parse_poll(b"[false]", 256).is_err());
        assert!(parse_created(br#"["1-a-b-c"]"#).is_err());
        let missing = parse_roster(br#"{"jails":[{"name":"a"}]}"#, 256).unwrap_err();
        assert!(missing.to_string().contains("ygg_address"), "{missing}");
    }

    #[test]
    fn enforces_the_size_limit() {
        let jails: Vec<String> = (0..3)
            .map(|i| format!(r#"{{"name":"j{i}","ygg_address":"200::{}"}}"#, i + 1))
            .collect();
        let body = format!(r#"{{"jails":[{}]}}"#, jails.join(","));
        assert!(parse_roster(body.as_bytes(), 3).is_ok());
        let err = parse_roster(body.as_bytes(), 2).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("jails"));
    }

    #[test]
    fn parses_polls() {
        assert_eq!(
            parse_poll(br#"{"joined":false}"#, 256).unwrap(),
            PollStatus::Waiting
        );
        let joined = format!(r#"{{"joined":true,"jails":[{{"name":"db","ygg_address":"{B}"}}]}}"#);
        let PollStatus::Joined(r) = parse_poll(joined.as_bytes(), 256).unwrap() else {
            panic!("not joined");
        };
        assert_eq!(r.jails[0].name.as_str(), "db");
        for bad in [
            r#"{"joined":true}"#,
            r#"{"joined":false,"jails":[]}"#,
            r#"{"joined":"yes"}"#,
            r#"{"joined":true,"jails":[{"name":"x","ygg_address":"::"}]}"#,
        ] {
            assert!(parse_poll(bad.as_bytes(), 256).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_codes_and_errors() {
        let c = parse_created(br#"{"code":"81-zephyr-night-climb"}"#).unwrap();
        assert_eq!(c.code.as_str(), "81-zephyr-night-climb");
        assert!(c.token.is_none());
        assert!(parse_created(br#"{"code":"; rm -rf /"}"#).is_err());
        let t = parse_created(br#"{"code":"1-a-b-c","token":"00112233445566778899aabbccddeeff"}"#)
            .unwrap();
        assert_eq!(
            t.token.unwrap().as_str(),
            "00112233445566778899aabbccddeeff"
        );
        for bad in ["\"x\"", "\"00112233445566778899AABBCCDDEEFF\"", "1"] {
            let body = format!(r#"{{"code":"1-a-b-c","token":{bad}}}"#);
            assert!(parse_created(body.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn creator_tokens_are_random_hex_hidden_and_read_from_bearer_headers() {
        let a = CreatorToken::random().unwrap();
        let b = CreatorToken::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(format!("{a:?}"), "CreatorToken(…)");
        let header = format!("Bearer {}", a.as_str());
        assert_eq!(CreatorToken::from_bearer(&header), Some(a.clone()));
        assert_eq!(
            CreatorToken::from_bearer(&format!("bearer  {} ", a.as_str())),
            Some(a.clone())
        );
        for bad in [
            "",
            "Bearer",
            "Basic abc",
            "Bearer xyz",
            "Token 00112233445566778899aabbccddeeff",
        ] {
            assert_eq!(CreatorToken::from_bearer(bad), None, "{bad}");
        }
        let e = parse_error(br#"{"error":"no such pairing"}"#).unwrap();
        assert_eq!(e.error, "no such pairing");
        assert!(parse_error(b"<html>").is_none());
    }
}
