//! A table per syntax feature: UCL input → the JSON libucl's emitter would print, and
//! invalid inputs → the line:column and message of the error.

mod common;

use common::{check_error, check_json};

#[test]
fn comments() {
    check_json("# hash\na = 1", r#"{"a":1}"#);
    check_json("a = 1 # trailing\nb = 2", r#"{"a":1,"b":2}"#);
    check_json("// slashes\na = 1 // trailing", r#"{"a":1}"#);
    check_json("/* block */ a = 1", r#"{"a":1}"#);
    check_json("/* outer /* inner */ still comment */ a = 1", r#"{"a":1}"#);
    check_json("a = 1 /* sep */ b = 2", r#"{"a":1,"b":2}"#);
    check_json(
        "a = http://example.org/x",
        r#"{"a":"http://example.org/x"}"#,
    );
    check_json("a = [1, /* two */ 2, # three\n 3]", r#"{"a":[1,2,3]}"#);
    check_json("a /* c */ = /* c */ 1", r#"{"a":1}"#);
}

#[test]
fn key_value_forms() {
    check_json("a = 1", r#"{"a":1}"#);
    check_json("a: 1", r#"{"a":1}"#);
    check_json("a 1", r#"{"a":1}"#);
    check_json("a=1;b:2,c 3\nd = 4", r#"{"a":1,"b":2,"c":3,"d":4}"#);
    check_json("a = 1;;; b = 2,", r#"{"a":1,"b":2}"#);
    check_json(r#""quoted key" = 1"#, r#"{"quoted key":1}"#);
    check_json("'single key' = 1", r#"{"single key":1}"#);
    check_json(
        "key-with_dash.and.dots = 1",
        r#"{"key-with_dash.and.dots":1}"#,
    );
    check_json("a.b.c = 1", r#"{"a.b.c":1}"#);
    check_json("0key = 1", r#"{"0key":1}"#);
    check_json("ключ = 1", r#"{"ключ":1}"#);
}

#[test]
fn objects_and_arrays_without_equals() {
    check_json("a { b = 1 }", r#"{"a":{"b":1}}"#);
    check_json("a = { b = 1 }", r#"{"a":{"b":1}}"#);
    check_json("a [1, 2]", r#"{"a":[1,2]}"#);
    check_json("a = []", r#"{"a":[]}"#);
    check_json("a {}", r#"{"a":{}}"#);
    check_json("a { } b { }", r#"{"a":{},"b":{}}"#);
    check_json("a [1\n2\n3]", r#"{"a":[1,2,3]}"#);
    check_json("a [1; 2, 3,]", r#"{"a":[1,2,3]}"#);
    check_json("a [[1], {b = 2}, []]", r#"{"a":[[1],{"b":2},[]]}"#);
    check_json("a\n{\n b = 1\n}", r#"{"a":{"b":1}}"#);
}

#[test]
fn sections() {
    check_json(
        r#"jail "web" { ip = "10.0.0.2" }"#,
        r#"{"jail":{"web":{"ip":"10.0.0.2"}}}"#,
    );
    check_json(
        r#"jail "a" { x = 1 } jail "b" { y = 2 }"#,
        r#"{"jail":{"a":{"x":1},"b":{"y":2}}}"#,
    );
    check_json(r#"a b c { d = 1 }"#, r#"{"a":{"b":{"c":{"d":1}}}}"#);
    check_json(r#"a "b" [1, 2]"#, r#"{"a":{"b":[1,2]}}"#);
    check_json(
        "a b { x = 1 }\na c { y = 2 }\na b { z = 3 }",
        r#"{"a":{"b":{"x":1,"z":3},"c":{"y":2}}}"#,
    );
    check_json(r#"jail 'single' {}"#, r#"{"jail":{"single":{}}}"#);
    check_json(
        r#"forward { http { host = 8080; jail = 80; } }"#,
        r#"{"forward":{"http":{"host":8080,"jail":80}}}"#,
    );
    // A value that merely contains a brace is not a section.
    check_json(r#"cmd "a { b""#, r#"{"cmd":"a { b"}"#);
}

#[test]
fn duplicates() {
    check_json("a = 1\na = 2\na = 3", r#"{"a":[1,2,3]}"#);
    check_json("a = [1]\na = [2]", r#"{"a":[[1],[2]]}"#);
    check_json("a = [1, 2]\na = 3", r#"{"a":[[1,2],3]}"#);
    check_json("a = 1\na { b = 2 }", r#"{"a":[1,{"b":2}]}"#);
    check_json("a { x = 1 }\na { y = 2 }", r#"{"a":{"x":1,"y":2}}"#);
    check_json("a { x = 1 }\na { x = 2 }", r#"{"a":{"x":[1,2]}}"#);
    check_json("a { x = 1 }\na = 5", r#"{"a":[{"x":1},5]}"#);
    check_json("a = 1; b = 2; a = 3", r#"{"a":[1,3],"b":2}"#);
    check_json("a [ {x = 1}, {x = 2} ]", r#"{"a":[{"x":1},{"x":2}]}"#);
}

#[test]
fn strings() {
    check_json(r#"a = "plain""#, r#"{"a":"plain"}"#);
    check_json(
        r#"a = "esc \" \\ \/ \b \f \n \r \t""#,
        r#"{"a":"esc \" \\ / \u0008 \u000c \n \r \t"}"#,
    );
    check_json(r#"a = "\u00e9\u4e2d""#, r#"{"a":"é中"}"#);
    check_json(r#"a = "\ud83d\ude00""#, r#"{"a":"😀"}"#);
    check_json(r#"a = "unknown \q escape""#, r#"{"a":"unknown q escape"}"#);
    check_json(r#"a = 'single "quoted"'"#, r#"{"a":"single \"quoted\""}"#);
    check_json(r#"a = 'it\'s'"#, r#"{"a":"it's"}"#);
    check_json(
        r#"a = 'back\slash \n kept'"#,
        r#"{"a":"back\\slash \\n kept"}"#,
    );
    check_json("a = 'joined \\\nline'", r#"{"a":"joined line"}"#);
    check_json(
        "a = unquoted words here ; b = 1",
        r#"{"a":"unquoted words here","b":1}"#,
    );
    check_json("a = /usr/local/bin", r#"{"a":"/usr/local/bin"}"#);
    check_json("a = 10.17.89.50", r#"{"a":"10.17.89.50"}"#);
    check_json("a = ${VAR}", r#"{"a":"${VAR}"}"#);
    check_json("a = f{o}o", r#"{"a":"f{o}o"}"#);
    check_json(r#"a = """#, r#"{"a":""}"#);
    check_json(r#"a = "ü""#, r#"{"a":"ü"}"#);
}

#[test]
fn heredocs() {
    check_json(
        "a = <<EOD\nline 1\nline 2\nEOD\nb = 1",
        r#"{"a":"line 1\nline 2","b":1}"#,
    );
    check_json("a = <<EOD\nEOD\n", r#"{"a":""}"#);
    check_json(
        "a = <<X\n  indented \"quotes\" # not a comment\nX",
        r#"{"a":"  indented \"quotes\" # not a comment"}"#,
    );
    check_json("a = <<EOD\nEODX\nEOD;", r#"{"a":"EODX"}"#);
    check_json("a = <<EOD\r\nwin\r\nEOD\r\n", r#"{"a":"win"}"#);
    check_json("a [<<EOD\none\nEOD\n, 2]", r#"{"a":["one",2]}"#);
    // Not a heredoc: lowercase terminator.
    check_json("a = <<eod", r#"{"a":"<<eod"}"#);
}

#[test]
fn booleans_and_null() {
    check_json(
        "a = true; b = yes; c = on; d = false; e = no; f = off; g = null",
        r#"{"a":true,"b":true,"c":true,"d":false,"e":false,"f":false,"g":null}"#,
    );
    check_json("a = True; b = \"true\"", r#"{"a":"True","b":"true"}"#);
}

#[test]
fn numbers() {
    check_json("a = 42; b = -7; c = 0", r#"{"a":42,"b":-7,"c":0}"#);
    check_json("a = 0x1f; b = -0x10", r#"{"a":31,"b":-16}"#);
    check_json(
        "a = 1.5; b = -0.25; c = 1e3; d = 2E-2",
        r#"{"a":1.5,"b":-0.25,"c":1000.0,"d":0.02}"#,
    );
    check_json(
        "a = 10k; b = 2m; c = 1g",
        r#"{"a":10000,"b":2000000,"c":1000000000}"#,
    );
    check_json(
        "a = 1kb; b = 2mb; c = 1gb",
        r#"{"a":1024,"b":2097152,"c":1073741824}"#,
    );
    check_json("a = 1.5k", r#"{"a":1500.0}"#);
    check_json("a = 5 ; b = 6 # c", r#"{"a":5,"b":6}"#);
    check_json("a = 5 apples", r#"{"a":"5 apples"}"#);
    check_json("a = 10apples", r#"{"a":"10apples"}"#);
    check_json("a = 1.2.3", r#"{"a":"1.2.3"}"#);
    check_json("a = +1", r#"{"a":"+1"}"#);
    check_json("a [1, 2.5, 3k]", r#"{"a":[1,2.5,3000]}"#);
}

#[test]
fn time_suffixes() {
    check_json(
        "a = 10s; b = 250ms; c = 5min; d = 2h; e = 1d; f = 1w; g = 1.5s",
        r#"{"a":10.0,"b":0.25,"c":300.0,"d":7200.0,"e":86400.0,"f":604800.0,"g":1.5}"#,
    );
    check_json("a = 1y", r#"{"a":31536000.0}"#);
    check_json("a = 10S; b = 5MIN", r#"{"a":10.0,"b":300.0}"#);
}

#[test]
fn top_level_forms() {
    check_json("", "{}");
    check_json("  \n# only a comment\n", "{}");
    check_json("{ a = 1 }", r#"{"a":1}"#);
    check_json(
        "{\"a\": 1, \"b\": [true, null]}",
        r#"{"a":1,"b":[true,null]}"#,
    );
    check_json("[1, 2]", "[1,2]");
    check_json("\u{feff}a = 1", r#"{"a":1}"#);
    check_json("a = 1\r\nb = 2\r\n", r#"{"a":1,"b":2}"#);
}

#[test]
fn key_order_is_first_appearance() {
    check_json("z = 1; a = 2; m = 3; a = 4", r#"{"z":1,"a":[2,4],"m":3}"#);
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
    check_error("a = \"line\nbreak\"", 1, 10, "unexpected newline");
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
    let sections = format!("{} {{}}", "k ".repeat(ucl::MAX_DEPTH + 5));
    assert!(ucl::parse(&sections)
        .unwrap_err()
        .message
        .contains("nest deeper"));
}
