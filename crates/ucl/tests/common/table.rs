//! The valid-case table: UCL input and the JSON it means, one list per feature.
//! Used by `cases.rs` and, against the real libucl, by `libucl_diff.rs`.

/// (input, expected compact JSON)
pub type Case = (&'static str, &'static str);

pub const COMMENTS: &[Case] = &[
    ("# hash\na = 1", r#"{"a":1}"#),
    ("a = 1 # trailing\nb = 2", r#"{"a":1,"b":2}"#),
    ("// slashes\na = 1 // trailing", r#"{"a":1}"#),
    ("/* block */ a = 1", r#"{"a":1}"#),
    ("/* outer /* inner */ still comment */ a = 1", r#"{"a":1}"#),
    ("a = 1 /* sep */ b = 2", r#"{"a":1,"b":2}"#),
    (
        "a = http://example.org/x",
        r#"{"a":"http://example.org/x"}"#,
    ),
    ("a = [1, /* two */ 2, # three\n 3]", r#"{"a":[1,2,3]}"#),
    ("a /* c */ = /* c */ 1", r#"{"a":1}"#),
];

pub const KEY_VALUE_FORMS: &[Case] = &[
    ("a = 1", r#"{"a":1}"#),
    ("a: 1", r#"{"a":1}"#),
    ("a 1", r#"{"a":1}"#),
    ("a=1;b:2,c 3\nd = 4", r#"{"a":1,"b":2,"c":3,"d":4}"#),
    ("a = 1;;; b = 2,", r#"{"a":1,"b":2}"#),
    (r#""quoted key" = 1"#, r#"{"quoted key":1}"#),
    ("'single key' = 1", r#"{"single key":1}"#),
    (
        "key-with_dash.and.dots = 1",
        r#"{"key-with_dash.and.dots":1}"#,
    ),
    ("a.b.c = 1", r#"{"a.b.c":1}"#),
    ("0key = 1", r#"{"0key":1}"#),
    ("ключ = 1", r#"{"ключ":1}"#),
    // Paths as bare keys, as in pkg manifests.
    (
        "files { /usr/local/bin/tool: \"x\"; /etc/rc.conf = 2 }",
        r#"{"files":{"/usr/local/bin/tool":"x","/etc/rc.conf":2}}"#,
    ),
    ("/a/b = 1 # note", r#"{"/a/b":1}"#),
];

pub const OBJECTS_AND_ARRAYS_WITHOUT_EQUALS: &[Case] = &[
    ("a { b = 1 }", r#"{"a":{"b":1}}"#),
    ("a = { b = 1 }", r#"{"a":{"b":1}}"#),
    ("a [1, 2]", r#"{"a":[1,2]}"#),
    ("a = []", r#"{"a":[]}"#),
    ("a {}", r#"{"a":{}}"#),
    ("a { } b { }", r#"{"a":{},"b":{}}"#),
    ("a [1\n2\n3]", r#"{"a":[1,2,3]}"#),
    ("a [1; 2, 3,]", r#"{"a":[1,2,3]}"#),
    ("a [[1], {b = 2}, []]", r#"{"a":[[1],{"b":2},[]]}"#),
    ("a\n{\n b = 1\n}", r#"{"a":{"b":1}}"#),
];

pub const SECTIONS: &[Case] = &[
    (
        r#"jail "web" { ip = "10.0.0.2" }"#,
        r#"{"jail":{"web":{"ip":"10.0.0.2"}}}"#,
    ),
    (
        r#"jail "a" { x = 1 } jail "b" { y = 2 }"#,
        r#"{"jail":{"a":{"x":1},"b":{"y":2}}}"#,
    ),
    (r#"a b c { d = 1 }"#, r#"{"a":{"b":{"c":{"d":1}}}}"#),
    (r#"a "b" [1, 2]"#, r#"{"a":{"b":[1,2]}}"#),
    (
        "a b { x = 1 }\na c { y = 2 }\na b { z = 3 }",
        r#"{"a":{"b":{"x":1,"z":3},"c":{"y":2}}}"#,
    ),
    (r#"jail 'single' {}"#, r#"{"jail":{"single":{}}}"#),
    (
        r#"forward { http { host = 8080; jail = 80; } }"#,
        r#"{"forward":{"http":{"host":8080,"jail":80}}}"#,
    ),
    // A value that merely contains a brace is not a section.
    (r#"cmd "a { b""#, r#"{"cmd":"a { b"}"#),
];

pub const DUPLICATES: &[Case] = &[
    ("a = 1\na = 2\na = 3", r#"{"a":[1,2,3]}"#),
    ("a = [1]\na = [2]", r#"{"a":[[1],[2]]}"#),
    ("a = [1, 2]\na = 3", r#"{"a":[[1,2],3]}"#),
    ("a = 1\na { b = 2 }", r#"{"a":[1,{"b":2}]}"#),
    ("a { x = 1 }\na { y = 2 }", r#"{"a":{"x":1,"y":2}}"#),
    ("a { x = 1 }\na { x = 2 }", r#"{"a":{"x":[1,2]}}"#),
    ("a { x = 1 }\na = 5", r#"{"a":[{"x":1},5]}"#),
    ("a = 1; b = 2; a = 3", r#"{"a":[1,3],"b":2}"#),
    ("a [ {x = 1}, {x = 2} ]", r#"{"a":[{"x":1},{"x":2}]}"#),
];

pub const STRINGS: &[Case] = &[
    (r#"a = "plain""#, r#"{"a":"plain"}"#),
    // A line break (or tab) inside a double-quoted string is kept as written.
    ("a = \"one\ntwo\"", r#"{"a":"one\ntwo"}"#),
    (
        r#"a = "esc \" \\ \/ \b \f \n \r \t""#,
        r#"{"a":"esc \" \\ / \u0008 \u000c \n \r \t"}"#,
    ),
    (r#"a = "\u00e9\u4e2d""#, r#"{"a":"é中"}"#),
    (r#"a = "\ud83d\ude00""#, r#"{"a":"😀"}"#),
    (r#"a = "unknown \q escape""#, r#"{"a":"unknown q escape"}"#),
    (r#"a = 'single "quoted"'"#, r#"{"a":"single \"quoted\""}"#),
    (r#"a = 'it\'s'"#, r#"{"a":"it's"}"#),
    (
        r#"a = 'back\slash \n kept'"#,
        r#"{"a":"back\\slash \\n kept"}"#,
    ),
    ("a = 'joined \\\nline'", r#"{"a":"joined line"}"#),
    (
        "a = unquoted words here ; b = 1",
        r#"{"a":"unquoted words here","b":1}"#,
    ),
    ("a = /usr/local/bin", r#"{"a":"/usr/local/bin"}"#),
    ("a = 10.17.89.50", r#"{"a":"10.17.89.50"}"#),
    ("a = ${VAR}", r#"{"a":"${VAR}"}"#),
    ("a = f{o}o", r#"{"a":"f{o}o"}"#),
    (r#"a = """#, r#"{"a":""}"#),
    (r#"a = "ü""#, r#"{"a":"ü"}"#),
];

pub const HEREDOCS: &[Case] = &[
    (
        "a = <<EOD\nline 1\nline 2\nEOD\nb = 1",
        r#"{"a":"line 1\nline 2","b":1}"#,
    ),
    ("a = <<EOD\nEOD\n", r#"{"a":""}"#),
    ("a = <<EOD\nlast\nEOD", r#"{"a":"last"}"#),
    (
        "a = <<X\n  indented \"quotes\" # not a comment\nX\n",
        r#"{"a":"  indented \"quotes\" # not a comment"}"#,
    ),
    ("a = <<EOD\nEODX\nEOD;", r#"{"a":"EODX"}"#),
    ("a = <<EOD\r\nwin\r\nEOD\r\n", r#"{"a":"win"}"#),
    ("a [<<EOD\none\nEOD\n, 2]", r#"{"a":["one",2]}"#),
    // Not a heredoc: lowercase terminator.
    ("a = <<eod", r#"{"a":"<<eod"}"#),
];

pub const BOOLEANS_AND_NULL: &[Case] = &[
    (
        "a = true; b = yes; c = on; d = false; e = no; f = off; g = null",
        r#"{"a":true,"b":true,"c":true,"d":false,"e":false,"f":false,"g":null}"#,
    ),
    (
        "a = True; b = YES; c = Off; d = \"true\"; e = NULL",
        r#"{"a":true,"b":true,"c":false,"d":"true","e":"NULL"}"#,
    ),
];

pub const NUMBERS: &[Case] = &[
    ("a = 42; b = -7; c = 0", r#"{"a":42,"b":-7,"c":0}"#),
    ("a = 0x1f; b = -0x10", r#"{"a":31,"b":-16}"#),
    (
        "a = 1.5; b = -0.25; c = 1e3; d = 2E-2",
        r#"{"a":1.5,"b":-0.25,"c":1000.0,"d":0.02}"#,
    ),
    (
        "a = 10k; b = 2m; c = 1g",
        r#"{"a":10000,"b":2000000,"c":1000000000}"#,
    ),
    (
        "a = 1kb; b = 2mb; c = 1gb",
        r#"{"a":1024,"b":2097152,"c":1073741824}"#,
    ),
    ("a = 1.5k", r#"{"a":1500.0}"#),
    ("a = 5 ; b = 6 # c", r#"{"a":5,"b":6}"#),
    ("a = 5 apples", r#"{"a":"5 apples"}"#),
    ("a = 10apples", r#"{"a":"10apples"}"#),
    ("a = 1.2.3", r#"{"a":"1.2.3"}"#),
    ("a = +1", r#"{"a":"+1"}"#),
    ("a [1, 2.5, 3k]", r#"{"a":[1,2.5,3000]}"#),
];

pub const TIME_SUFFIXES: &[Case] = &[
    (
        "a = 10s; b = 250ms; c = 5min; d = 2h; e = 1d; f = 1w; g = 1.5s",
        r#"{"a":10.0,"b":0.25,"c":300.0,"d":7200.0,"e":86400.0,"f":604800.0,"g":1.5}"#,
    ),
    ("a = 1y", r#"{"a":31536000.0}"#),
    ("a = 10S; b = 5MIN", r#"{"a":10.0,"b":300.0}"#),
];

pub const TOP_LEVEL_FORMS: &[Case] = &[
    ("", "{}"),
    ("  \n# only a comment\n", "{}"),
    ("{ a = 1 }", r#"{"a":1}"#),
    (
        "{\"a\": 1, \"b\": [true, null]}",
        r#"{"a":1,"b":[true,null]}"#,
    ),
    ("[1, 2]", "[1,2]"),
    ("\u{feff}a = 1", r#"{"a":1}"#),
    ("a = 1\r\nb = 2\r\n", r#"{"a":1,"b":2}"#),
];

pub const KEY_ORDER_IS_FIRST_APPEARANCE: &[Case] =
    &[("z = 1; a = 2; m = 3; a = 4", r#"{"z":1,"a":[2,4],"m":3}"#)];

/// Every table, with its name.
pub const ALL: &[(&str, &[Case])] = &[
    ("comments", COMMENTS),
    ("key_value_forms", KEY_VALUE_FORMS),
    (
        "objects_and_arrays_without_equals",
        OBJECTS_AND_ARRAYS_WITHOUT_EQUALS,
    ),
    ("sections", SECTIONS),
    ("duplicates", DUPLICATES),
    ("strings", STRINGS),
    ("heredocs", HEREDOCS),
    ("booleans_and_null", BOOLEANS_AND_NULL),
    ("numbers", NUMBERS),
    ("time_suffixes", TIME_SUFFIXES),
    ("top_level_forms", TOP_LEVEL_FORMS),
    (
        "key_order_is_first_appearance",
        KEY_ORDER_IS_FIRST_APPEARANCE,
    ),
];
