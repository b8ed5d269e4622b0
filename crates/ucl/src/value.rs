use std::borrow::Cow;
use std::ops::Range;

use crate::Name;

/// A byte range `start..end` of the source text.
///
/// Offsets are stored as `u32` (every value in the tree carries one, so this keeps
/// the tree small); [`crate::parse`] refuses inputs longer than [`crate::MAX_INPUT`]
/// bytes, so every span it produces fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span `start..end`.
    ///
    /// # Panics
    /// If `start` or `end` is above [`crate::MAX_INPUT`] (`u32::MAX`): no document that
    /// [`crate::parse`] accepts has such offsets.
    pub fn new(start: usize, end: usize) -> Self {
        let offset = |at: usize| {
            u32::try_from(at).unwrap_or_else(|_| {
                panic!(
                    "ucl::Span offset {at} is above the {} byte input limit",
                    crate::MAX_INPUT
                )
            })
        };
        Span {
            start: offset(start),
            end: offset(end),
        }
    }

    /// The byte offset where the span starts.
    pub fn start(self) -> usize {
        self.start as usize
    }

    /// The byte offset just past the span's end.
    pub fn end(self) -> usize {
        self.end as usize
    }

    /// The span as a range, for slicing the source: `&src[span.range()]`.
    pub fn range(self) -> Range<usize> {
        self.start()..self.end()
    }

    /// The length in bytes (zero if the span is empty).
    pub fn len(self) -> usize {
        self.end().saturating_sub(self.start())
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A parsed value and where it came from.
///
/// For an implicit array (a key given more than once) the span covers the first value;
/// each element keeps its own span.
///
/// Strings and keys borrow from the source text where they are written without
/// escapes (most are), so parsing copies no text; [`Value::into_owned`] detaches a
/// tree from the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Value<'a> {
    pub kind: Kind<'a>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A time value (`10s`, `5min`) in seconds, as libucl's `UCL_TIME`.
    Time(f64),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// An object key and where it was written (the first time, for merged keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    pub name: Name<'a>,
    pub span: Span,
}

impl Key<'_> {
    /// The key with its name copied out of the source.
    pub fn into_owned(self) -> Key<'static> {
        Key {
            name: self.name.into_owned(),
            span: self.span,
        }
    }
}

/// An object: keys in the order they first appeared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a> {
    pub entries: Vec<(Key<'a>, Value<'a>)>,
}

impl<'a> Object<'a> {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    /// The key and value of `name`, if present.
    pub fn get_entry(&self, name: &str) -> Option<(&Key<'a>, &Value<'a>)> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, v)| (k, v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key<'a>, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> Value<'a> {
    /// The tree with every string copied out of the source, so that it may outlive it.
    pub fn into_owned(self) -> Value<'static> {
        let kind = match self.kind {
            Kind::Null => Kind::Null,
            Kind::Bool(b) => Kind::Bool(b),
            Kind::Int(i) => Kind::Int(i),
            Kind::Float(f) => Kind::Float(f),
            Kind::Time(t) => Kind::Time(t),
            Kind::String(s) => Kind::String(Cow::Owned(s.into_owned())),
            Kind::Array(items) => Kind::Array(items.into_iter().map(Value::into_owned).collect()),
            Kind::Object(o) => Kind::Object(Object {
                entries: o
                    .entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            }),
        };
        Value {
            kind,
            span: self.span,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match &self.kind {
            Kind::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages ("expected a string, found an object").
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Time(_) => "a time",
            Kind::String(_) => "a string",
            Kind::Array(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }
}
