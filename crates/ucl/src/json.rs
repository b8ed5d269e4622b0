//! JSON output, as libucl's JSON emitter writes it: keys in order, implicit arrays as
//! arrays, times as numbers of seconds.

use std::fmt::Write;

use crate::{Kind, Value};

impl Value<'_> {
    /// The value as indented JSON (two spaces), keys in the order they appeared.
    pub fn to_json(&self) -> String {
        // About the size of the source text it came from, to start with.
        let mut out = String::with_capacity(self.span.len() + 64);
        write_value(&mut out, self, Some(0));
        out
    }

    /// The value as JSON on one line.
    pub fn to_json_compact(&self) -> String {
        let mut out = String::with_capacity(self.span.len() + 64);
        write_value(&mut out, self, None);
        out
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

fn write_value(out: &mut String, v: &Value<'_>, indent: Option<usize>) {
    let inner = indent.map(|n| n + 1);
    match &v.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        // `{:?}` keeps a fraction or an exponent ("1.0", "1e-7"): valid JSON numbers.
        Kind::Float(f) | Kind::Time(f) => {
            let _ = write!(out, "{f:?}");
        }
        Kind::String(s) => write_string(out, s),
        Kind::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write_value(out, item, inner);
            }
            newline(out, indent);
            out.push(']');
        }
        Kind::Object(obj) => {
            if obj.entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in obj.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write_string(out, &k.name);
                out.push_str(if indent.is_some() { ": " } else { ":" });
                write_value(out, item, inner);
            }
            newline(out, indent);
            out.push('}');
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
