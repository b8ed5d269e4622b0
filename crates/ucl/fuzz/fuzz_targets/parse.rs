//! Any input: parsing returns (never panics), errors point inside the input, and a
//! parsed value's JSON parses again to the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match ucl::parse(src) {
        Ok(value) => {
            let json = value.to_json_compact();
            let again = ucl::parse(&json).expect("JSON output is valid UCL");
            assert_eq!(again.to_json_compact(), json);
        }
        Err(err) => {
            assert!(err.span.start() <= err.span.end() && err.span.end() <= src.len());
            let _ = err.location(src);
        }
    }
});
