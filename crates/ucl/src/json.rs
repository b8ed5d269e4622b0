//! JSON output, as libucl's JSON emitter writes it: keys in order, implicit arrays as
//! arrays, times as numbers of seconds.

use std::fmt::Write;
use std::io;

use crate::{Kind, Value};

impl Value<'_> {
    /// The value as indented JSON (two spaces), keys in the order they appeared.
    pub fn to_json(&self) -> String {
        // About the size of the source text it came from, to start with.
        let mut out = Out::new(self.span.len() + 64, None);
        write_value(&mut out, self, Some(0));
        out.buf
    }

    /// The value as JSON on one line.
    pub fn to_json_compact(&self) -> String {
        let mut out = Out::new(self.span.len() + 64, None);
        write_value(&mut out, self, None);
        out.buf
    }

    /// Writes [`Value::to_json`]'s text to `w` as it goes, without holding all of it.
    pub fn write_json(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let mut out = Out::new(2 * SPILL_AT, Some(w));
        write_value(&mut out, self, Some(0));
        out.spill(0);
        match out.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// How much text [`Value::write_json`] gathers before writing it out.
const SPILL_AT: usize = 64 << 10;

/// The text being written, and where it goes when it is written out as it grows.
struct Out<'w> {
    buf: String,
    sink: Option<&'w mut dyn io::Write>,
    /// The first write error; nothing more is written after it.
    err: Option<io::Error>,
}

impl<'w> Out<'w> {
    fn new(capacity: usize, sink: Option<&'w mut dyn io::Write>) -> Self {
        Out {
            buf: String::with_capacity(capacity),
            sink,
            err: None,
        }
    }

    /// Writes the text out once there is at least `at` bytes of it (for a sink).
    fn spill(&mut self, at: usize) {
        if self.buf.len() < at.max(1) {
            return;
        }
        if let Some(sink) = &mut self.sink {
            if self.err.is_none() {
                if let Err(e) = sink.write_all(self.buf.as_bytes()) {
                    self.err = Some(e);
                }
            }
            self.buf.clear();
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>) {
    const SPACES: &str = "                                                                ";
    if let Some(n) = indent {
        out.push('\n');
        let mut width = 2 * n;
        while width > 0 {
            let step = width.min(SPACES.len());
            out.push_str(&SPACES[..step]);
            width -= step;
        }
    }
}

fn write_value(out: &mut Out<'_>, v: &Value<'_>, indent: Option<usize>) {
    let inner = indent.map(|n| n + 1);
    match &v.kind {
        Kind::Null => out.buf.push_str("null"),
        Kind::Bool(b) => out.buf.push_str(if *b { "true" } else { "false" }),
        Kind::Int(i) => out.buf.push_str(itoa::Buffer::new().format(*i)),
        // `{:?}` keeps a fraction or an exponent ("1.0", "1e-7"): valid JSON numbers.
        Kind::Float(f) | Kind::Time(f) => {
            let _ = write!(out.buf, "{f:?}");
        }
        Kind::String(s) => write_string(&mut out.buf, s),
        Kind::Array(items) => {
            if items.is_empty() {
                out.buf.push_str("[]");
                return;
            }
            out.buf.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.buf.push(',');
                }
                newline(&mut out.buf, inner);
                write_value(out, item, inner);
                out.spill(SPILL_AT);
            }
            newline(&mut out.buf, indent);
            out.buf.push(']');
        }
        Kind::Object(obj) => {
            if obj.entries.is_empty() {
                out.buf.push_str("{}");
                return;
            }
            out.buf.push('{');
            for (i, (k, item)) in obj.entries.iter().enumerate() {
                if i > 0 {
                    out.buf.push(',');
                }
                newline(&mut out.buf, inner);
                write_string(&mut out.buf, &k.name);
                out.buf.push_str(if indent.is_some() { ": " } else { ":" });
                write_value(out, item, inner);
                out.spill(SPILL_AT);
            }
            newline(&mut out.buf, indent);
            out.buf.push('}');
        }
    }
}

/// Bytes that need an escape in a JSON string: controls, `"` and `\\` (everything else,
/// multi-byte characters included, is copied as is).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[c as usize] {
            continue;
        }
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[run..i]);
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}
