//! A parser for UCL, the configuration language of libucl, written for jrun.
//!
//! Every value carries the byte span it was parsed from, so that consumers can point
//! at the exact place of a mistake. Where libucl defines a behaviour (implicit arrays
//! for duplicate keys, merging of sections, number suffixes) this parser follows it.

mod error;
mod frame;
mod json;
mod number;
mod parser;
mod scan;
mod strings;
mod value;

pub use error::{Error, Location};
pub use parser::MAX_DEPTH;
pub use value::{Key, Kind, Object, Span, Value};

/// Parses a whole UCL document.
///
/// The top level is an object, with or without braces; a document that starts with
/// `[` is a top-level array, as in libucl and JSON.
pub fn parse(src: &str) -> Result<Value, Error> {
    parser::Parser::new(src).document()
}
