//! A jail's `setup` steps, run in order inside the jail when it is created (and again with
//! `up --provision`). Their output is streamed line by line to the caller's progress.
//!
//! - `type = "shell"`: `/bin/sh <file>` in the jail, in the file's folder, with `vars` as
//!   environment variables.
//! - `type = "ansible"`: `ansible-playbook -i localhost, -c local <file> -e <vars as JSON>`
//!   in the jail when `ansible-playbook` is installed; otherwise a clear error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use jrun_core::config::{JailName, SetupKind, SetupSource, SetupStep};

use crate::jailns;
use crate::names::Layout;

/// The environment every process of a jail starts from (nothing of jrun's own leaks in).
pub fn base_env() -> BTreeMap<String, String> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether `program` is on the `PATH` jails get.
fn installed(program: &str) -> bool {
    base_env()["PATH"]
        .split(':')
        .any(|d| Path::new(d).join(program).is_file())
}

/// The argv (already entering the jail) and environment of one step.
pub fn step_command(
    layout: &Layout,
    jail: &JailName,
    step: &SetupStep,
) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let file = match &step.source {
        SetupSource::File(f) => f,
        SetupSource::Url(u) => {
            return Err(format!(
                "its source is a URL ({u}); the native runtime runs files only: download it next to the config and use `file`"
            ))
        }
    };
    let dir = file
        .parent()
        .map_or_else(|| "/".to_string(), |d| d.to_string_lossy().into_owned());
    let path = file.to_string_lossy().into_owned();
    let mut env = base_env();
    let argv = match step.kind {
        SetupKind::Shell => {
            env.extend(step.vars.clone());
            vec!["/bin/sh".to_string(), path]
        }
        SetupKind::Ansible => {
            if !installed("ansible-playbook") {
                return Err(
                    "ansible-playbook is not installed on this machine; install ansible (e.g. `apt-get install ansible`) or make it a `type = \"shell\"` step"
                        .into(),
                );
            }
            let vars = serde_json::to_string(&step.vars).expect("plain data serialises");
            [
                "ansible-playbook",
                "-i",
                "localhost,",
                "-c",
                "local",
                &path,
                "-e",
                &vars,
            ]
            .map(str::to_string)
            .to_vec()
        }
    };
    Ok((jailns::jail_argv(layout, jail, &dir, &argv), env))
}

/// Runs every step in order; `line` hears each line of output as it comes. The first
/// failing step stops the run; the error names the jail and the step.
pub fn run_steps(
    layout: &Layout,
    jail: &JailName,
    steps: &[SetupStep],
    line: &mut dyn FnMut(&str, &str),
) -> Result<(), String> {
    for step in steps {
        let fail = |why: String| format!("jail `{jail}`, setup step `{}`: {why}", step.name);
        let (argv, env) = step_command(layout, jail, step).map_err(fail)?;
        line(&step.name, "starting");
        let status = run_streaming(&argv, &env, &mut |l| line(&step.name, l))
            .map_err(|e| fail(format!("cannot run {}: {e}", argv[7..].join(" "))))?;
        if !status.success() {
            return Err(fail(format!(
                "it failed ({status}); its output is above. Fix it and run `jrun up` again"
            )));
        }
    }
    Ok(())
}

/// Runs `argv`, merging stdout and stderr into one stream of lines handed to `line`.
fn run_streaming(
    argv: &[String],
    env: &BTreeMap<String, String>,
    line: &mut dyn FnMut(&str),
) -> std::io::Result<std::process::ExitStatus> {
    let (reader, writer) = std::io::pipe()?;
    let err_writer = writer.try_clone()?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(err_writer);
    let mut child = cmd.spawn()?;
    // Our copies of the write end must close, or the reader never sees the end.
    drop(cmd);
    for l in BufReader::new(reader).lines() {
        match l {
            Ok(l) => line(&l),
            Err(_) => break,
        }
    }
    child.wait()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn step(kind: SetupKind, source: SetupSource) -> SetupStep {
        SetupStep {
            name: "init".into(),
            kind,
            source,
            vars: [("GREETING".to_string(), "hi there".to_string())].into(),
        }
    }

    #[test]
    fn a_shell_step_runs_its_file_in_the_jail_with_vars() {
        let layout = Layout::new(Path::new("/tmp/h"));
        let jail = JailName::new("web").unwrap();
        let s = step(
            SetupKind::Shell,
            SetupSource::File(PathBuf::from("/cfg/setup/init.sh")),
        );
        let (argv, env) = step_command(&layout, &jail, &s).unwrap();
        assert_eq!(argv[0], "nsenter");
        assert_eq!(argv[5], "--chdir=/cfg/setup");
        assert_eq!(&argv[6..], ["--", "/bin/sh", "/cfg/setup/init.sh"]);
        assert_eq!(env["GREETING"], "hi there");
        assert!(env["PATH"].contains("/usr/bin"));
    }

    #[test]
    fn a_url_source_is_refused_with_a_way_out() {
        let layout = Layout::new(Path::new("/tmp/h"));
        let jail = JailName::new("web").unwrap();
        let s = step(
            SetupKind::Shell,
            SetupSource::Url("https://example.org/x.sh".into()),
        );
        let err = step_command(&layout, &jail, &s).unwrap_err();
        assert!(err.contains("download it next to the config"), "{err}");
    }

    #[test]
    fn ansible_without_ansible_playbook_is_a_clear_error() {
        if installed("ansible-playbook") {
            // With ansible installed the step is a playbook run with the vars as JSON.
            let layout = Layout::new(Path::new("/tmp/h"));
            let jail = JailName::new("web").unwrap();
            let s = step(
                SetupKind::Ansible,
                SetupSource::File(PathBuf::from("/cfg/site.yml")),
            );
            let (argv, _) = step_command(&layout, &jail, &s).unwrap();
            assert_eq!(argv[argv.len() - 1], r#"{"GREETING":"hi there"}"#);
            return;
        }
        let layout = Layout::new(Path::new("/tmp/h"));
        let jail = JailName::new("db").unwrap();
        let steps = [step(
            SetupKind::Ansible,
            SetupSource::File(PathBuf::from("/cfg/site.yml")),
        )];
        let err = run_steps(&layout, &jail, &steps, &mut |_, _| {}).unwrap_err();
        assert!(err.contains("jail `db`, setup step `init`"), "{err}");
        assert!(err.contains("ansible-playbook is not installed"), "{err}");
    }

    #[test]
    fn output_is_streamed_line_by_line_from_both_streams() {
        let mut lines = Vec::new();
        let status = run_streaming(
            &[
                "/bin/sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 4".into(),
            ],
            &base_env(),
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(status.code(), Some(4));
        assert_eq!(lines, ["out", "err"]);
    }
}
