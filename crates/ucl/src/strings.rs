//! Quoted strings, heredocs and escapes.

use std::borrow::Cow;

use crate::scan::Cursor;
use crate::{Error, Span};

impl<'a> Cursor<'a> {
    fn unterminated(&self, open: usize, quote: char) -> Error {
        Error::new(
            format!(
                "unterminated string: expected {quote:?} to close the string opened at {}",
                self.line_col(open)
            ),
            Span::new(open, open + 1),
        )
    }

    /// A double-quoted string with JSON escapes; the cursor is at the opening quote.
    pub(crate) fn double_quoted(&mut self) -> Result<(Cow<'a, str>, Span), Error> {
        let open = self.pos;
        let b = self.bytes;
        let mut i = open + 1;
        // Fast path: find the end; copy once when there is no escape.
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.pos = i + 1;
                    let text = Cow::Borrowed(&self.src[open + 1..i]);
                    return Ok((text, Span::new(open, i + 1)));
                }
                b'\\' => break,
                c if c < 0x20 && !matches!(c, b'\n' | b'\r') => {
                    return Err(self.control_in_string(i, open))
                }
                _ => i += 1,
            }
        }
        if i >= b.len() {
            return Err(self.unterminated(open, '"'));
        }
        let mut out = String::with_capacity(i - open + 16);
        out.push_str(&self.src[open + 1..i]);
        let mut run = i;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    out.push_str(&self.src[run..i]);
                    self.pos = i + 1;
                    return Ok((Cow::Owned(out), Span::new(open, i + 1)));
                }
                b'\\' => {
                    out.push_str(&self.src[run..i]);
                    i = self.escape(i, &mut out)?;
                    run = i;
                }
                c if c < 0x20 && !matches!(c, b'\n' | b'\r') => {
                    return Err(self.control_in_string(i, open))
                }
                _ => i += 1,
            }
        }
        Err(self.unterminated(open, '"'))
    }

    /// A control character other than a line break: a line break stands in a string as
    /// written (Jailrun's configs break long commands over lines inside one string;
    /// libucl 0.7.3 refuses it).
    fn control_in_string(&self, at: usize, open: usize) -> Error {
        let what = match self.bytes[at] {
            b'\t' => "tab (write \\t)".to_string(),
            c => format!("control character 0x{c:02x}"),
        };
        Error::new(
            format!(
                "unexpected {what} in the string opened at {}",
                self.line_col(open)
            ),
            Span::new(at, at + 1),
        )
    }

    /// Decodes the escape at `at` (a backslash) into `out`; returns the index after it.
    pub(crate) fn escape(&self, at: usize, out: &mut String) -> Result<usize, Error> {
        let b = self.bytes;
        let Some(&c) = b.get(at + 1) else {
            return Err(Error::new(
                "unfinished escape at the end of the input",
                Span::new(at, at + 1),
            ));
        };
        let simple = match c {
            b'n' => Some('\n'),
            b't' => Some('\t'),
            b'r' => Some('\r'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            return Ok(at + 2);
        }
        if c == b'u' {
            let (unit, next) = self.hex4(at)?;
            let ch = if (0xD800..0xDC00).contains(&unit) {
                // A high surrogate must be followed by `\u` and a low one.
                let low = if b.get(next) == Some(&b'\\') && b.get(next + 1) == Some(&b'u') {
                    Some(self.hex4(next)?)
                } else {
                    None
                };
                match low {
                    Some((lo, after)) if (0xDC00..0xE000).contains(&lo) => {
                        let cp = 0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        return Ok(after);
                    }
                    _ => None,
                }
            } else {
                char::from_u32(unit)
            };
            return match ch {
                Some(ch) => {
                    out.push(ch);
                    Ok(next)
                }
                None => Err(Error::new(
                    format!("invalid \\u escape: U+{unit:04X} is a lone surrogate"),
                    Span::new(at, next),
                )),
            };
        }
        // As libucl: an unknown escape stands for the character itself.
        let end = self.next_char_end(at + 1);
        out.push_str(&self.src[at + 1..end]);
        Ok(end)
    }

    fn hex4(&self, at: usize) -> Result<(u32, usize), Error> {
        let digits = self.bytes.get(at + 2..at + 6);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_hexdigit) => {
                let text = std::str::from_utf8(d).unwrap_or("0");
                Ok((u32::from_str_radix(text, 16).unwrap_or(0), at + 6))
            }
            _ => Err(Error::new(
                "invalid \\u escape: expected four hex digits after \\u",
                Span::new(at, (at + 2).min(self.bytes.len())),
            )),
        }
    }

    /// A single-quoted string; the cursor is at the opening quote. As libucl: `\'` is a
    /// quote, a backslash before a newline joins the lines, other backslashes stay.
    pub(crate) fn single_quoted(&mut self) -> Result<(Cow<'a, str>, Span), Error> {
        let open = self.pos;
        let b = self.bytes;
        let mut i = open + 1;
        let mut out: Option<String> = None;
        let mut run = i;
        while i < b.len() {
            match b[i] {
                b'\'' => {
                    self.pos = i + 1;
                    let text = match out {
                        Some(mut s) => {
                            s.push_str(&self.src[run..i]);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(&self.src[open + 1..i]),
                    };
                    return Ok((text, Span::new(open, i + 1)));
                }
                b'\\' => {
                    let s = out.get_or_insert_with(String::new);
                    s.push_str(&self.src[run..i]);
                    match b.get(i + 1) {
                        Some(b'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some(b'\n') => i += 2,
                        Some(b'\r') if b.get(i + 2) == Some(&b'\n') => i += 3,
                        Some(_) => {
                            let end = self.next_char_end(i + 1);
                            s.push_str(&self.src[i..end]);
                            i = end;
                        }
                        None => break,
                    }
                    run = i;
                }
                _ => i += 1,
            }
        }
        Err(self.unterminated(open, '\''))
    }

    /// A heredoc `<<TERM` (uppercase letters, then a newline) if one starts here.
    /// The text runs up to a line that is exactly `TERM` (optionally followed by `;` or
    /// `,`); the newline before that line is not part of it.
    pub(crate) fn heredoc(&mut self) -> Result<Option<(Cow<'a, str>, Span)>, Error> {
        let b = self.bytes;
        let open = self.pos;
        let mut i = open + 2;
        while i < b.len() && b[i].is_ascii_uppercase() {
            i += 1;
        }
        let term = &b[open + 2..i];
        if term.is_empty() {
            return Ok(None);
        }
        if b.get(i) == Some(&b'\r') {
            i += 1;
        }
        if b.get(i) != Some(&b'\n') {
            return Ok(None);
        }
        let body_start = i + 1;
        let mut line = body_start;
        loop {
            if b[line..].starts_with(term) {
                let after = line + term.len();
                let ends = matches!(
                    b.get(after),
                    None | Some(b'\n' | b'\r' | b';' | b',' | b'}')
                );
                if ends {
                    let mut body_end = line.saturating_sub(1).max(body_start);
                    if body_end > body_start && b[body_end - 1] == b'\r' {
                        body_end -= 1;
                    }
                    self.pos = after;
                    let text = Cow::Borrowed(&self.src[body_start..body_end]);
                    return Ok(Some((text, Span::new(open, after))));
                }
            }
            match b[line..].iter().position(|&c| c == b'\n') {
                Some(n) => line += n + 1,
                None => break,
            }
        }
        let name = String::from_utf8_lossy(term);
        Err(Error::new(
            format!(
                "unterminated heredoc: expected a line '{name}' to close the text opened at {}",
                self.line_col(open)
            ),
            Span::new(open, i),
        ))
    }
}

/// Decodes JSON escapes in an unquoted atom (libucl unescapes those too).
pub(crate) fn unescape_atom(cur: &Cursor<'_>, start: usize, end: usize) -> Result<String, Error> {
    let b = cur.bytes;
    let mut out = String::with_capacity(end - start);
    let mut run = start;
    let mut i = start;
    while i < end {
        if b[i] == b'\\' && i + 1 < end {
            out.push_str(&cur.src[run..i]);
            // Trailing blanks were trimmed off the atom, so an escaped final blank
            // may reach past `end`.
            i = cur.escape(i, &mut out)?.min(end);
            run = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&cur.src[run..end]);
    Ok(out)
}
