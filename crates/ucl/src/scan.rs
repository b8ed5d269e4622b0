//! The byte cursor: character classes, blanks and comments.

use crate::{Error, Location, Span};

/// Bytes that may start a bare key.
const KEY_START: u8 = 2;
/// Bytes that may continue a bare key.
const KEY_BODY: u8 = 4;
/// Bytes an unquoted atom scan must stop and look at: libucl's `VALUE_END` (and NUL),
/// brackets, and the starts of comments and escapes.
const ATOM_STOP: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut f = 0;
        if matches!(c, b'\n' | b'\r' | b';' | b',' | b']' | b'}' | b'#' | 0) {
            f |= ATOM_STOP;
        }
        if matches!(c, b'{' | b'[' | b'/' | b'\\') {
            f |= ATOM_STOP;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            f |= KEY_START | KEY_BODY;
        }
        if matches!(c, b'-' | b'.') {
            f |= KEY_BODY;
        }
        // Paths as bare keys (`/usr/local/bin/tool: "…"`, as in pkg manifests): a key may
        // start with `/`, and only such a key holds more of them (see `path_key_body`).
        if c == b'/' {
            f |= KEY_START;
        }
        t[i] = f;
        i += 1;
    }
    t
};

pub(crate) fn is_atom_stop(c: u8) -> bool {
    CLASS[c as usize] & ATOM_STOP != 0
}
pub(crate) fn is_key_start(c: u8) -> bool {
    CLASS[c as usize] & KEY_START != 0
}
pub(crate) fn is_key_body(c: u8) -> bool {
    CLASS[c as usize] & KEY_BODY != 0
}
/// Whether `b[i]` continues a bare key that started at `start`: a path key (starting with
/// `/`) also takes `/`, unless it opens a `//` or `/*` comment.
pub(crate) fn continues_key(b: &[u8], start: usize, i: usize) -> bool {
    match b[i] {
        b'/' => b[start] == b'/' && !matches!(b.get(i + 1), Some(b'/' | b'*')),
        c => is_key_body(c),
    }
}

/// The parser's position in the source.
pub(crate) struct Cursor<'a> {
    pub(crate) src: &'a str,
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Cursor {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// "3:10", for messages that point back at an opening bracket or quote.
    pub(crate) fn line_col(&self, offset: usize) -> String {
        let l = Location::of(self.src, offset);
        format!("{}:{}", l.line, l.column)
    }

    /// An error at the current position, one character wide.
    pub(crate) fn error_here(&self, message: impl Into<String>) -> Error {
        let end = self.next_char_end(self.pos);
        Error::new(message, Span::new(self.pos, end))
    }

    pub(crate) fn next_char_end(&self, at: usize) -> usize {
        match self.src.get(at..).and_then(|s| s.chars().next()) {
            Some(c) => at + c.len_utf8(),
            None => at,
        }
    }

    /// A description of the character at the cursor, for "found ..." in messages.
    pub(crate) fn found(&self) -> String {
        match self.src.get(self.pos..).and_then(|s| s.chars().next()) {
            None => "the end of the input".to_string(),
            Some('\n') => "a newline".to_string(),
            Some(c) if c.is_control() => format!("the control character {:?}", c),
            Some(c) => format!("'{c}'"),
        }
    }

    /// Whether a comment starts here. `//` is a comment only where a token could
    /// start, so that `http://host` stays one unquoted value.
    pub(crate) fn at_comment(&self) -> bool {
        match self.peek() {
            Some(b'#') => true,
            Some(b'/') => matches!(self.peek_at(1), Some(b'*' | b'/')),
            _ => false,
        }
    }

    /// Skips one comment at the cursor (which must be at one).
    pub(crate) fn skip_comment(&mut self) -> Result<(), Error> {
        let b = self.bytes;
        if b[self.pos] == b'#' || b[self.pos + 1] == b'/' {
            self.pos = match memchr_nl(&b[self.pos..]) {
                Some(i) => self.pos + i,
                None => b.len(),
            };
            return Ok(());
        }
        let open = self.pos;
        let mut depth = 0usize;
        let mut i = self.pos;
        while i + 1 < b.len() {
            match (b[i], b[i + 1]) {
                (b'/', b'*') => {
                    depth += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
                _ => i += 1,
            }
        }
        Err(Error::new(
            format!(
                "unterminated comment: expected '*/' to close the comment opened at {}",
                self.line_col(open)
            ),
            Span::new(open, open + 2),
        ))
    }

    /// Skips spaces and tabs only.
    pub(crate) fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips blanks, newlines and comments. Returns whether it crossed a newline or a
    /// comment (either of which separates two entries).
    #[inline]
    pub(crate) fn skip_space(&mut self) -> Result<bool, Error> {
        // Most calls stop at once or after a few blanks: no loop over the cases for them.
        self.skip_blanks();
        match self.peek() {
            Some(b'\n' | b'\r' | b'#' | b'/') => self.skip_space_slow(),
            _ => Ok(false),
        }
    }

    fn skip_space_slow(&mut self) -> Result<bool, Error> {
        let mut separated = false;
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'\n' | b'\r') => {
                    separated = true;
                    self.pos += 1;
                }
                Some(b'#' | b'/') if self.at_comment() => {
                    self.skip_comment()?;
                    separated = true;
                }
                _ => return Ok(separated),
            }
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
