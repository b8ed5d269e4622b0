//! `ucl2json`: output, exit codes and the `FILE:LINE:COL: message` error format.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ucl2json"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ucl2json starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("ucl2json finishes")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn file_argument_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jails.ucl");
    std::fs::write(
        &path,
        "jail \"web\" {\n  ip = \"10.17.89.2\"\n  ports [80, 443]\n}\n",
    )
    .unwrap();
    let out = run(&[path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\n  \"jail\": {\n    \"web\": {\n      \"ip\": \"10.17.89.2\",\n      \"ports\": [\n        80,\n        443\n      ]\n    }\n  }\n}\n"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn stdin_by_dash_and_by_default() {
    for args in [&["-"][..], &[][..]] {
        let out = run(args, b"a = 1; a = 2");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(text(&out.stdout), "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
    }
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ucl");
    std::fs::write(&path, "a {\n  b = [1, 2\n").unwrap();
    let p = path.to_str().unwrap();
    let out = run(&[p], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "{p}:3:1: expected ']' to close the array opened at 2:7, found the end of the input\n"
        )
    );
}

#[test]
fn syntax_error_on_stdin_says_stdin() {
    let out = run(&[], b"x = 1\ny = \"open\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "<stdin>:2:5: unterminated string: expected '\"' to close the string opened at 2:5\n"
    );
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ucl");
    let out = run(&[missing.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("ucl2json: cannot read "), "{err}");
    assert!(err.contains("missing.ucl"), "{err}");
}

#[test]
fn invalid_utf8_is_an_error_with_position() {
    let out = run(&[], b"a = 1\nb = \"x\xff\"\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "<stdin>:2:7: invalid UTF-8 (byte 0xff); UCL files must be UTF-8\n"
    );
}

#[test]
fn too_many_arguments_is_a_usage_error() {
    let out = run(&["a", "b"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage"));
}
