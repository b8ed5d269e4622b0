//! Golden tests of `jrun plan` for a realistic stack (tests/fixtures/plan/stack.ucl)
//! and its variants: real command lines, stored stdout.

mod local_env;

use std::path::{Path, PathBuf};
use std::process::Output;

use jrun_core::config;
use jrun_core::plan::{plan, Options, Probe};
use jrun_core::state::{LockWait, State, StateStore};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/plan")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name).canonicalize().unwrap()
}

/// A throwaway `JRUN_HOME` (and working folder, so no stray `.env` is read).
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Home(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn jrun(&self, args: &[&str]) -> Output {
        local_env::jrun()
            .args(args)
            .env_clear()
            .envs(local_env::LOCAL_ENV.iter().copied())
            .env("HOME", self.path())
            .env("JRUN_HOME", self.path().join("jrun"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.path())
            .output()
            .unwrap()
    }

    /// `jrun plan <fixture> [args…]`: stdout, with the fixture folder shown as `[FIXTURES]`;
    /// the command must succeed with nothing on stderr.
    fn plan(&self, config: &str, args: &[&str]) -> String {
        let cfg = fixture(config);
        let mut all = vec!["plan", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.jrun(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "jrun plan {config} failed: {stderr}");
        assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
        let dir = fixtures().canonicalize().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .replace(dir.to_str().unwrap(), "[FIXTURES]")
    }

    /// Records `config` as fully deployed, as a successful `jrun up` would.
    fn deploy(&self, config: &str) {
        self.deploy_as(config, config)
    }

    /// Records `config` as fully deployed from the file `edited`: `edited` is the same
    /// config file, edited since.
    fn deploy_as(&self, config: &str, edited: &str) {
        let cfg = config::load(&fixture(config), 2222).unwrap();
        let store = StateStore::new(self.path().join("jrun"));
        let mut lock = store.lock(LockWait::No).unwrap();
        let options = Options {
            file: Some(fixture(edited)),
            ..Options::default()
        };
        let p = plan(&cfg, &lock.state, &Probe::default(), &options).unwrap();
        p.apply_to(&mut lock.state);
        lock.save().unwrap();
    }

    fn state(&self) -> State {
        StateStore::new(self.path().join("jrun")).read().unwrap()
    }
}

#[test]
fn first_deploy() {
    let home = Home::new();
    insta::assert_snapshot!(home.plan("stack.ucl", &[]));
    // Planning changes nothing.
    assert!(!home.path().join("jrun/state.json").exists());
}

#[test]
fn no_change() {
    let home = Home::new();
    home.deploy("stack.ucl");
    let before = home.state();
    insta::assert_snapshot!(home.plan("stack.ucl", &[]), @"Nothing to do: 6 jails already match the config.");
    assert_eq!(home.state(), before);
}

#[test]
fn one_forward_added() {
    let home = Home::new();
    home.deploy_as("stack.ucl", "forward-added.ucl");
    insta::assert_snapshot!(home.plan("forward-added.ucl", &[]));
}

#[test]
fn one_forward_added_json() {
    let home = Home::new();
    home.deploy_as("stack.ucl", "forward-added.ucl");
    insta::assert_snapshot!(home.plan("forward-added.ucl", &["--json"]));
}

#[test]
fn one_jail_removed() {
    let home = Home::new();
    home.deploy_as("stack.ucl", "removed.ucl");
    insta::assert_snapshot!(home.plan("removed.ucl", &[]));
}

#[test]
fn one_jail_renamed() {
    let home = Home::new();
    home.deploy_as("stack.ucl", "renamed.ucl");
    insta::assert_snapshot!(home.plan("renamed.ucl", &[]));
}

#[test]
fn a_static_ip_moved() {
    let home = Home::new();
    home.deploy_as("stack.ucl", "static-moved.ucl");
    insta::assert_snapshot!(home.plan("static-moved.ucl", &[]));
}

#[test]
fn named_jails_bring_their_dependencies() {
    let home = Home::new();
    insta::assert_snapshot!(home.plan("stack.ucl", &["worker"]));
}

#[test]
fn provision_recreates_everything() {
    let home = Home::new();
    home.deploy("stack.ucl");
    insta::assert_snapshot!(home.plan("stack.ucl", &["--provision"]));
}

/// Another file deployed these jails: `plan` of a file with the same jail names refuses,
/// naming that file; the other file's jails show as untouched in its own plan.
#[test]
fn jails_of_another_file() {
    let home = Home::new();
    home.deploy("stack.ucl");
    let cfg = fixture("removed.ucl");
    let out = home.jrun(&["plan", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The message as one line, whatever the width it was wrapped to.
    let squeeze = |s: &str| s.replace(|c: char| c.is_whitespace() || c == '│', "");
    let stack = fixture("stack.ucl");
    let want = format!(
        "jail api was deployed from {}, and a jail belongs to one config file",
        stack.display()
    );
    assert!(squeeze(&stderr).contains(&squeeze(&want)), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_jail_name_is_an_error() {
    let home = Home::new();
    let cfg = fixture("stack.ucl");
    let out = home.jrun(&["plan", cfg.to_str().unwrap(), "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no jail named nosuch"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_corrupt_state_is_an_error_naming_the_file() {
    let home = Home::new();
    std::fs::create_dir_all(home.path().join("jrun")).unwrap();
    let state = home.path().join("jrun/state.json");
    std::fs::write(&state, "{ not json").unwrap();
    let cfg = fixture("stack.ucl");
    let out = home.jrun(&["plan", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(
        stderr.contains(state.file_name().unwrap().to_str().unwrap()),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// A home holding Jailrun's state.json: the first command converts it (saying so on
/// stderr, one line per jail and pairing); the converted jails keep their host ports.
#[test]
fn jailruns_state_is_converted_on_first_use() {
    let home = Home::new();
    let jrun_home = home.path().join("jrun");
    std::fs::create_dir_all(&jrun_home).unwrap();
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../jrun-core/tests/fixtures/jailrun-state/stack.json");
    std::fs::copy(&original, jrun_home.join("state.json")).unwrap();
    let cfg = fixture("stack.ucl");
    let out = home.jrun(&["plan", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was Jailrun's state; converted it for jrun"),
        "{stderr}"
    );
    assert!(
        stderr.contains("jrun: jail fastapi-314 (10.17.89.12, 15.0-RELEASE): converted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("jrun: pairing 18-pulse-lilac (created here)"),
        "{stderr}"
    );
    // stack.ucl's web wants tcp/8080, which Jailrun's fastapi-314 forwards.
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("jail fastapi-314"), "{stderr}");
    assert_eq!(
        std::fs::read(jrun_home.join("state.jailrun.json")).unwrap(),
        std::fs::read(&original).unwrap()
    );
    // The second command has nothing to convert.
    let out = home.jrun(&["plan", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("converted"), "{stderr}");
    assert!(stderr.contains("tcp/8080"), "{stderr}");
}
