//! Pairing protocol v2 (docs/pairing.md): the relay carries opaque messages under a
//! nameplate; the two clients run SPAKE2 with the code's words as the password, confirm
//! the key, then exchange rosters sealed with XChaCha20-Poly1305 whose every entry is
//! signed by the jail's own Yggdrasil key.
//!
//! This module is the wire format (shared with the relay, which validates it) and the
//! cryptography as a sans-I/O [`Session`]; the HTTP driver lives in the client.
//!
//! ```text
//! GET  /v2                                    → {"versions":[2],"max_body_bytes":16384}
//! POST /v2/nameplate                          → {"nameplate":4821,"token":"<32 hex>"}
//! POST /v2/nameplate/{n}/messages?after=K&wait=S  frames (side, phase, length, body)
//!                                             → token field, the peer's frames from K on
//!                                               (the token only to the post that claims b)
//! GET  /v2/nameplate/{n}/messages?after=K&wait=S  → the same, without a token
//! ```
//!
//! Posts and answers are `application/octet-stream`, framed as [`wire`] says.
//!
//! `wait=S` holds the answer until the peer has a message past `K` or `S` seconds (capped
//! by the relay) passed. A pairing is six requests (docs/pairing.md).

use std::collections::HashSet;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};
use zeroize::Zeroizing;

pub mod wire;
pub use wire::{
    encode_answer, encode_messages, parse_frames, parse_messages, parse_post, parse_posted, Frame,
    Message, FRAME_HEAD, MEDIA_TYPE,
};

use crate::protocol::{self, CreatorToken, Roster, RosterJail};
use crate::{DnsLabel, Identity, PairCode, YggAddress};

/// The protocol's name, bound into the SPAKE2 identities and every derived key.
pub const PROTOCOL: &str = "jrun-pair-v2";

/// The smallest v2 nameplate. `jrun relay`'s v1 codes start with 1–999, so a code whose
/// number is this or more is a v2 code: the joiner can tell which protocol to speak.
pub const NAMEPLATE_MIN: u32 = 1000;
/// The largest v2 nameplate.
pub const NAMEPLATE_MAX: u32 = 999_999;

/// The largest decoded message body the protocol produces or accepts.
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;

/// The largest request body `jrun relay` accepts unless told otherwise (`--max-body`):
/// a roster whose post is larger is refused before anything is sent.
pub const RELAY_DEFAULT_MAX_BODY: usize = 16 * 1024;

/// An entry of a sealed roster besides its name: the name's length, key and signature.
const ENTRY_FIXED_BYTES: usize = 1 + 32 + 64;
/// The sealed box around a roster: the nonce before it, the tag after it.
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// Which end of the pairing: `a` created it, `b` joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The creator.
    A,
    /// The joiner.
    B,
}

impl Side {
    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    /// 0 for `a`, 1 for `b`.
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// The steps of the exchange, each at most one message per side. A side's last message is
/// its `ack` or an `abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The SPAKE2 message.
    Pake,
    /// The key-confirmation MAC.
    Confirm,
    /// The sealed, signed roster.
    Roster,
    /// A MAC over both rosters: this side accepted the pairing.
    Ack,
    /// This side gave up (empty body); unauthenticated, so it can only stop a pairing.
    Abort,
}

impl Phase {
    /// Whether this phase ends a side's part: nothing follows it from that side, and the
    /// relay forgets a nameplate once each side's last message reached the peer.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Ack | Phase::Abort)
    }
}

/// The longest wait (`wait=` seconds) `jrun relay` grants unless told otherwise
/// (`--max-wait`); a client asks for less, so that an answer always comes before its own
/// timeout.
pub const RELAY_DEFAULT_MAX_WAIT_SECS: u64 = 30;

/// The most messages one post carries: a side's messages before it next waits.
pub const MAX_BATCH: usize = 3;

/// `GET /v2`: the versions the relay speaks beyond v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Protocol versions, e.g. `[2]`.
    pub versions: Vec<u32>,
    /// The relay's largest request body (`jrun relay --max-body`), so that a client
    /// checks its roster against the real limit; absent from older relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

/// `POST /v2/nameplate`: a fresh nameplate and side a's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocated {
    /// The number the code starts with.
    pub nameplate: u32,
    /// Side a's secret for posting and reading.
    pub token: CreatorToken,
}

/// A v2 code: the relay's nameplate and three words the creator drew, which never reach
/// the relay. `Debug` hides the words.
#[derive(Clone, PartialEq, Eq)]
pub struct V2Code {
    nameplate: u32,
    words: [u16; 3],
}

impl fmt::Debug for V2Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V2Code({}-…)", self.nameplate)
    }
}

/// The code words: BIP-39's English list, as `jrun relay` uses for v1 codes.
pub fn words() -> &'static [&'static str; 2048] {
    bip39::Language::English.word_list()
}

impl V2Code {
    /// A code for `nameplate` with three words from the OS RNG (33 bits).
    pub fn random(nameplate: u32) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes)?;
        let w = |i: usize| u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) & 0x7ff;
        Ok(V2Code {
            nameplate,
            words: [w(0), w(1), w(2)],
        })
    }

    /// The v2 code a typed code is, if it is one: a nameplate in
    /// [`NAMEPLATE_MIN`]..=[`NAMEPLATE_MAX`] without leading zeros, then three list words.
    pub fn parse(code: &PairCode) -> Option<Self> {
        let mut parts = code.as_str().split('-');
        let number = parts.next()?;
        if number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nameplate: u32 = number.parse().ok()?;
        if !(NAMEPLATE_MIN..=NAMEPLATE_MAX).contains(&nameplate) {
            return None;
        }
        let mut words_ = [0u16; 3];
        for slot in &mut words_ {
            let w = parts.next()?;
            *slot = words().iter().position(|x| *x == w)? as u16;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(V2Code {
            nameplate,
            words: words_,
        })
    }

    /// The nameplate (what the relay knows).
    pub fn nameplate(&self) -> u32 {
        self.nameplate
    }

    /// The whole code, to be typed on the other side.
    pub fn code(&self) -> PairCode {
        format!("{}-{}", self.nameplate, self.password().as_str())
            .parse()
            .expect("a number and list words make a DNS label")
    }

    fn password(&self) -> Zeroizing<String> {
        let w = |i: usize| words()[usize::from(self.words[i])];
        Zeroizing::new(format!("{}-{}-{}", w(0), w(1), w(2)))
    }
}

/// Why a v2 pairing failed. Each message says that nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// Key confirmation failed: the two sides typed different codes (or someone guessed),
    /// or a PAKE or confirmation message was changed on the way.
    #[error("the code does not match: your peer's code and yours differ (a typo, or someone else tried this code), or the relay altered the key exchange; nothing was changed. Create a new pairing and type its code exactly")]
    CodeMismatch,
    /// A sealed message did not open or an acknowledgement did not verify.
    #[error("a pairing message was altered on the way (by the relay or someone between); nothing was changed")]
    Tampered,
    /// The peer's side gave up.
    #[error("your peer's jrun gave up the pairing (it saw a wrong code or an altered message); nothing was changed")]
    PeerAborted,
    /// A message that breaks the protocol.
    #[error("the peer sent an invalid pairing message ({0}); nothing was changed")]
    Malformed(String),
    /// A roster entry whose signature does not verify for this pairing, that name and the
    /// address its key owns.
    #[error("the peer's roster lists jail `{name}` with a signature that does not verify for this pairing and the address its key owns (a peer may list only addresses it owns); nothing was changed")]
    BadSignature {
        /// The jail.
        name: String,
    },
    /// This side's roster does not fit in one message.
    #[error("your roster of {jails} jails takes {bytes} bytes as a pairing v2 message, more than the {limit} bytes {what}; nothing was sent. Share fewer jails with `jrun pair --share <jails>`")]
    RosterTooLarge {
        /// Jails in the roster.
        jails: usize,
        /// The size it would take.
        bytes: usize,
        /// The limit it exceeds.
        limit: usize,
        /// Whose limit that is.
        what: &'static str,
    },
    /// Called out of order (a bug of the caller).
    #[error("pairing step out of order")]
    OutOfOrder,
}

/// A roster entry as sealed: the name, the jail's Yggdrasil public key and that key's
/// signature (see [`entry_message`]). The address is not sent: it is the one the key
/// derives (DESIGN §4), so an entry cannot name an address its key does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJail {
    /// The jail's name.
    pub name: DnsLabel,
    /// Its ed25519 public key.
    pub public_key: [u8; 32],
    /// The key's signature over [`entry_message`] with the address the key derives.
    pub signature: [u8; 64],
}

impl SignedJail {
    /// The address the key derives: the only one this entry can stand for.
    pub fn address(&self) -> YggAddress {
        YggAddress::from_public_key(&self.public_key)
    }
}

/// The plaintext of a roster message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    /// The entries.
    pub jails: Vec<SignedJail>,
}

fn malformed(what: String) -> V2Error {
    V2Error::Malformed(format!("roster: {what}"))
}

impl SignedRoster {
    /// The binary form sealed in a roster message, compact so that a relay message holds
    /// many jails: `count (u16, big-endian)`, then per entry `len(name) (u8) ‖ name ‖
    /// public key (32) ‖ signature (64)`. `None` past 65535 entries.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let count = u16::try_from(self.jails.len()).ok()?;
        let mut out = Vec::with_capacity(plain_bytes(self.jails.iter().map(|j| &j.name)));
        out.extend_from_slice(&count.to_be_bytes());
        for j in &self.jails {
            let name = j.name.as_str().as_bytes();
            out.push(u8::try_from(name.len()).expect("a DNS label is at most 63 bytes"));
            out.extend_from_slice(name);
            out.extend_from_slice(&j.public_key);
            out.extend_from_slice(&j.signature);
        }
        Some(out)
    }

    /// Parses [`SignedRoster::encode`]'s form: at most `max_jails` entries, names that are
    /// DNS labels, nothing after the last entry.
    pub fn decode(bytes: &[u8], max_jails: usize) -> Result<Self, V2Error> {
        fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], V2Error> {
            if rest.len() < n {
                return Err(malformed(format!("cut short in {what}")));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        }
        let mut rest = bytes;
        let count = take(&mut rest, 2, "the jail count")?;
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        if count > max_jails {
            return Err(malformed(format!(
                "{count} jails; a roster holds at most {max_jails}"
            )));
        }
        let mut jails = Vec::with_capacity(count);
        for i in 0..count {
            let len = usize::from(take(&mut rest, 1, "a name's length")?[0]);
            let name = take(&mut rest, len, "a name")?;
            let name = String::from_utf8(name.to_vec())
                .ok()
                .and_then(|n| DnsLabel::new(n).ok())
                .ok_or_else(|| malformed(format!("jail {i}: the name is not a DNS label")))?;
            let public_key = take(&mut rest, 32, "a public key")?
                .try_into()
                .expect("32 bytes taken");
            let signature = take(&mut rest, 64, "a signature")?
                .try_into()
                .expect("64 bytes taken");
            jails.push(SignedJail {
                name,
                public_key,
                signature,
            });
        }
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} bytes after the last jail",
                rest.len()
            )));
        }
        Ok(SignedRoster { jails })
    }
}

fn plain_bytes<'a>(names: impl IntoIterator<Item = &'a DnsLabel>) -> usize {
    2 + names
        .into_iter()
        .map(|n| ENTRY_FIXED_BYTES + n.as_str().len())
        .sum::<usize>()
}

/// The decoded body of a roster message for jails of these names.
pub fn roster_message_bytes<'a>(names: impl IntoIterator<Item = &'a DnsLabel>) -> usize {
    NONCE_BYTES + plain_bytes(names) + TAG_BYTES
}

/// The bodies of the messages a side posts together with its roster: the joiner's PAKE
/// and confirmation before it, the creator's confirmation before it and ack after it.
const PAKE_BYTES: usize = 33;
const MAC_BYTES: usize = 32;

/// The request body of the post that carries a roster message for jails of these names
/// (the larger of the two sides' posts): what a relay's `--max-body` limits.
pub fn roster_post_bytes<'a>(names: impl IntoIterator<Item = &'a DnsLabel>) -> usize {
    // The creator's confirm and ack, or the joiner's PAKE and confirm, with the roster.
    let others = (MAC_BYTES + MAC_BYTES).max(PAKE_BYTES + MAC_BYTES);
    3 * FRAME_HEAD + others + roster_message_bytes(names)
}

/// Refuses, before anything is sent, a roster whose post the relay would refuse: `limit`
/// is the relay's body limit as its `GET /v2` states it, else [`RELAY_DEFAULT_MAX_BODY`].
pub fn check_roster_fits<'a>(
    names: impl IntoIterator<Item = &'a DnsLabel> + Clone,
    limit: Option<usize>,
) -> Result<(), V2Error> {
    let bytes = roster_post_bytes(names.clone());
    let (limit, what) = match limit {
        Some(limit) => (limit, "this relay accepts (`jrun relay --max-body`)"),
        None => (
            RELAY_DEFAULT_MAX_BODY,
            "a relay accepts by default (`jrun relay --max-body`)",
        ),
    };
    if bytes > limit {
        return Err(V2Error::RosterTooLarge {
            jails: names.into_iter().count(),
            bytes,
            limit,
            what,
        });
    }
    Ok(())
}

/// What a roster entry's key signs: the protocol, the transcript id (which only the two
/// sides know and which differs for every pairing), the sending side, the name and the
/// address.
pub fn entry_message(
    transcript: &[u8; 32],
    side: Side,
    name: &DnsLabel,
    address: YggAddress,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(PROTOCOL.as_bytes());
    m.extend_from_slice(b" roster entry\0");
    m.extend_from_slice(transcript);
    m.push(side.as_str().as_bytes()[0]);
    let name = name.as_str().as_bytes();
    m.push(u8::try_from(name.len()).expect("a DNS label is at most 63 bytes"));
    m.extend_from_slice(name);
    m.extend_from_slice(&address.ip().octets());
    m
}

struct Keys {
    confirm: Zeroizing<[u8; 32]>,
    roster: Zeroizing<[u8; 32]>,
    transcript: [u8; 32],
}

/// One side of a v2 exchange, without I/O: feed it the peer's messages in order.
pub struct Session {
    side: Side,
    nameplate: u32,
    spake: Option<Spake2<Ed25519Group>>,
    keys: Option<Keys>,
    confirmed: bool,
    /// SHA-256 of the roster plaintext each side sent, once known.
    roster_hashes: [Option<[u8; 32]>; 2],
}

type HmacSha256 = Hmac<Sha256>;

fn spake_ids(nameplate: u32) -> (SpakeId, SpakeId) {
    (
        SpakeId::new(format!("{PROTOCOL}:{nameplate}:a").as_bytes()),
        SpakeId::new(format!("{PROTOCOL}:{nameplate}:b").as_bytes()),
    )
}

impl Session {
    /// Starts `side`'s part with `code`; returns the PAKE message to post.
    pub fn start(side: Side, code: &V2Code) -> (Session, Vec<u8>) {
        let password = code.password();
        let password = Password::new(password.as_bytes());
        let (id_a, id_b) = spake_ids(code.nameplate);
        let (spake, message) = match side {
            Side::A => Spake2::<Ed25519Group>::start_a(&password, &id_a, &id_b),
            Side::B => Spake2::<Ed25519Group>::start_b(&password, &id_a, &id_b),
        };
        (
            Session {
                side,
                nameplate: code.nameplate,
                spake: Some(spake),
                keys: None,
                confirmed: false,
                roster_hashes: [None, None],
            },
            message,
        )
    }

    /// Takes the peer's PAKE message; returns this side's confirmation MAC to post.
    pub fn receive_pake(&mut self, message: &[u8]) -> Result<Vec<u8>, V2Error> {
        let spake = self.spake.take().ok_or(V2Error::OutOfOrder)?;
        // A malformed element fails here; an element from a wrong password only fails the
        // confirmation, on both sides alike.
        let key = Zeroizing::new(
            spake
                .finish(message)
                .map_err(|e| V2Error::Malformed(format!("PAKE message: {e:?}")))?,
        );
        let hk = Hkdf::<Sha256>::new(Some(PROTOCOL.as_bytes()), &key);
        let expand = |info: &str| {
            let mut out = Zeroizing::new([0u8; 32]);
            hk.expand(format!("{PROTOCOL} {info}").as_bytes(), out.as_mut())
                .expect("32 bytes is a valid HKDF-SHA256 length");
            out
        };
        let transcript = *expand("transcript");
        self.keys = Some(Keys {
            confirm: expand("confirm"),
            roster: expand("roster"),
            transcript,
        });
        Ok(self.confirm_mac(self.side))
    }

    fn keys(&self) -> Result<&Keys, V2Error> {
        self.keys.as_ref().ok_or(V2Error::OutOfOrder)
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let keys = self.keys.as_ref().expect("keys derived before any MAC");
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(keys.confirm.as_ref()).expect("any key length");
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    fn confirm_mac(&self, side: Side) -> Vec<u8> {
        let np = self.nameplate.to_be_bytes();
        self.mac(&[
            PROTOCOL.as_bytes(),
            b"confirm",
            &np,
            side.as_str().as_bytes(),
        ])
        .finalize()
        .into_bytes()
        .to_vec()
    }

    /// Checks the peer's confirmation MAC: equal keys, hence equal codes.
    pub fn receive_confirm(&mut self, message: &[u8]) -> Result<(), V2Error> {
        self.keys()?;
        let np = self.nameplate.to_be_bytes();
        let peer = self.side.peer();
        self.mac(&[
            PROTOCOL.as_bytes(),
            b"confirm",
            &np,
            peer.as_str().as_bytes(),
        ])
        .verify_slice(message)
        .map_err(|_| V2Error::CodeMismatch)?;
        self.confirmed = true;
        Ok(())
    }

    /// The transcript id both sides share after the PAKE (what roster entries sign).
    pub fn transcript(&self) -> Result<[u8; 32], V2Error> {
        Ok(self.keys()?.transcript)
    }

    fn aad(&self, side: Side) -> Vec<u8> {
        format!("{PROTOCOL}|{}|{}|roster", self.nameplate, side.as_str()).into_bytes()
    }

    /// This side's roster, every entry signed by its jail's key, sealed. Right after the
    /// PAKE, before the peer's confirmation: the box key comes from the PAKE, so a peer
    /// with a wrong code cannot open it, and learns from it no more than from this side's
    /// confirmation (the joiner sends both in one post; docs/pairing.md).
    pub fn seal_roster(&mut self, jails: &[(DnsLabel, Identity)]) -> Result<Vec<u8>, V2Error> {
        self.keys()?;
        let bytes = roster_message_bytes(jails.iter().map(|(name, _)| name));
        if bytes > MAX_MESSAGE_BYTES {
            return Err(V2Error::RosterTooLarge {
                jails: jails.len(),
                bytes,
                limit: MAX_MESSAGE_BYTES,
                what: "the protocol allows",
            });
        }
        let transcript = self.keys()?.transcript;
        let roster = SignedRoster {
            jails: jails
                .iter()
                .map(|(name, id)| SignedJail {
                    name: name.clone(),
                    public_key: id.public_key(),
                    signature: id.sign(&entry_message(&transcript, self.side, name, id.address())),
                })
                .collect(),
        };
        let plain = roster
            .encode()
            .expect("a message of at most MAX_MESSAGE_BYTES holds fewer than 65536 entries");
        self.roster_hashes[self.side.index()] = Some(Sha256::digest(&plain).into());
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| V2Error::Malformed(format!("RNG: {e}")))?;
        let cipher = XChaCha20Poly1305::new(self.keys()?.roster.as_ref().into());
        let aad = self.aad(self.side);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .expect("sealing in memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens the peer's sealed roster and checks every entry: signature by the listed
    /// key over this pairing's transcript, and an address that key derives.
    pub fn open_roster(&mut self, message: &[u8], max_jails: usize) -> Result<Roster, V2Error> {
        if !self.confirmed {
            return Err(V2Error::OutOfOrder);
        }
        let keys = self.keys()?;
        if message.len() < NONCE_BYTES {
            return Err(V2Error::Tampered);
        }
        let (nonce, sealed) = message.split_at(NONCE_BYTES);
        let cipher = XChaCha20Poly1305::new(keys.roster.as_ref().into());
        let peer = self.side.peer();
        let aad = self.aad(peer);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| V2Error::Tampered)?;
        let signed = SignedRoster::decode(&plain, max_jails)?;
        let roster = verify_roster(&signed, &keys.transcript, peer, max_jails)?;
        self.roster_hashes[peer.index()] = Some(Sha256::digest(&plain).into());
        Ok(roster)
    }

    fn ack_mac(&self, side: Side) -> Result<HmacSha256, V2Error> {
        let [Some(a), Some(b)] = self.roster_hashes else {
            return Err(V2Error::OutOfOrder);
        };
        let np = self.nameplate.to_be_bytes();
        Ok(self.mac(&[
            PROTOCOL.as_bytes(),
            b"ack",
            &np,
            side.as_str().as_bytes(),
            &a,
            &b,
        ]))
    }

    /// This side's acknowledgement: a MAC over both rosters as sent and received.
    pub fn ack(&self) -> Result<Vec<u8>, V2Error> {
        Ok(self.ack_mac(self.side)?.finalize().into_bytes().to_vec())
    }

    /// Checks the peer's acknowledgement: it received exactly the roster this side sent.
    pub fn receive_ack(&self, message: &[u8]) -> Result<(), V2Error> {
        self.ack_mac(self.side.peer())?
            .verify_slice(message)
            .map_err(|_| V2Error::Tampered)
    }
}

/// Checks a signed roster sent by `side` and returns it as a plain roster: each jail at
/// the address its key derives, once the key's signature over this pairing's transcript,
/// the side, the name and that address verified.
pub fn verify_roster(
    signed: &SignedRoster,
    transcript: &[u8; 32],
    side: Side,
    max_jails: usize,
) -> Result<Roster, V2Error> {
    let mut jails = Vec::with_capacity(signed.jails.len());
    let mut keys = HashSet::new();
    for j in &signed.jails {
        let bad = || V2Error::BadSignature {
            name: j.name.to_string(),
        };
        let address = j.address();
        VerifyingKey::from_bytes(&j.public_key)
            .map_err(|_| bad())?
            .verify_strict(
                &entry_message(transcript, side, &j.name, address),
                &Signature::from_bytes(&j.signature),
            )
            .map_err(|_| bad())?;
        if !keys.insert(j.public_key) {
            return Err(V2Error::Malformed(format!(
                "jail `{}`: a key listed twice",
                j.name
            )));
        }
        jails.push(RosterJail {
            name: j.name.clone(),
            ygg_address: address,
        });
    }
    let roster = Roster { jails };
    protocol::validate_roster(&roster, max_jails).map_err(|e| V2Error::Malformed(e.to_string()))?;
    Ok(roster)
}

#[cfg(test)]
mod tests;
