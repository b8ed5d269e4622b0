//! Helpers and tables shared by the integration tests.
#![allow(dead_code)]

/// Parses `src` and compares its compact JSON with `expected`.
pub fn check_json(src: &str, expected: &str) {
    match ucl::parse(src) {
        Ok(v) => assert_eq!(v.to_json_compact(), expected, "input: {src:?}"),
        Err(e) => {
            let l = e.location(src);
            panic!(
                "input {src:?} failed at {}:{}: {}",
                l.line, l.column, e.message
            )
        }
    }
}

/// Parses `src` and expects an error at `line:column` whose message contains `needle`.
pub fn check_error(src: &str, line: usize, column: usize, needle: &str) {
    match ucl::parse(src) {
        Ok(v) => panic!("input {src:?} parsed as {}", v.to_json_compact()),
        Err(e) => {
            let l = e.location(src);
            assert!(
                e.message.contains(needle),
                "input {src:?}: message {:?} lacks {needle:?}",
                e.message
            );
            assert_eq!(
                (l.line, l.column),
                (line, column),
                "input {src:?}: error {:?} at the wrong place",
                e.message
            );
        }
    }
}

pub mod gen;
pub mod table;
