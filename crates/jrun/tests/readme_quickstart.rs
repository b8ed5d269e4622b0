//! The README's quick start, run exactly as printed (root; CI runs as root): the lines of
//! its first step, as one bash script, from the repository's root, on a fresh home each
//! time, three times in a row. `curl` must be answered on the first try: `up` returns only
//! once the service is ready. Only the environment is the test's: `HOME` is a fresh
//! folder (so `~/.jrun` is new), `jrun` is this build, and the resolver's upstream is a
//! local fake, so nothing leaves the machine.

mod local_env;

mod native_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use native_support::{force_cleanup, FakeUpstream};

/// The commands of the quick start's step 1, comments dropped.
fn quick_start(readme: &str) -> String {
    let section = readme
        .split("\n## Quick start\n")
        .nth(1)
        .expect("the README has a Quick start section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the quick start has a sh block");
    let step1 = block
        .split("\n# 2.")
        .next()
        .expect("the block has a step 2 after step 1");
    step1
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Stops and removes the instance in `<home>/.jrun` whatever happens to the test.
struct Home {
    dir: tempfile::TempDir,
}

impl Drop for Home {
    fn drop(&mut self) {
        let home = self.dir.path().join(".jrun");
        let _ = local_env::jrun()
            .arg("stop")
            .env("HOME", self.dir.path())
            .env_remove("JRUN_HOME")
            .env("JRUN_RUNTIME", "native")
            .output();
        force_cleanup(&home);
    }
}

#[test]
fn the_quick_start_works_as_printed_the_first_time() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("the quick start needs root (network namespaces); CI runs as root");
    }
    let root = repo_root();
    let script = quick_start(&std::fs::read_to_string(root.join("README.md")).unwrap());
    assert!(script.contains("jrun start"), "{script}");
    assert!(script.contains("curl"), "{script}");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_jrun")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let upstream = FakeUpstream::start();
    for round in 1..=3 {
        let home = Home {
            dir: tempfile::Builder::new()
                .prefix("jrun-quickstart-")
                .tempdir()
                .unwrap(),
        };
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&root)
            .env("HOME", home.dir.path())
            .env("PATH", &path)
            .envs(local_env::LOCAL_ENV.iter().copied())
            .env("JRUN_DNS_UPSTREAM", upstream.addr.to_string())
            .env_remove("JRUN_HOME")
            .env_remove("JRUN_RUNTIME")
            .env_remove("JRUN_MESH_NETWORK")
            .env_remove("JRUN_FAULT")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "round {round}: the quick start failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains("Hello from a jrun jail"),
            "round {round}: curl did not get the page\n{stdout}\n{stderr}"
        );
        assert!(
            home.dir.path().join(".jrun").is_dir(),
            "the instance lives in ~/.jrun"
        );
        assert!(stdout.contains("instance stopped"), "{stdout}");
    }
}

#[test]
fn the_quick_start_is_read_from_the_readme() {
    let readme = "intro\n## Quick start\n\n```sh\n# 1. main\nexport A=1\njrun start\n\n# 2. tests\n./scripts/test\n```\n";
    assert_eq!(quick_start(readme), "export A=1\njrun start");
}
