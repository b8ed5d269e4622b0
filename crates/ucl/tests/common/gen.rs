//! A generator of UCL configs in random spellings, with the data they mean.

use proptest::prelude::*;
use serde_json::{Map, Number, Value as Json};

/// The parsed value as plain JSON data (spans dropped).
pub fn to_model(v: &ucl::Value) -> Json {
    match &v.kind {
        ucl::Kind::Null => Json::Null,
        ucl::Kind::Bool(b) => Json::Bool(*b),
        ucl::Kind::Int(i) => Json::Number((*i).into()),
        ucl::Kind::Float(f) | ucl::Kind::Time(f) => {
            Json::Number(Number::from_f64(*f).expect("parser yields finite floats"))
        }
        ucl::Kind::String(s) => Json::String(s.to_string()),
        ucl::Kind::Array(a) => Json::Array(a.iter().map(to_model).collect()),
        ucl::Kind::Object(o) => Json::Object(
            o.iter()
                .map(|(k, v)| (k.name.to_string(), to_model(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// A config written in UCL with random choices of syntax, and the data it means.
#[derive(Debug, Clone)]
pub enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Obj(Vec<(String, Node)>),
    List(Vec<Node>),
}

pub fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Node::Str),
        "[a-z/][a-z0-9./_-]{0,10}".prop_map(Node::Str),
        any::<i64>().prop_map(Node::Int),
        any::<bool>().prop_map(Node::Bool),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::List),
            prop::collection::btree_map("[a-z_][a-z0-9_.-]{0,6}", inner, 0..5)
                .prop_map(|m| Node::Obj(m.into_iter().collect())),
        ]
    })
}

pub fn model(n: &Node) -> Json {
    match n {
        Node::Str(s) => Json::String(s.clone()),
        Node::Int(i) => Json::Number((*i).into()),
        Node::Bool(b) => Json::Bool(*b),
        Node::List(items) => Json::Array(items.iter().map(model).collect()),
        Node::Obj(entries) => {
            Json::Object(entries.iter().map(|(k, v)| (k.clone(), model(v))).collect())
        }
    }
}

/// Random syntax choices, drawn from a seed.
pub struct Style {
    seed: u64,
    /// Only syntax that libucl 0.7.3 reads the same way (no single quotes, no `//`).
    libucl: bool,
}

impl Style {
    pub fn new(seed: u64, libucl: bool) -> Self {
        Style { seed, libucl }
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.seed >> 33) % n
    }
}

fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'/')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"./_-".contains(&c))
        && !matches!(s, "true" | "yes" | "on" | "false" | "no" | "off" | "null")
        && !s.contains("//")
}

fn render_scalar(n: &Node, st: &mut Style, out: &mut String) {
    match n {
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::Bool(b) => {
            let words = if *b {
                ["true", "yes", "on"]
            } else {
                ["false", "no", "off"]
            };
            out.push_str(words[st.pick(3) as usize]);
        }
        Node::Str(s) => match st.pick(4) {
            0 if is_plain_word(s) => out.push_str(s),
            1 if !st.libucl && !s.contains(['\'', '\\']) => {
                out.push('\'');
                out.push_str(s);
                out.push('\'');
            }
            2 if !s.is_empty()
                && !s.contains(['\r', '\u{feff}'])
                && !s.lines().any(|l| l.starts_with("EOT"))
                && !s.ends_with('\n') =>
            {
                out.push_str("<<EOT\n");
                out.push_str(s);
                out.push_str("\nEOT\n");
            }
            _ => out.push_str(&serde_json::to_string(s).unwrap()),
        },
        Node::List(_) | Node::Obj(_) => unreachable!(),
    }
}

fn render_value(n: &Node, st: &mut Style, indent: usize, out: &mut String) {
    match n {
        Node::Obj(entries) => {
            out.push_str("{\n");
            render_entries(entries, st, indent + 1, out);
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
        Node::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str([",", ", ", ",\n", ";", "\n"][st.pick(5) as usize]);
                }
                // (libucl 0.7.3 misreads a value right after a comment in an array.)
                if st.pick(6) == 0 && !st.libucl {
                    out.push_str(" /* c */ ");
                }
                render_value(item, st, indent + 1, out);
            }
            if st.pick(3) == 0 && !items.is_empty() {
                out.push(',');
            }
            out.push(']');
        }
        _ => render_scalar(n, st, out),
    }
}

fn render_entries(entries: &[(String, Node)], st: &mut Style, indent: usize, out: &mut String) {
    for (k, v) in entries {
        out.push_str(&"  ".repeat(indent));
        match st.pick(3) {
            0 => out.push_str(k),
            _ if st.libucl => out.push_str(&serde_json::to_string(k).unwrap()),
            1 => out.push_str(&serde_json::to_string(k).unwrap()),
            _ => {
                out.push('\'');
                out.push_str(k);
                out.push('\'');
            }
        }
        let container = matches!(v, Node::Obj(_) | Node::List(_));
        let sep = match st.pick(4) {
            0 if container => " ",
            0 | 1 => " = ",
            2 => ": ",
            _ => "=",
        };
        out.push_str(sep);
        render_value(v, st, indent, out);
        let heredoc = out.ends_with("\nEOT\n");
        match st.pick(5) {
            _ if heredoc => {}
            0 => out.push_str(";\n"),
            1 => out.push_str(",\n"),
            2 => out.push_str(" # note\n"),
            3 if !st.libucl => out.push_str(" // note\n"),
            _ => out.push('\n'),
        }
    }
}

/// A whole document of `entries`, with or without the top-level braces.
pub fn document(entries: &[(String, Node)], st: &mut Style) -> String {
    let mut text = String::new();
    let braces = st.pick(2) == 0;
    if braces {
        text.push_str("{\n");
    }
    render_entries(entries, st, usize::from(braces), &mut text);
    if braces {
        text.push('}');
    }
    text
}
