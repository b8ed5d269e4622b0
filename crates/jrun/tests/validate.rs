//! `jrun validate` as a user runs it: the real binary on the fixtures of `tests/fixtures/`,
//! with stored stdout and stderr.

mod local_env;

use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs `jrun validate <args>` from the repository root, with a private JRUN_HOME and no
/// JRUN_* settings inherited from the caller.
fn validate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = local_env::jrun();
    cmd.arg("validate").args(args).current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("JRUN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("JRUN_HOME", home.path()).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn summary_of(fixture: &str) -> String {
    let out = validate(&[&format!("tests/fixtures/{fixture}")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warnings expected");
    text(&out.stdout)
}

#[test]
fn summary_of_a_web_app() {
    insta::assert_snapshot!("summary_webapp", summary_of("webapp.ucl"));
}

#[test]
fn summary_of_a_stack() {
    insta::assert_snapshot!("summary_stack", summary_of("stack.ucl"));
}

#[test]
fn summary_of_a_base_block() {
    insta::assert_snapshot!("summary_base", summary_of("base.ucl"));
}

#[test]
fn summary_of_the_full_example() {
    insta::assert_snapshot!("summary_full", summary_of("full.ucl"));
}

#[test]
fn errors_go_to_stderr_with_exit_code_1() {
    let out = validate(&["tests/fixtures/invalid/many-errors.ucl"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    insta::assert_snapshot!("errors_many", text(&out.stderr));
}

#[test]
fn every_invalid_fixture_fails() {
    let dir = repo().join("tests/fixtures/invalid");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let out = validate(&[&format!("tests/fixtures/invalid/{name}")], &[]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(text(&out.stderr).contains("Error:"), "{name}");
    }
}

#[test]
fn the_ssh_port_comes_from_the_settings() {
    let out = validate(&["tests/fixtures/webapp.ucl"], &[("JRUN_SSH_PORT", "8080")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("host port tcp 8080 is already taken by the VM's SSH port"),
        "{}",
        text(&out.stderr)
    );
    let out = validate(
        &["tests/fixtures/invalid/ssh-port.ucl"],
        &[("JRUN_SSH_PORT", "2300")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn json_is_the_typed_config() {
    let out = validate(&["tests/fixtures/stack.ucl", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jails = v["jails"].as_array().unwrap();
    let names: Vec<&str> = jails.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["python", "postgres", "api"]);
    assert_eq!(jails[2]["base"], "python");
    assert_eq!(jails[2]["forwards"][1]["proto"], "udp");
    let config: jrun_core::config::Config = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config.path, repo().join("tests/fixtures/stack.ucl"));
}

#[test]
fn json_problems_on_failure() {
    let out = validate(
        &["tests/fixtures/invalid/unknown-depends.ucl", "--json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["problems"][0];
    assert_eq!(p["severity"], "error");
    assert_eq!(p["file"], "tests/fixtures/invalid/unknown-depends.ucl");
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(3), Some(12))
    );
    assert_eq!(p["help"], "did you mean `postgres`?");
}

#[test]
fn warnings_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jrun.ucl");
    std::fs::write(
        &file,
        "jail \"web\" { mount { data { host = \"./data\"; jail = \"/data\"; } } }\n",
    )
    .unwrap();
    let out = validate(&[file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("Warning:"), "{err}");
    assert!(err.contains("host folder"), "{err}");
    assert!(text(&out.stdout).contains("is valid: 1 jail"));
}

#[test]
fn an_unreadable_file_is_named() {
    let out = validate(&["tests/fixtures/no-such.ucl"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read tests/fixtures/no-such.ucl"),
        "{}",
        text(&out.stderr)
    );
}
