use std::ops::Range;

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
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A time value (`10s`, `5min`) in seconds, as libucl's `UCL_TIME`.
    Time(f64),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

/// An object key and where it was written (the first time, for merged keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// An object: keys in the order they first appeared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    pub entries: Vec<(Key, Value)>,
}

impl Object {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    /// The key and value of `name`, if present.
    pub fn get_entry(&self, name: &str) -> Option<(&Key, &Value)> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, v)| (k, v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Value {
    pub fn as_object(&self) -> Option<&Object> {
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
