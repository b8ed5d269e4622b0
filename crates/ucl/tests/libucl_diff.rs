//! Differential test against the real libucl (0.7.3, the C sources bundled in the
//! crates.io package `libucl-sys` 0.1.5): every valid case and fixture must give the
//! same JSON data from both parsers, except the documented divergences below.
//!
//! Enabled with `--features libucl-diff`; needs `gcc` and the sources, found through
//! `LIBUCL_SRC` or in cargo's registry after `sh tests/libucl/fetch-source.sh`.
#![cfg(feature = "libucl-diff")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::gen::{document, model, node, Node, Style};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Inputs on which jrun's parser deliberately differs from libucl 0.7.3, and why.
const DIVERGENCES: &[(&str, &str)] = &[
    // libucl's README says repeated sections merge into one object; its code makes an
    // implicit array of objects instead. jrun follows the documentation.
    (r#"jail "a" { x = 1 } jail "b" { y = 2 }"#, "sections merge"),
    (
        "a b { x = 1 }\na c { y = 2 }\na b { z = 3 }",
        "sections merge",
    ),
    ("a { x = 1 }\na { y = 2 }", "objects merge"),
    ("a { x = 1 }\na { x = 2 }", "objects merge"),
    (
        "fixtures/jails.ucl",
        "sections merge, single quotes, // comments",
    ),
    // libucl multiplies a year by 7 × 365 days.
    ("a = 1y", "a year is 365 days"),
    // `//` comments and single quotes are not in libucl 0.7.3.
    ("// slashes\na = 1 // trailing", "// comments"),
    ("'single key' = 1", "single quotes"),
    (r#"jail 'single' {}"#, "single quotes"),
    (r#"a = 'single "quoted"'"#, "single quotes"),
    (r#"a = 'it\'s'"#, "single quotes"),
    (r#"a = 'back\slash \n kept'"#, "single quotes"),
    ("a = 'joined \\\nline'", "single quotes"),
    // libucl 0.7.3 decodes surrogate pairs into invalid UTF-8.
    (r#"a = "\ud83d\ude00""#, "surrogate pairs"),
    // Heredoc corner cases libucl rejects or misreads: an empty body, CRLF line ends.
    ("a = <<EOD\nEOD\n", "empty heredoc"),
    ("a = <<EOD\r\nwin\r\nEOD\r\n", "CRLF heredoc"),
    (
        "a = <<EOD\nlast\nEOD",
        "heredoc closed at the end of the input",
    ),
    // A UTF-8 byte-order mark is skipped.
    ("\u{feff}a = 1", "byte-order mark"),
    // libucl 0.7.3 turns `1 /* c */` into the string "1"; a comment ends a number here.
    ("a = 1 /* sep */ b = 2", "number before a comment"),
    // libucl 0.7.3 rejects a newline between a key and its `{`.
    ("a\n{\n b = 1\n}", "newline before '{'"),
    // libucl looks for `{` anywhere on the line, even inside a quoted value.
    (r#"cmd "a { b""#, "brace inside a quoted value"),
    // libucl 0.7.3's JSON output keeps only the first of repeated array values.
    ("a = [1]\na = [2]", "repeated arrays"),
    ("a = [1, 2]\na = 3", "repeated arrays"),
    // Jailrun's configs break a long command over lines inside one double-quoted string;
    // libucl 0.7.3 refuses the newline.
    ("a = \"one\ntwo\"", "newline inside a double-quoted string"),
    // libucl 0.7.3 decodes \u escapes into NUL bytes.
    (r#"a = "\u00e9\u4e2d""#, "\\u escapes"),
];

include!("libucl/source.rs");

fn build_harness(out: &Path) -> PathBuf {
    let src = libucl_source();
    let exe = out.join("libucl2json");
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-w", "-o"]).arg(&exe);
    for inc in ["include", "src", "uthash", "klib"] {
        cmd.arg(format!("-I{}", src.join(inc).display()));
    }
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libucl/harness.c"));
    for entry in std::fs::read_dir(src.join("src")).expect("libucl src dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "c") {
            cmd.arg(path);
        }
    }
    cmd.arg("-lm");
    let status = cmd.status().expect("gcc runs");
    assert!(
        status.success(),
        "building the libucl harness failed: {cmd:?}"
    );
    exe
}

fn libucl_json(exe: &Path, input: &str) -> Result<Json, String> {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("harness ends");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "libucl printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Equality of JSON data, with floats equal to 1e-12 relative (the two emitters print
/// floats differently).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => {
                let (f, g) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                f == g || (f - g).abs() <= 1e-12 * f.abs().max(g.abs())
            }
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ucl") {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            out.push((path.display().to_string(), text));
        }
    }
    out
}

/// The harness, built once per test binary.
fn harness() -> &'static Path {
    static HARNESS: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, exe) = HARNESS.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let exe = build_harness(tmp.path());
        (tmp, exe)
    });
    exe
}

#[test]
fn same_json_as_libucl() {
    let exe = harness();
    let mut inputs: Vec<(String, String)> = common::table::ALL
        .iter()
        .flat_map(|(name, cases)| {
            cases
                .iter()
                .map(move |(i, _)| (name.to_string(), i.to_string()))
        })
        .collect();
    inputs.extend(fixtures());
    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, input) in &inputs {
        if DIVERGENCES
            .iter()
            .any(|(i, _)| i == input || name.ends_with(i))
        {
            continue;
        }
        let ours: Json =
            serde_json::from_str(&ucl::parse(input).expect("valid case").to_json_compact())
                .expect("our JSON is valid");
        match libucl_json(exe, input) {
            Ok(theirs) if same(&ours, &theirs) => compared += 1,
            Ok(theirs) => failures.push(format!(
                "{name}: {input:?}\n  ours:   {ours}\n  libucl: {theirs}"
            )),
            Err(e) => failures.push(format!(
                "{name}: {input:?}\n  ours:   {ours}\n  libucl error: {e}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared >= 70, "only {compared} cases compared");
}

/// The divergences are real: libucl does differ on each (else the entry is stale).
#[test]
fn divergences_are_still_divergent() {
    let exe = harness();
    for (input, why) in DIVERGENCES {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(input);
        let text = std::fs::read_to_string(&fixture).unwrap_or_else(|_| input.to_string());
        let input = &text.as_str();
        let ours: Json =
            serde_json::from_str(&ucl::parse(input).expect("valid").to_json_compact()).unwrap();
        if let Ok(theirs) = libucl_json(exe, input) {
            assert!(
                !same(&ours, &theirs),
                "{input:?} ({why}) no longer differs from libucl"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Generated configs, in the syntax libucl 0.7.3 shares with us, mean the same to both.
    #[test]
    fn generated_configs_agree_with_libucl(
        entries in prop::collection::btree_map("[a-z_][a-z0-9_.-]{0,6}", node(), 0..6),
        seed in any::<u64>(),
    ) {
        let entries: Vec<(String, Node)> = entries.into_iter().collect();
        let text = document(&entries, &mut Style::new(seed, true));
        // libucl 0.7.3 mangles \\u escapes and rejects i64::MIN (see DIVERGENCES).
        prop_assume!(!text.contains("\\u") && !text.contains("-9223372036854775808"));
        let ours = model(&Node::Obj(entries));
        match libucl_json(harness(), &text) {
            Ok(theirs) => prop_assert!(same(&ours, &theirs), "input:\n{}\nours:   {}\nlibucl: {}", text, ours, theirs),
            Err(e) => panic!("libucl rejects:\n{text}\n{e}"),
        }
    }
}
