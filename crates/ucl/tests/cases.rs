//! A table per syntax feature: UCL input → the JSON libucl's emitter would print, and
//! invalid inputs → the line:column and message of the error.

mod common;

use common::{check_error, check_json, table};

fn check_all(cases: &[table::Case]) {
    for (input, json) in cases {
        check_json(input, json);
    }
}

#[test]
fn comments() {
    check_all(table::COMMENTS);
}

#[test]
fn key_value_forms() {
    check_all(table::KEY_VALUE_FORMS);
}

#[test]
fn objects_and_arrays_without_equals() {
    check_all(table::OBJECTS_AND_ARRAYS_WITHOUT_EQUALS);
}

#[test]
fn sections() {
    check_all(table::SECTIONS);
}

#[test]
fn duplicates() {
    check_all(table::DUPLICATES);
}

#[test]
fn strings() {
    check_all(table::STRINGS);
}

#[test]
fn heredocs() {
    check_all(table::HEREDOCS);
}

#[test]
fn booleans_and_null() {
    check_all(table::BOOLEANS_AND_NULL);
}

#[test]
fn numbers() {
    check_all(table::NUMBERS);
}

#[test]
fn time_suffixes() {
    check_all(table::TIME_SUFFIXES);
}

#[test]
fn top_level_forms() {
    check_all(table::TOP_LEVEL_FORMS);
}

#[test]
fn key_order_is_first_appearance() {
    check_all(table::KEY_ORDER_IS_FIRST_APPEARANCE);
}

#[test]
fn errors() {
    check_error(
        "a {\n  b = 1\n",
        3,
        1,
        "expected '}' to close the object opened at 1:3",
    );
    check_error(
        "a = [1, 2",
        1,
        10,
        "expected ']' to close the array opened at 1:5",
    );
    check_error("a = \"open", 1, 5, "unterminated string");
    check_error("a = 'open", 1, 5, "unterminated string");
    check_error("a = \"bell\u{7}\"", 1, 10, "control character 0x07");
    check_error("/* never closed", 1, 1, "unterminated comment");
    check_error("/* a /* b */", 1, 1, "unterminated comment");
    check_error("a = <<EOD\ntext\n", 1, 5, "unterminated heredoc");
    check_error(
        "a = \"1\" b = 2",
        1,
        9,
        "expected ';', ',' or a newline after the value",
    );
    check_error("a = 1\n}", 2, 1, "no open object to close");
    check_error("a = 1\n]", 2, 1, "no open array to close");
    check_error(
        "a { ] }",
        1,
        5,
        "unexpected ']' inside the object opened at 1:3",
    );
    check_error(
        "a = [1 }",
        1,
        8,
        "expected ']' to close the array opened at 1:5",
    );
    check_error("a = ;", 1, 5, "expected a value for key 'a'");
    check_error("a =", 1, 4, "expected a value for key 'a'");
    check_error("= 1", 1, 1, "expected a key");
    check_error("a@b = 1", 1, 2, "invalid character '@' in key 'a'");
    check_error("a/b = 1", 1, 2, "invalid character '/' in key 'a'");
    check_error("\"\" = 1", 1, 1, "empty keys are not allowed");
    check_error(".include \"x.conf\"", 1, 1, "macros");
    check_error("a = 99999999999999999999", 1, 5, "number out of range");
    check_error("a = 9223372036854775807k", 1, 5, "number out of range");
    check_error("a = \"\\u12\"", 1, 6, "invalid \\u escape");
    check_error("a = \"\\ud800\"", 1, 6, "lone surrogate");
    check_error("a = \"tab\there\"", 1, 9, "unexpected tab");
    // As libucl: an unquoted value runs to the end of the line, spaces included.
    check_json("a = 1 b = 2", r#"{"a":"1 b = 2"}"#);
    check_error(
        "{ a = 1 } b = 2",
        1,
        11,
        "after the end of the top-level value",
    );
    check_error("a {\n  b {\n    c = 1\n  }\n", 5, 1, "opened at 1:3");
}

#[test]
fn depth_limit_is_an_error_not_a_crash() {
    let deep = "[".repeat(ucl::MAX_DEPTH + 1);
    check_error(&deep, 1, ucl::MAX_DEPTH + 1, "nest deeper than");
    let ok = format!(
        "{}{}",
        "[".repeat(ucl::MAX_DEPTH),
        "]".repeat(ucl::MAX_DEPTH)
    );
    assert!(ucl::parse(&ok).is_ok());
    // The deepest recursion (entry → object → entry) fits the default 2 MB test stack.
    let objects = format!(
        "{}{}",
        "a { ".repeat(ucl::MAX_DEPTH),
        "}".repeat(ucl::MAX_DEPTH)
    );
    assert!(ucl::parse(&objects).is_ok());
    let in_arrays = format!(
        "{}{}",
        "a [ { ".repeat(ucl::MAX_DEPTH / 2),
        "} ]".repeat(ucl::MAX_DEPTH / 2)
    );
    assert!(ucl::parse(&in_arrays).is_ok());
    let sections_ok = format!("{} {{}}", "k ".repeat(ucl::MAX_DEPTH - 1));
    assert!(ucl::parse(&sections_ok).is_ok());
    let sections = format!("{} {{}}", "k ".repeat(ucl::MAX_DEPTH + 5));
    assert!(ucl::parse(&sections)
        .unwrap_err()
        .message
        .contains("nest deeper"));
}

#[test]
fn fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ucl") {
            let src = std::fs::read_to_string(&path).unwrap();
            let expected = std::fs::read_to_string(path.with_extension("json")).unwrap();
            let value = ucl::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(value.to_json() + "\n", expected, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

/// The text a span covers.
fn text(src: &str, span: ucl::Span) -> &str {
    &src[span.range()]
}

#[test]
fn spans_cover_keys_and_values() {
    let src = "jail \"web\" {\n  ip = \"10.0.0.2\";\n  port 80\n  tags [a, b]\n}\njail \"db\" { x = 1 }\nn = 1; n = 2\n";
    let doc = ucl::parse(src).unwrap();
    let root = doc.as_object().unwrap();
    let (jail_key, jail) = root.get_entry("jail").unwrap();
    assert_eq!(text(src, jail_key.span), "jail");
    let jails = jail.as_object().unwrap();
    let (web_key, web) = jails.get_entry("web").unwrap();
    assert_eq!(text(src, web_key.span), "\"web\"");
    assert!(text(src, web.span).starts_with('{') && text(src, web.span).ends_with('}'));
    let web = web.as_object().unwrap();
    let (ip_key, ip) = web.get_entry("ip").unwrap();
    assert_eq!(
        (text(src, ip_key.span), text(src, ip.span)),
        ("ip", "\"10.0.0.2\"")
    );
    assert_eq!(text(src, web.get("port").unwrap().span), "80");
    assert_eq!(text(src, web.get("tags").unwrap().span), "[a, b]");
    let (db_key, _) = jails.get_entry("db").unwrap();
    assert_eq!(text(src, db_key.span), "\"db\"");
    // An implicit array has the span of its first value; each element keeps its own.
    let n = root.get("n").unwrap();
    let ucl::Kind::Array(items) = &n.kind else {
        panic!("implicit array")
    };
    assert_eq!(n.span, items[0].span);
    assert_eq!(
        items.iter().map(|v| v.span.start()).collect::<Vec<_>>(),
        [src.find("1;").unwrap(), src.rfind('2').unwrap()]
    );
}

#[test]
fn a_slash_comment_still_ends_a_path_key() {
    check_json("/a/b = 1 // note\n/c = /* x */ 2", r#"{"/a/b":1,"/c":2}"#);
}

#[test]
fn error_spans_point_at_the_culprit() {
    let src = "a = 1\nb = 99999999999999999999\n";
    let err = ucl::parse(src).unwrap_err();
    assert_eq!(text(src, err.span), "99999999999999999999");
    let src = "a = \"x\u{1}y\"";
    let err = ucl::parse(src).unwrap_err();
    assert_eq!(text(src, err.span), "\u{1}");
}

#[test]
fn large_objects_merge_repeated_keys_like_small_ones() {
    // From a dozen keys on, an object looks keys up in a hash index instead of
    // scanning: implicit arrays, merged sections and key order must not change.
    let mut src = String::new();
    let mut expected = Vec::new();
    for i in 0..40 {
        src += &format!("k{i} = {i}\n");
        expected.push(format!("\"k{i}\":{i}"));
    }
    for i in (0..40).step_by(7) {
        src += &format!("k{i} = again\n");
        expected[i] = format!("\"k{i}\":[{i},\"again\"]");
    }
    let mut sections = vec![String::new(); 20];
    for round in 0..3 {
        for (i, section) in sections.iter_mut().enumerate() {
            src += &format!("s \"n{i}\" {{ r{round} = {round} }}\n");
            section.push_str(&format!(
                "{}\"r{round}\":{round}",
                if round > 0 { "," } else { "" }
            ));
        }
    }
    let sections: Vec<String> = sections
        .iter()
        .enumerate()
        .map(|(i, body)| format!("\"n{i}\":{{{body}}}"))
        .collect();
    expected.push(format!("\"s\":{{{}}}", sections.join(",")));
    let doc = ucl::parse(&src).unwrap();
    assert_eq!(doc.to_json_compact(), format!("{{{}}}", expected.join(",")));
    // A merged section keeps the span of its first appearance.
    let n3 = doc
        .as_object()
        .unwrap()
        .get("s")
        .unwrap()
        .as_object()
        .unwrap();
    let n3 = n3.get("n3").unwrap();
    assert_eq!(text(&src, n3.span), "{ r0 = 0 }");
}
