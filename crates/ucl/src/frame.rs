//! Objects under construction: duplicate keys, implicit arrays, reopened sections.
//!
//! libucl's rules, as its documentation states them:
//! - a key given twice with plain values becomes an *implicit array* of the values;
//! - a key whose existing value is an object, given again with an object
//!   (`jail "a" {}` then `jail "b" {}`), merges into that one object.
//!
//! Merging is done by *reopening*: the existing object's entries are moved back into a
//! frame and parsing continues into it, so a file with 40 000 `jail "name" {}` blocks
//! costs a hash lookup per block, not a copy of the growing `jail` object.

use std::collections::HashMap;

use crate::{Key, Kind, Object, Span, Value};

/// Objects with at least this many keys get a hash index for duplicate detection.
const INDEX_FROM: usize = 12;

/// Lookup tables kept for large objects, so that reopening them stays cheap.
#[derive(Default)]
pub(crate) struct Index {
    names: Option<HashMap<Box<str>, usize>>,
    /// Indexes of child objects (by entry position) that are large or have large children.
    children: HashMap<usize, Index>,
}

impl Index {
    fn is_empty(&self) -> bool {
        self.names.is_none() && self.children.is_empty()
    }
}

/// An object being filled.
pub(crate) struct Frame {
    pub(crate) entries: Vec<(Key, Value)>,
    index: Index,
}

/// Whether `v` is an implicit array (built from a repeated key), not one written `[...]`.
/// An implicit array carries its first element's span; a written one starts at `[`.
fn is_implicit_array(v: &Value) -> bool {
    matches!(&v.kind, Kind::Array(a) if a.first().is_some_and(|f| f.span == v.span))
}

impl Frame {
    pub(crate) fn new() -> Self {
        Frame {
            entries: Vec::new(),
            index: Index::default(),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        match &self.index.names {
            Some(names) => names.get(name).copied(),
            None => self.entries.iter().position(|(k, _)| k.name == name),
        }
    }

    fn push(&mut self, key: Key, value: Value) {
        let at = self.entries.len();
        if let Some(names) = &mut self.index.names {
            names.insert(key.name.as_str().into(), at);
        }
        self.entries.push((key, value));
        if self.index.names.is_none() && self.entries.len() >= INDEX_FROM {
            let names = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.as_str().into(), i))
                .collect();
            self.index.names = Some(names);
        }
    }

    /// Adds `key = value`, turning a repeated key into an implicit array.
    pub(crate) fn insert(&mut self, key: Key, value: Value) {
        let Some(at) = self.find(&key.name) else {
            self.push(key, value);
            return;
        };
        self.index.children.remove(&at);
        let slot = &mut self.entries[at].1;
        if is_implicit_array(slot) {
            if let Kind::Array(items) = &mut slot.kind {
                items.push(value);
            }
            return;
        }
        let first = std::mem::replace(
            slot,
            Value {
                kind: Kind::Null,
                span: Span::default(),
            },
        );
        *slot = Value {
            span: first.span,
            kind: Kind::Array(vec![first, value]),
        };
    }

    /// Opens the object at `key` for more entries: the existing object if `key` already
    /// holds one (libucl merges sections), or a new one.
    pub(crate) fn open_child(&mut self, key: &Key) -> Child {
        if let Some(at) = self.find(&key.name) {
            let slot = &mut self.entries[at].1;
            if let Kind::Object(obj) = &mut slot.kind {
                let entries = std::mem::take(&mut obj.entries);
                let index = self.index.children.remove(&at).unwrap_or_default();
                return Child {
                    frame: Frame { entries, index },
                    reopened: Some(at),
                };
            }
        }
        Child {
            frame: Frame::new(),
            reopened: None,
        }
    }

    /// Puts a child opened with [`Frame::open_child`] back, as the value of `key`.
    pub(crate) fn close_child(&mut self, key: Key, child: Child, span: Span) {
        let Child {
            mut frame,
            reopened,
        } = child;
        let index = std::mem::take(&mut frame.index);
        match reopened {
            Some(at) => {
                let slot = &mut self.entries[at].1;
                // The object keeps the span of its first appearance.
                if let Kind::Object(obj) = &mut slot.kind {
                    obj.entries = frame.entries;
                }
                if !index.is_empty() {
                    self.index.children.insert(at, index);
                }
            }
            None => {
                let at = self.entries.len();
                let value = frame.into_value(span);
                let is_new = self.find(&key.name).is_none();
                self.insert(key, value);
                if is_new && !index.is_empty() {
                    self.index.children.insert(at, index);
                }
            }
        }
    }

    pub(crate) fn into_value(self, span: Span) -> Value {
        let mut entries = self.entries;
        entries.shrink_to_fit();
        Value {
            kind: Kind::Object(Object { entries }),
            span,
        }
    }
}

/// An object opened for filling, and where it goes back.
pub(crate) struct Child {
    pub(crate) frame: Frame,
    reopened: Option<usize>,
}
