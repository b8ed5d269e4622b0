//! Key names: borrowed from the source, or owned when the key had escapes, in 16 bytes.
//!
//! A `Cow<str>` takes 24 bytes, and every object entry holds a name: with 16, an entry
//! (key and value) is 64 bytes instead of 72, which keeps a parsed tree within 3× the
//! size of its source text.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// The top bit of `len`: set when `ptr` owns a `Box<str>` of the remaining length.
/// (No string is longer than `isize::MAX` bytes, so the bit is free.)
const OWNED: usize = 1 << (usize::BITS - 1);

/// An object key's name; reads as a `&str`.
pub struct Name<'a> {
    raw: Raw,
    _text: PhantomData<&'a str>,
}

/// The pointer and tagged length. The `Drop` is here, on a type without the lifetime,
/// so that a tree may be dropped in the same scope as its source, as with `Cow`.
struct Raw {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Raw` is a `&str` or a `Box<str>`, both `Send` and `Sync`.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}

impl<'a> Name<'a> {
    /// A name borrowed from the source text.
    pub fn borrowed(s: &'a str) -> Self {
        Name {
            raw: Raw {
                ptr: NonNull::from(s).cast(),
                len: s.len(),
            },
            _text: PhantomData,
        }
    }

    /// A name that owns its text.
    pub fn owned(s: String) -> Self {
        let len = s.len();
        let raw: *mut str = Box::into_raw(s.into_boxed_str());
        Name {
            raw: Raw {
                ptr: NonNull::new(raw.cast::<u8>()).expect("a Box's pointer is not null"),
                len: len | OWNED,
            },
            _text: PhantomData,
        }
    }

    fn is_owned(&self) -> bool {
        self.raw.len & OWNED != 0
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `ptr` and the length came from a `&'a str` that outlives `self`, or
        // from a `Box<str>` that `self` owns until drop: valid UTF-8 of that length.
        unsafe {
            let bytes = std::slice::from_raw_parts(self.raw.ptr.as_ptr(), self.raw.len & !OWNED);
            std::str::from_utf8_unchecked(bytes)
        }
    }

    /// The name with its text copied out of the source (an owned name is moved as is).
    pub fn into_owned(self) -> Name<'static> {
        if !self.is_owned() {
            return Name::owned(self.as_str().to_owned());
        }
        Name {
            raw: self.raw,
            _text: PhantomData,
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if self.len & OWNED != 0 {
            let len = self.len & !OWNED;
            let raw = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len) as *mut str;
            // SAFETY: an owned name's `ptr` and length are those of the `Box<str>` given up
            // by `Box::into_raw` in `Name::owned`, taken back only here, once.
            drop(unsafe { Box::from_raw(raw) });
        }
    }
}

impl Clone for Name<'_> {
    fn clone(&self) -> Self {
        if self.is_owned() {
            Name::owned(self.as_str().to_owned())
        } else {
            Name {
                raw: Raw {
                    ptr: self.raw.ptr,
                    len: self.raw.len,
                },
                _text: PhantomData,
            }
        }
    }
}

impl Deref for Name<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Name<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name<'_> {}

impl PartialEq<str> for Name<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for Name<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<'a> From<&'a str> for Name<'a> {
    fn from(s: &'a str) -> Self {
        Name::borrowed(s)
    }
}

impl From<String> for Name<'_> {
    fn from(s: String) -> Self {
        Name::owned(s)
    }
}

impl From<Name<'_>> for String {
    fn from(n: Name<'_>) -> Self {
        n.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_names_read_and_compare_alike() {
        let src = String::from("jail");
        let b = Name::borrowed(&src);
        let o = Name::owned("jail".to_string());
        assert_eq!(b, o);
        assert_eq!(&*b, "jail");
        assert!(o == "jail");
        assert_eq!(o.clone(), b.clone());
        assert_eq!(format!("{b} {o:?}"), "jail \"jail\"");
        assert_eq!(String::from(o.clone()), "jail");
        assert_eq!(Name::owned(String::new()).as_str(), "");
        let detached = b.into_owned();
        drop(src);
        assert_eq!(detached.as_str(), "jail");
        assert_eq!(o.into_owned().as_str(), "jail");
        assert_eq!(std::mem::size_of::<Name<'_>>(), 16);
    }
}
