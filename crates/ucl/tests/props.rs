//! Property tests: the parser never panics on any input, errors point inside the
//! input, JSON is valid UCL (value → JSON → UCL gives the same value), and generated
//! UCL in its many spellings reads back as the data it was written from.

mod common;

use common::gen::{document, model, node, to_model, Node, Style};
use proptest::prelude::*;
use serde_json::{Number, Value as Json};

fn check_spans(v: &ucl::Value, len: usize) {
    assert!(
        v.span.start() <= v.span.end() && v.span.end() <= len,
        "span {:?}",
        v.span
    );
    match &v.kind {
        ucl::Kind::Array(a) => a.iter().for_each(|x| check_spans(x, len)),
        ucl::Kind::Object(o) => o.iter().for_each(|(k, x)| {
            assert!(k.span.start() <= k.span.end() && k.span.end() <= len);
            check_spans(x, len)
        }),
        _ => {}
    }
}

/// Parsing must return (not panic); an error must point inside the input, and a
/// success must print as JSON that parses again to the same thing.
fn parse_is_total(src: &str) {
    match ucl::parse(src) {
        Ok(v) => {
            check_spans(&v, src.len());
            let json = v.to_json_compact();
            let again = ucl::parse(&json).expect("our JSON output is valid UCL");
            assert_eq!(to_model(&again), to_model(&v), "JSON: {json}");
            serde_json::from_str::<Json>(&json).expect("our JSON output is valid JSON");
        }
        Err(e) => {
            assert!(
                e.span.start() <= e.span.end() && e.span.end() <= src.len(),
                "{e:?}"
            );
            assert!(!e.message.is_empty());
            let _ = e.location(src);
        }
    }
}

/// Fragments that exercise every branch of the grammar when glued at random.
fn ucl_ish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "=",
        ":",
        ";",
        ",",
        "\n",
        " ",
        "\t",
        "#",
        "//",
        "/*",
        "*/",
        "<<EOD\n",
        "\nEOD\n",
        "EOD",
        "a",
        "key",
        "jail",
        "\"q\"",
        "'s'",
        "1",
        "-",
        "0x1f",
        "1.5",
        "10s",
        "5min",
        "2kb",
        "3k",
        "1e5",
        "true",
        "null",
        "\\",
        "\\u00e9",
        "\\ud83d",
        "\\n",
        ".include",
        "é",
        "\r\n",
        "$",
        "http://x",
        "9999999999999999999",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| Json::Number(i.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Json::Number(Number::from_f64(f).unwrap())),
        any::<String>().prop_map(Json::String),
        "[a-z0-9 .:/-]{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            // Empty keys are an error in UCL (as in libucl), so they are not generated.
            prop::collection::btree_map(".{1,8}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_is_total(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,200}") {
        parse_is_total(&s);
    }

    #[test]
    fn ucl_ish_fragments_never_panic(s in ucl_ish()) {
        parse_is_total(&s);
    }

    /// JSON documents (an object or an array at the top, as UCL requires).
    #[test]
    fn json_is_valid_ucl(v in prop_oneof![
        prop::collection::vec(json_value(), 0..4).prop_map(Json::Array),
        prop::collection::btree_map(".{1,8}", json_value(), 0..4)
            .prop_map(|m| Json::Object(m.into_iter().collect())),
    ]) {
        let text = serde_json::to_string(&v).unwrap();
        let parsed = ucl::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        prop_assert_eq!(to_model(&parsed), v);
        // And our own JSON output reads back the same, pretty or compact.
        let pretty = parsed.to_json();
        let again = ucl::parse(&pretty).unwrap();
        prop_assert_eq!(to_model(&again), to_model(&parsed));
        prop_assert_eq!(again.to_json_compact(), parsed.to_json_compact());
    }

    #[test]
    fn generated_ucl_reads_back(entries in prop::collection::btree_map("[a-z_][a-z0-9_.-]{0,6}", node(), 0..6), seed in any::<u64>()) {
        let entries: Vec<(String, Node)> = entries.into_iter().collect();
        let text = document(&entries, &mut Style::new(seed, false));
        let expected = model(&Node::Obj(entries));
        match ucl::parse(&text) {
            Ok(v) => prop_assert_eq!(to_model(&v), expected, "input:\n{}", text),
            Err(e) => {
                let l = e.location(&text);
                panic!("{}:{}: {} in\n{}", l.line, l.column, e.message, text);
            }
        }
    }
}

#[test]
fn large_pathological_inputs_finish() {
    const MB: usize = 1 << 20;
    let cases = [
        "[".repeat(MB),
        "{".repeat(MB),
        "a ".repeat(MB / 2) + "{}",
        "/*".repeat(MB / 2),
        "/* */".repeat(MB / 5),
        "#\n".repeat(MB / 2),
        format!("a = [{}]", "[],".repeat(MB / 3)),
        format!("a = [{}]", "{},".repeat(MB / 3)),
        "a = 1\n".repeat(MB / 6),
        "a {}\n".repeat(MB / 5),
        "\"".repeat(MB),
        "\\".repeat(MB),
        format!("a = <<EOD\n{}", "EO\n".repeat(MB / 3)),
        (0..MB / 8).map(|i| format!("k{i}=1;")).collect(),
    ];
    for src in &cases {
        // Must return (no stack overflow, no hang); the result itself may be an error.
        let _ = ucl::parse(src);
    }
}
