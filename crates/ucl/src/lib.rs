//! A parser for UCL, the configuration language of libucl, written for jrun.
//!
//! Every value carries the byte span it was parsed from, so that consumers can point
//! at the exact place of a mistake. Where libucl defines a behaviour (implicit arrays
//! for duplicate keys, merging of sections, number suffixes) this parser follows it.
//!
//! ```
//! let src = r#"
//! jail "web" { ip = "10.17.89.2"; ports [80, 443] }
//! jail "db" { exec { pg { cmd = "postgres"; healthcheck { interval = 10s } } } }
//! "#;
//! let doc = ucl::parse(src).unwrap();
//! let jails = doc.as_object().unwrap().get("jail").unwrap().as_object().unwrap();
//! assert_eq!(jails.len(), 2); // both sections merged into one `jail` object
//! let web = jails.get("web").unwrap().as_object().unwrap();
//! let ip = web.get("ip").unwrap();
//! assert_eq!(ip.as_str(), Some("10.17.89.2"));
//! assert_eq!(&src[ip.span.range()], "\"10.17.89.2\"");
//! assert!(doc.to_json_compact().contains(r#""interval":10.0"#));
//!
//! let err = ucl::parse("a {\n  b = 1\n").unwrap_err();
//! let at = err.location("a {\n  b = 1\n");
//! assert_eq!((at.line, at.column), (3, 1));
//! assert!(err.message.contains("expected '}' to close the object opened at 1:3"));
//! ```
//!
//! # Semantics
//! - Comments: `#` and `//` to the end of the line, `/* */` nested. (`//` inside an
//!   unquoted value such as `http://host` is not a comment.)
//! - `key = value`, `key: value`, `key value`; entries end at `;`, `,`, a newline or a
//!   comment. An unquoted value runs to the end of the line (spaces included, trailing
//!   blanks trimmed), as in libucl.
//! - `key { }` and `key [ ]` need no `=`. `jail "name" { }` nests as
//!   `jail { name { } }`; a key holding an object, given again with an object, merges
//!   into it (libucl's documented behaviour). Any other repeated key becomes an
//!   implicit array of its values, in order. Dotted keys (`a.b`) are plain keys, as in
//!   libucl.
//! - Strings: double-quoted with JSON escapes (incl. `\u` and surrogate pairs; raw
//!   control characters are an error), single-quoted (`\'` only; a backslash-newline
//!   joins lines), heredocs `<<EOD` … a line `EOD`.
//! - Scalars: `true yes on` / `false no off` (any case), `null`, integers, `0x` hex,
//!   floats; suffixes `k m g` (×1000ⁿ), `kb mb gb` (×1024ⁿ), and times `ms s min h d w y`
//!   which give [`Kind::Time`] in seconds (a year is 365 days). A number that does not
//!   fit in an `i64` is an error; an atom that is not a number (`1.2.3`) is a string.
//! - The top level is an object with or without braces, or an array (`[...]`).
//!   Nesting deeper than [`MAX_DEPTH`] is an error. Macros (`.include`) and variables
//!   (`$VAR`) are not supported: `.include` is an error, `$VAR` stays text.
//! - Inputs longer than [`MAX_INPUT`] bytes (4 GiB) are refused with an error: spans
//!   are stored as 32-bit offsets.

mod error;
mod frame;
mod json;
mod name;
mod number;
mod parser;
mod scan;
mod strings;
mod value;

pub use error::{Error, Location};
pub use name::Name;
pub use parser::MAX_DEPTH;
pub use value::{Key, Kind, Object, Span, Value};

/// Parses a whole UCL document.
///
/// The top level is an object, with or without braces; a document that starts with
/// `[` is a top-level array, as in libucl and JSON.
///
/// An input longer than [`MAX_INPUT`] bytes is an error.
pub fn parse(src: &str) -> Result<Value<'_>, Error> {
    check_size(src.len())?;
    parser::Parser::new(src).document()
}

/// The longest input [`parse`] accepts, in bytes: every offset must fit a [`Span`]'s
/// `u32`.
pub const MAX_INPUT: usize = u32::MAX as usize;

/// Refuses an input of `len` bytes if its offsets would not fit a [`Span`].
fn check_size(len: usize) -> Result<(), Error> {
    if len <= MAX_INPUT {
        return Ok(());
    }
    Err(Error::new(
        format!(
            "the input is {len} bytes, more than the {MAX_INPUT} bytes (4 GiB) a UCL document may have; split it into smaller files"
        ),
        Span::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_up_to_the_limit_are_accepted() {
        assert_eq!(check_size(0), Ok(()));
        assert_eq!(check_size(MAX_INPUT), Ok(()));
        let last = Span::new(MAX_INPUT, MAX_INPUT);
        assert_eq!(last.range(), MAX_INPUT..MAX_INPUT);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn inputs_over_the_limit_are_an_error_not_a_truncation() {
        for len in [MAX_INPUT + 1, usize::MAX] {
            let err = check_size(len).unwrap_err();
            assert!(
                err.message.contains(&format!("the input is {len} bytes"))
                    && err.message.contains("4294967295 bytes (4 GiB)"),
                "{}",
                err.message
            );
            assert_eq!(err.span, Span::default());
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    #[should_panic(expected = "above the 4294967295 byte input limit")]
    fn spans_past_the_limit_panic_instead_of_wrapping() {
        let _ = Span::new(0, MAX_INPUT + 1);
    }
}
