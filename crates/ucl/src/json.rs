//! JSON output, as libucl's JSON emitter writes it: keys in order, implicit arrays as
//! arrays, times as numbers of seconds.

use std::fmt::Write;

use crate::{Kind, Value};

impl Value<'_> {
    /// The value as indented JSON (two spaces), keys in the order they appeared.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, Some(0));
        out
    }

    /// The value as JSON on one line.
    pub fn to_json_compact(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, None);
        out
    }
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(n) = indent {
        out.push('\n');
        for _ in 0..n {
            out.push_str("  ");
        }
    }
}

fn write_value(out: &mut String, v: &Value<'_>, indent: Option<usize>) {
    let inner = indent.map(|n| n + 1);
    match &v.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Int(i) => {
            let _ = write!(out, "{i}");
        }
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

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        run = i + c.len_utf8();
    }
    out.push_str(&s[run..]);
    out.push('"');
}
