//! A parser for UCL, the configuration language of libucl, written for jrun.
//!
//! Every value carries the byte span it was parsed from, so that consumers can point
//! at the exact place of a mistake. Where libucl defines a behaviour (implicit arrays
//! for duplicate keys, merging of sections, number suffixes) this parser follows it.

mod error;
mod value;

pub use error::{Error, Location};
pub use value::{Key, Kind, Object, Span, Value};

/// Parses a whole UCL document. The top level is always an object.
pub fn parse(src: &str) -> Result<Value, Error> {
    let _ = src;
    Err(Error::new(
        "parser not written yet",
        Span { start: 0, end: 0 },
    ))
}
