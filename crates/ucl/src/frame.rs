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
//!
//! New objects collect their entries on one scratch stack shared by all open frames and
//! get an exactly sized vector when they close: one allocation per object, no slack.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use hashbrown::HashTable;

use crate::{Key, Kind, Object, Span, Value};

/// Objects with at least this many keys get a hash index for duplicate detection.
const INDEX_FROM: usize = 12;

pub(crate) type Entries<'a> = Vec<(Key<'a>, Value<'a>)>;

/// FNV-1a: keys come from the user's own config file, and this is much faster than
/// SipHash on short keys.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

fn name_hash(name: &str) -> u64 {
    BuildHasherDefault::<Fnv>::default().hash_one(name)
}

/// Lookup tables kept for large objects, so that reopening them stays cheap.
#[derive(Default)]
pub(crate) struct Index {
    /// Entry positions by key name. The names stay in the entries (no copies), so a
    /// key costs five bytes here. `u32` is enough: an object has fewer entries than
    /// the input has bytes, and [`crate::parse`] refuses inputs over `u32::MAX`.
    names: Option<HashTable<u32>>,
    /// Indexes of child objects (by entry position) that are large or have large children.
    children: FastMap<usize, Index>,
}

impl Index {
    fn is_empty(&self) -> bool {
        self.names.is_none() && self.children.is_empty()
    }
}

/// An object being filled: either a fresh one, whose entries sit on the scratch stack
/// from `start`, or a reopened one, which owns its entries.
pub(crate) struct Frame<'a> {
    owned: Option<Entries<'a>>,
    start: usize,
    index: Index,
}

/// Whether `v` is an implicit array (built from a repeated key), not one written `[...]`.
/// An implicit array carries its first element's span; a written one starts at `[`.
fn is_implicit_array(v: &Value<'_>) -> bool {
    matches!(&v.kind, Kind::Array(a) if a.first().is_some_and(|f| f.span == v.span))
}

impl<'a> Frame<'a> {
    /// A fresh object whose entries will go on top of `scratch`.
    pub(crate) fn new(scratch: &Entries<'a>) -> Self {
        Frame {
            owned: None,
            start: scratch.len(),
            index: Index::default(),
        }
    }

    /// This frame's entries: the vector they live in and where they start in it.
    fn storage<'s>(&'s mut self, scratch: &'s mut Entries<'a>) -> (&'s mut Entries<'a>, usize) {
        match &mut self.owned {
            Some(v) => (v, 0),
            None => (scratch, self.start),
        }
    }

    /// This frame's entries, read-only.
    fn entries<'s>(&'s self, scratch: &'s Entries<'a>) -> &'s [(Key<'a>, Value<'a>)] {
        match &self.owned {
            Some(v) => v,
            None => &scratch[self.start..],
        }
    }

    fn find(&self, scratch: &Entries<'a>, name: &str) -> Option<usize> {
        let entries = self.entries(scratch);
        match &self.index.names {
            Some(names) => names
                .find(name_hash(name), |&i| entries[i as usize].0.name == name)
                .map(|&i| i as usize),
            None => entries.iter().position(|(k, _)| k.name == name),
        }
    }

    fn push(&mut self, scratch: &mut Entries<'a>, key: Key<'a>, value: Value<'a>) {
        let mut index = self.index.names.take();
        let (v, base) = self.storage(scratch);
        if v.len() == v.capacity() {
            // Grow by half, not double: a large reopened object (`jail`, one entry per
            // jail) would otherwise carry up to its own size again in spare room.
            v.reserve_exact(v.len() / 2 + 4);
        }
        v.push((key, value));
        let entries = &v[base..];
        let hash_at = |&i: &u32| name_hash(&entries[i as usize].0.name);
        let last = entries.len() - 1;
        match &mut index {
            Some(names) => {
                names.insert_unique(hash_at(&(last as u32)), last as u32, hash_at);
            }
            None if entries.len() >= INDEX_FROM => {
                let mut names = HashTable::with_capacity(entries.len());
                for i in 0..entries.len() as u32 {
                    names.insert_unique(hash_at(&i), i, hash_at);
                }
                index = Some(names);
            }
            None => {}
        }
        self.index.names = index;
    }

    /// Adds `key = value`, turning a repeated key into an implicit array.
    pub(crate) fn insert(&mut self, scratch: &mut Entries<'a>, key: Key<'a>, value: Value<'a>) {
        let found = self.find(scratch, &key.name);
        self.insert_found(scratch, found, key, value);
    }

    /// [`Frame::insert`] with the key's position already looked up.
    fn insert_found(
        &mut self,
        scratch: &mut Entries<'a>,
        found: Option<usize>,
        key: Key<'a>,
        value: Value<'a>,
    ) {
        let Some(at) = found else {
            self.push(scratch, key, value);
            return;
        };
        self.index.children.remove(&at);
        let (v, base) = self.storage(scratch);
        let slot = &mut v[base + at].1;
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
    pub(crate) fn open_child(&mut self, scratch: &mut Entries<'a>, key: &Key<'a>) -> Child<'a> {
        let found = self.find(scratch, &key.name);
        if let Some(at) = found {
            let index = self.index.children.remove(&at);
            let (v, base) = self.storage(scratch);
            if let Kind::Object(obj) = &mut v[base + at].1.kind {
                let entries = std::mem::take(&mut obj.entries);
                return Child {
                    frame: Frame {
                        owned: Some(entries),
                        start: 0,
                        index: index.unwrap_or_default(),
                    },
                    reopened: Some(at),
                    found,
                };
            }
        }
        Child {
            frame: Frame::new(scratch),
            reopened: None,
            found,
        }
    }

    /// Puts a child opened with [`Frame::open_child`] back, as the value of `key`.
    pub(crate) fn close_child(
        &mut self,
        scratch: &mut Entries<'a>,
        key: Key<'a>,
        child: Child<'a>,
        span: Span,
    ) {
        let Child {
            mut frame,
            reopened,
            found,
        } = child;
        let index = std::mem::take(&mut frame.index);
        match reopened {
            Some(at) => {
                let entries = frame.owned.take().unwrap_or_default();
                let (v, base) = self.storage(scratch);
                // The object keeps the span of its first appearance.
                if let Kind::Object(obj) = &mut v[base + at].1.kind {
                    obj.entries = entries;
                }
                if !index.is_empty() {
                    self.index.children.insert(at, index);
                }
            }
            None => {
                let value = frame.into_value(scratch, span);
                let at = found.unwrap_or_else(|| {
                    let (v, base) = self.storage(scratch);
                    v.len() - base
                });
                self.insert_found(scratch, found, key, value);
                if found.is_none() && !index.is_empty() {
                    self.index.children.insert(at, index);
                }
            }
        }
    }

    /// The finished object. Its entries leave the scratch stack in one exact allocation.
    pub(crate) fn into_value(self, scratch: &mut Entries<'a>, span: Span) -> Value<'a> {
        let entries = match self.owned {
            Some(v) => v,
            None => take_top(scratch, self.start),
        };
        Value {
            kind: Kind::Object(Object { entries }),
            span,
        }
    }
}

/// An object opened for filling, and where it goes back.
///
/// The parent cannot change while the child is open (nothing else is parsed into it, and
/// its entries on the scratch stack lie below the child's), so the key's position found
/// when opening still holds when closing.
pub(crate) struct Child<'a> {
    pub(crate) frame: Frame<'a>,
    reopened: Option<usize>,
    /// Where the key already was in the parent, if it was.
    found: Option<usize>,
}

/// The elements of `stack` from `start` on, moved (one copy) into an exactly sized vector.
/// (`split_off(0)` would hand over the stack's whole allocation instead.)
pub(crate) fn take_top<T>(stack: &mut Vec<T>, start: usize) -> Vec<T> {
    if start == 0 {
        let mut all = Vec::with_capacity(stack.len());
        all.append(stack);
        all
    } else {
        stack.split_off(start)
    }
}
