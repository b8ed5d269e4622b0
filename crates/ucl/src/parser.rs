//! The grammar: documents, objects, entries, arrays and scalar values.

use std::borrow::Cow;

use crate::frame::{take_top, Entries, Frame};
use crate::number::parse_number;
use crate::scan::{continues_key, is_atom_stop, is_key_start, Cursor};
use crate::strings::unescape_atom;
use crate::{Error, Key, Kind, Name, Span, Value};

/// How deeply objects and arrays may nest before the parser gives up (instead of
/// exhausting the stack).
pub const MAX_DEPTH: usize = 256;

pub(crate) struct Parser<'a> {
    cur: Cursor<'a>,
    depth: usize,
    /// The end of the last multi-part key found by look-ahead (`jail "a" {`), so that
    /// each part is not scanned again.
    multipart_until: usize,
    /// Entries of all open fresh objects (see [`Frame`]).
    scratch: Entries<'a>,
    /// Items of all open arrays, likewise: each array gets one exact allocation.
    items: Vec<Value<'a>>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut cur = Cursor::new(src);
        if src.starts_with('\u{feff}') {
            cur.pos = 3;
        }
        Parser {
            cur,
            depth: 0,
            multipart_until: 0,
            scratch: Vec::new(),
            items: Vec::new(),
        }
    }

    pub(crate) fn document(mut self) -> Result<Value<'a>, Error> {
        self.cur.skip_space()?;
        let value = match self.cur.peek() {
            Some(b'{') => self.braced_object()?,
            Some(b'[') => self.array()?,
            _ => {
                let mut frame = Frame::new(&self.scratch);
                self.object_body(&mut frame, None)?;
                let span = Span::new(0, self.cur.src.len());
                return Ok(frame.into_value(&mut self.scratch, span));
            }
        };
        self.cur.skip_space()?;
        if !self.cur.at_eof() {
            return Err(self.cur.error_here(format!(
                "unexpected {} after the end of the top-level value",
                self.cur.found()
            )));
        }
        Ok(value)
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.cur.error_here(format!(
                "objects and arrays nest deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// `{ ... }` where a value is expected (in an array, or at the top).
    fn braced_object(&mut self) -> Result<Value<'a>, Error> {
        let open = self.cur.pos;
        self.enter()?;
        self.cur.pos += 1;
        let mut frame = Frame::new(&self.scratch);
        self.object_body(&mut frame, Some(open))?;
        self.leave();
        let span = Span::new(open, self.cur.pos);
        Ok(frame.into_value(&mut self.scratch, span))
    }

    /// Entries up to the closing `}` (consumed) or, at the top level, the end.
    fn object_body(&mut self, frame: &mut Frame<'a>, open: Option<usize>) -> Result<(), Error> {
        loop {
            self.cur.skip_space()?;
            match self.cur.peek() {
                None => {
                    return match open {
                        None => Ok(()),
                        Some(o) => Err(self.cur.error_here(format!(
                            "expected '}}' to close the object opened at {}, found the end of the input",
                            self.cur.line_col(o)
                        ))),
                    }
                }
                Some(b'}') => {
                    if open.is_none() {
                        return Err(self
                            .cur
                            .error_here("unexpected '}': there is no open object to close"));
                    }
                    self.cur.pos += 1;
                    return Ok(());
                }
                Some(b';' | b',') => self.cur.pos += 1,
                Some(b']') => {
                    let msg = match open {
                        Some(o) => format!(
                            "unexpected ']' inside the object opened at {} (expected a key or '}}')",
                            self.cur.line_col(o)
                        ),
                        None => "unexpected ']': there is no open array to close".to_string(),
                    };
                    return Err(self.cur.error_here(msg));
                }
                Some(_) => {
                    let container = self.entry(frame)?;
                    self.after_value(container)?;
                }
            }
        }
    }

    /// After a value: a separator, a closing bracket, a comment or the end must follow
    /// (nothing is needed after `}` or `]`).
    fn after_value(&mut self, container: bool) -> Result<(), Error> {
        self.cur.skip_blanks();
        match self.cur.peek() {
            None | Some(b'\n' | b'\r' | b';' | b',' | b'}' | b']') => Ok(()),
            Some(b'#' | b'/') if self.cur.at_comment() => Ok(()),
            _ if container => Ok(()),
            _ => Err(self.cur.error_here(format!(
                "expected ';', ',' or a newline after the value, found {}",
                self.cur.found()
            ))),
        }
    }

    /// One `key [=|:] value` (or `key key2 ... { }`). Returns whether the value was an
    /// object or array.
    fn entry(&mut self, frame: &mut Frame<'a>) -> Result<bool, Error> {
        let key = self.key()?;
        self.cur.skip_space()?;
        let mut separator = false;
        if let Some(b'=' | b':') = self.cur.peek() {
            self.cur.pos += 1;
            separator = true;
            self.cur.skip_space()?;
        }
        match self.cur.peek() {
            Some(b'{') => {
                let open = self.cur.pos;
                self.enter()?;
                self.cur.pos += 1;
                let mut child = frame.open_child(&mut self.scratch, &key);
                self.object_body(&mut child.frame, Some(open))?;
                let span = Span::new(open, self.cur.pos);
                frame.close_child(&mut self.scratch, key, child, span);
                self.leave();
                Ok(true)
            }
            Some(b'[') => {
                let value = self.array()?;
                frame.insert(&mut self.scratch, key, value);
                Ok(true)
            }
            None => Err(self.cur.error_here(format!(
                "expected a value for key '{}', found the end of the input",
                key.name
            ))),
            Some(_) if !separator && self.multipart_ahead() => {
                // `jail "name" { }` nests as `jail { name { } }`.
                self.enter()?;
                let start = self.cur.pos;
                let mut child = frame.open_child(&mut self.scratch, &key);
                self.entry(&mut child.frame)?;
                let span = Span::new(start, self.cur.pos);
                frame.close_child(&mut self.scratch, key, child, span);
                self.leave();
                Ok(true)
            }
            Some(_) => {
                let value = self.scalar(Some(&key.name))?;
                frame.insert(&mut self.scratch, key, value);
                Ok(false)
            }
        }
    }

    fn key(&mut self) -> Result<Key<'a>, Error> {
        let start = self.cur.pos;
        let name = match self.cur.peek() {
            Some(b'"') => name(self.cur.double_quoted()?.0),
            Some(b'\'') => name(self.cur.single_quoted()?.0),
            Some(c) if is_key_start(c) => {
                let b = self.cur.bytes;
                let mut i = start + 1;
                while i < b.len() && continues_key(b, start, i) {
                    i += 1;
                }
                self.cur.pos = i;
                let name = &self.cur.src[start..i];
                match b.get(i) {
                    None
                    | Some(
                        b' ' | b'\t' | b'\n' | b'\r' | b'=' | b':' | b'{' | b'[' | b'"' | b'\''
                        | b';' | b',' | b'}' | b'#',
                    ) => {}
                    Some(b'/') if self.cur.at_comment() => {}
                    Some(_) => {
                        return Err(self.cur.error_here(format!(
                            "invalid character {} in key '{name}' (quote the key to use it)",
                            self.cur.found()
                        )))
                    }
                }
                Name::borrowed(name)
            }
            Some(b'.') => {
                return Err(self
                    .cur
                    .error_here("macros such as '.include' are not supported"))
            }
            _ => {
                return Err(self
                    .cur
                    .error_here(format!("expected a key, found {}", self.cur.found())))
            }
        };
        let span = Span::new(start, self.cur.pos);
        if name.is_empty() {
            return Err(Error::new("empty keys are not allowed", span));
        }
        Ok(Key { name, span })
    }

    /// Whether the cursor is at the second part of a multi-part key: key tokens on this
    /// line followed by `{` or `[`.
    fn multipart_ahead(&mut self) -> bool {
        if self.cur.pos < self.multipart_until {
            return true;
        }
        let b = self.cur.bytes;
        let mut i = self.cur.pos;
        let mut tokens = 0;
        loop {
            match b.get(i) {
                Some(b'{' | b'[') if tokens > 0 => {
                    self.multipart_until = i;
                    return true;
                }
                Some(&q @ (b'"' | b'\'')) => {
                    i += 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => return false,
                            Some(b'\\') => i += 2,
                            Some(&c) if c == q => break,
                            Some(_) => i += 1,
                        }
                    }
                    i += 1;
                }
                Some(b'/') if matches!(b.get(i + 1), Some(b'/' | b'*')) => return false,
                Some(&c) if is_key_start(c) => {
                    let start = i;
                    i += 1;
                    while i < b.len() && continues_key(b, start, i) {
                        i += 1;
                    }
                }
                _ => return false,
            }
            tokens += 1;
            while let Some(b' ' | b'\t') = b.get(i) {
                i += 1;
            }
        }
    }

    fn array(&mut self) -> Result<Value<'a>, Error> {
        let open = self.cur.pos;
        self.enter()?;
        self.cur.pos += 1;
        let base = self.items.len();
        loop {
            self.cur.skip_space()?;
            match self.cur.peek() {
                None => {
                    return Err(self.cur.error_here(format!(
                        "expected ']' to close the array opened at {}, found the end of the input",
                        self.cur.line_col(open)
                    )))
                }
                Some(b']') => {
                    self.cur.pos += 1;
                    break;
                }
                Some(b',' | b';') => self.cur.pos += 1,
                Some(b'}') => {
                    return Err(self.cur.error_here(format!(
                        "expected ']' to close the array opened at {}, found '}}'",
                        self.cur.line_col(open)
                    )))
                }
                Some(b'{') => {
                    let v = self.braced_object()?;
                    self.items.push(v);
                    self.after_value(true)?;
                }
                Some(b'[') => {
                    let v = self.array()?;
                    self.items.push(v);
                    self.after_value(true)?;
                }
                Some(_) => {
                    let v = self.scalar(None)?;
                    self.items.push(v);
                    self.after_value(false)?;
                }
            }
        }
        self.leave();
        let items = take_top(&mut self.items, base);
        Ok(Value {
            kind: Kind::Array(items),
            span: Span::new(open, self.cur.pos),
        })
    }

    /// A string, number, boolean or null.
    fn scalar(&mut self, key: Option<&str>) -> Result<Value<'a>, Error> {
        let (text, span) = match self.cur.peek() {
            Some(b'"') => self.cur.double_quoted()?,
            Some(b'\'') => self.cur.single_quoted()?,
            Some(b'<') if self.cur.peek_at(1) == Some(b'<') => match self.cur.heredoc()? {
                Some(found) => found,
                None => return self.atom(key),
            },
            _ => return self.atom(key),
        };
        Ok(Value {
            kind: Kind::String(text),
            span,
        })
    }

    /// An unquoted value: up to a separator, a comment or a closing bracket.
    fn atom(&mut self, key: Option<&str>) -> Result<Value<'a>, Error> {
        let b = self.cur.bytes;
        let start = self.cur.pos;
        let mut i = start;
        let (mut curly, mut square) = (0usize, 0usize);
        let mut escaped = false;
        while i < b.len() {
            let c = b[i];
            if !is_atom_stop(c) {
                i += 1;
                continue;
            }
            match c {
                b'{' => curly += 1,
                b'[' => square += 1,
                b'}' if curly > 0 => curly -= 1,
                b']' if square > 0 => square -= 1,
                b'\\' => {
                    escaped = true;
                    i = (i + 2).min(b.len());
                    continue;
                }
                b'/' => match b.get(i + 1) {
                    Some(b'*') => break,
                    Some(b'/') if i == start || matches!(b[i - 1], b' ' | b'\t') => break,
                    _ => {}
                },
                _ => break,
            }
            i += 1;
        }
        self.cur.pos = i;
        let mut end = i;
        while end > start && matches!(b[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let span = Span::new(start, end);
        if end == start {
            self.cur.pos = start;
            let what = match key {
                Some(k) => format!("expected a value for key '{k}', found {}", self.cur.found()),
                None => format!("expected a value, found {}", self.cur.found()),
            };
            return Err(self.cur.error_here(what));
        }
        let text = &self.cur.src[start..end];
        let kind = if text == "null" {
            Kind::Null
        } else if escaped {
            Kind::String(Cow::Owned(unescape_atom(&self.cur, start, end)?))
        } else if let Some(number) = parse_number(text) {
            number.map_err(|_| Error::new(format!("number out of range: {text}"), span))?
        } else {
            boolean(text).map_or_else(|| Kind::String(Cow::Borrowed(text)), Kind::Bool)
        };
        Ok(Value { kind, span })
    }
}

fn name(text: Cow<'_, str>) -> Name<'_> {
    match text {
        Cow::Borrowed(s) => Name::borrowed(s),
        Cow::Owned(s) => Name::owned(s),
    }
}

/// libucl's booleans, in any letter case (`null` is lowercase only, as in libucl).
fn boolean(text: &str) -> Option<bool> {
    let is = |w: &str| text.eq_ignore_ascii_case(w);
    if text.len() > 5 {
        None
    } else if is("true") || is("yes") || is("on") {
        Some(true)
    } else if is("false") || is("no") || is("off") {
        Some(false)
    } else {
        None
    }
}
