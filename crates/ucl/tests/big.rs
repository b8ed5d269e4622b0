//! The benches' 40 000-jail config: it parses, and a mistake deep inside it is reported
//! at its exact line and column (positions are kept at full size).

#[path = "../benches/jails/mod.rs"]
mod jails;

#[test]
fn the_bench_config_parses() {
    let src = jails::generate(40_000);
    let doc = ucl::parse(&src).expect("parses");
    let jail = doc.as_object().and_then(|o| o.get("jail"));
    let jail = jail
        .and_then(|j| j.as_object())
        .expect("one merged jail object");
    assert_eq!(jail.len(), 40_000);
    let last = jail
        .get("app-39999")
        .and_then(|j| j.as_object())
        .expect("last jail");
    let ip = last.get("ip").expect("ip");
    assert_eq!(ip.as_str(), Some("10.17.248.251"));
    assert_eq!(&src[ip.span.range()], "\"10.17.248.251\"");
}

#[test]
fn an_error_deep_in_the_bench_config_has_its_line_and_column() {
    let mut src = jails::generate(40_000);
    let at =
        src.find("jail \"app-31234\" {\n").expect("jail 31234") + "jail \"app-31234\" {\n".len();
    src.insert_str(at, "  po$rts = 1;\n");
    let line = src[..at].matches('\n').count() + 1;
    let err = ucl::parse(&src).unwrap_err();
    let loc = err.location(&src);
    assert_eq!((loc.line, loc.column), (line, 5), "{}", err.message);
    assert_eq!(&src[err.span.range()], "$");
    assert!(
        err.message.contains("invalid character '$' in key 'po'"),
        "{}",
        err.message
    );
    assert!(
        line > 500_000,
        "the mistake is deep in the file (line {line})"
    );
}

#[test]
fn streamed_json_is_the_same_text_as_to_json() {
    let src = jails::generate(2_000);
    let doc = ucl::parse(&src).expect("parses");
    let mut streamed = Vec::new();
    doc.write_json(&mut streamed).expect("writes to a Vec");
    assert!(
        streamed.len() > 256 << 10,
        "large enough to be written in parts"
    );
    assert_eq!(String::from_utf8(streamed).expect("UTF-8"), doc.to_json());
}
