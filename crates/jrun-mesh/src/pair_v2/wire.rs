//! The bytes of v2's messages on the wire (docs/pairing.md): plain length-prefixed frames,
//! so that the relay checks a post once and answers with the frames as they were posted,
//! never decoding or re-encoding a body (JSON with base64 cost it more than a v1 roster).
//!
//! ```text
//! frame   = side (1 byte: 1 a, 2 b) · phase (1 byte: 1 pake, 2 confirm, 3 roster,
//!           4 ack, 5 abort) · length (4 bytes, big-endian) · body (length bytes)
//! post    = 1 to MAX_BATCH frames of one side          (Content-Type: application/octet-stream)
//! answer  = token length (1 byte: 0, or 32 to the post that claimed side b)
//!           · token (that many lowercase hex digits) · the peer's frames
//! ```

use crate::protocol::{CreatorToken, MessageError};

use super::{Phase, Side, MAX_BATCH, MAX_MESSAGE_BYTES};

/// The media type of v2's posts and answers.
pub const MEDIA_TYPE: &str = "application/octet-stream";

/// The bytes before a frame's body: side, phase, length.
pub const FRAME_HEAD: usize = 6;

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it.
    pub side: Side,
    /// Which step.
    pub phase: Phase,
    /// The opaque body.
    pub body: Vec<u8>,
}

impl Message {
    /// Appends this message's frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.body.len()).expect("a message body fits in 4 GiB");
        out.push(side_byte(self.side));
        out.push(phase_byte(self.phase));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.body);
    }
}

/// A post's body: the frames of `messages`, in order.
pub fn encode_messages(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| FRAME_HEAD + m.body.len()).sum());
    for m in messages {
        m.encode_into(&mut out);
    }
    out
}

/// An answer: the token field, then `frames` as they are (already checked frames).
pub fn encode_answer<'a>(
    token: Option<&CreatorToken>,
    frames: impl IntoIterator<Item = &'a [u8]> + Clone,
) -> Vec<u8> {
    let token = token.map_or("", CreatorToken::as_str).as_bytes();
    let len: usize = frames.clone().into_iter().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(1 + token.len() + len);
    out.push(u8::try_from(token.len()).expect("a token is 32 bytes"));
    out.extend_from_slice(token);
    for frame in frames {
        out.extend_from_slice(frame);
    }
    out
}

/// One frame inside a body, checked: its side, phase and body, and its whole wire bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Who sent it.
    pub side: Side,
    /// Which step.
    pub phase: Phase,
    /// The opaque body.
    pub body: &'a [u8],
    /// The frame as it was on the wire, head and body.
    pub wire: &'a [u8],
}

impl Frame<'_> {
    /// An owned copy of the message.
    pub fn to_message(&self) -> Message {
        Message {
            side: self.side,
            phase: self.phase,
            body: self.body.to_vec(),
        }
    }
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::A => 1,
        Side::B => 2,
    }
}

fn phase_byte(phase: Phase) -> u8 {
    match phase {
        Phase::Pake => 1,
        Phase::Confirm => 2,
        Phase::Roster => 3,
        Phase::Ack => 4,
        Phase::Abort => 5,
    }
}

fn bad(field: &str, message: impl Into<String>) -> MessageError {
    MessageError {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// Splits `bytes` into at most `max` checked frames: known side and phase, a body within
/// [`MAX_MESSAGE_BYTES`] that the bytes hold entirely, an empty one for `abort`, nothing
/// left over.
pub fn parse_frames(mut bytes: &[u8], max: usize) -> Result<Vec<Frame<'_>>, MessageError> {
    let mut frames = Vec::with_capacity(max.min(MAX_BATCH + 1));
    while !bytes.is_empty() {
        if frames.len() == max {
            return Err(bad("messages", format!("more than {max} messages")));
        }
        let at = |message: String| bad(&format!("messages[{}]", frames.len()), message);
        let Some((head, rest)) = bytes.split_first_chunk::<FRAME_HEAD>() else {
            return Err(at("a message cut short".into()));
        };
        let side = match head[0] {
            1 => Side::A,
            2 => Side::B,
            other => return Err(at(format!("unknown side {other}"))),
        };
        let phase = match head[1] {
            1 => Phase::Pake,
            2 => Phase::Confirm,
            3 => Phase::Roster,
            4 => Phase::Ack,
            5 => Phase::Abort,
            other => return Err(at(format!("unknown phase {other}"))),
        };
        let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        if len > MAX_MESSAGE_BYTES {
            return Err(at(format!("larger than {MAX_MESSAGE_BYTES} bytes")));
        }
        if phase == Phase::Abort && len != 0 {
            return Err(at("must be empty for this phase".into()));
        }
        if rest.len() < len {
            return Err(at("a message cut short".into()));
        }
        let (wire, after) = bytes.split_at(FRAME_HEAD + len);
        frames.push(Frame {
            side,
            phase,
            body: &wire[FRAME_HEAD..],
            wire,
        });
        bytes = after;
    }
    Ok(frames)
}

/// Parses a post's body (`POST …/messages`): one to [`MAX_BATCH`] messages of one side,
/// nothing after a final one.
pub fn parse_post(body: &[u8]) -> Result<Vec<Frame<'_>>, MessageError> {
    let list = parse_frames(body, MAX_BATCH)?;
    let Some(first) = list.first() else {
        return Err(bad("messages", "no message"));
    };
    if list.iter().any(|m| m.side != first.side) {
        return Err(bad("messages", "messages of both sides"));
    }
    if list[..list.len() - 1].iter().any(|m| m.phase.is_final()) {
        return Err(bad("messages", "a message after this side's last one"));
    }
    Ok(list)
}

/// Parses the relay's answer to a post: side b's token (if handed out) and the peer's
/// messages, at most `max`.
pub fn parse_posted(
    body: &[u8],
    max: usize,
) -> Result<(Option<CreatorToken>, Vec<Message>), MessageError> {
    let Some((&len, rest)) = body.split_first() else {
        return Err(bad("token", "an empty answer"));
    };
    let len = usize::from(len);
    if rest.len() < len {
        return Err(bad("token", "cut short"));
    }
    let (token, frames) = rest.split_at(len);
    let token = match token {
        [] => None,
        hex => {
            let text = std::str::from_utf8(hex).map_err(|_| bad("token", "not hex digits"))?;
            Some(CreatorToken::try_from(text.to_string()).map_err(|e| bad("token", e))?)
        }
    };
    let list = parse_frames(frames, max)?;
    Ok((token, list.iter().map(Frame::to_message).collect()))
}

/// Parses the relay's answer to a read (`GET …/messages`): the peer's messages, at most
/// `max`, and no token.
pub fn parse_messages(body: &[u8], max: usize) -> Result<Vec<Message>, MessageError> {
    match parse_posted(body, max)? {
        (None, list) => Ok(list),
        (Some(_), _) => Err(bad("token", "a token in the answer to a read")),
    }
}
