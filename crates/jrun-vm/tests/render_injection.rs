//! Injection: whatever names, paths, commands and values pass validation, no quote,
//! newline, `;` or `$(` escapes its place. Every rendered file still parses, the script
//! installs each file byte for byte, and each value reaches its command as one argument.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use jrun_core::config::{Exec, JailName, Mount, SetupKind, SetupSource, SetupStep};
use jrun_vm::render::{render_all, SetupSources, StepFiles};
use jrun_vm::spec::YggVersion;
use proptest::prelude::*;

fn label() -> impl Strategy<Value = JailName> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]".prop_map(|s| JailName::new(s).unwrap())
}

/// Text full of what a shell, pf, unbound or jail.conf would interpret.
fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just(";".to_string()),
            Just("$(".to_string()),
            Just("`".to_string()),
            Just("\\".to_string()),
            Just("}".to_string()),
            Just("#".to_string()),
            "[a-z ]{1,4}",
        ],
        1..12,
    )
    .prop_map(|v| v.concat())
}

/// A guest path that passes validation but still holds quotes, `$(` and `;`.
fn guest_path() -> impl Strategy<Value = PathBuf> {
    proptest::collection::vec("[a-z'\";$(`\\\\]{1,6}", 1..4)
        .prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/"))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn hostile_values_stay_in_their_place(
        jail in label(),
        cmd in hostile(),
        dir in hostile(),
        env_val in hostile(),
        health in hostile(),
        exec_name in hostile(),
        var_val in hostile(),
        setup_text in hostile(),
        playbook in hostile(),
        target in guest_path(),
    ) {
        let mut spec = common::stack(YggVersion::V0_5);
        let j = &mut spec.jails[1];
        j.name = jail.clone();
        j.firewall.jail = jail.clone();
        j.execs = vec![Exec {
            name: exec_name,
            cmd: cmd.clone(),
            dir: Some(dir.clone()),
            env: BTreeMap::from([("APP_ENV".to_string(), env_val.clone())]),
            healthcheck: Some(jrun_core::config::Healthcheck {
                test: health.clone(),
                interval: std::time::Duration::from_secs(5),
                timeout: std::time::Duration::from_secs(2),
                retries: 3,
            }),
            user: None,
        }];
        j.mounts = vec![Mount { name: "m".into(), host: "/h".into(), jail: target.clone() }];
        j.setup = vec![
            SetupStep { name: "a".into(), kind: SetupKind::Shell, source: SetupSource::File("/s.sh".into()), vars: BTreeMap::from([("V".into(), var_val.clone())]) },
            SetupStep { name: "b".into(), kind: SetupKind::Ansible, source: SetupSource::File("/pb/site.yml".into()), vars: BTreeMap::from([("W".into(), var_val.clone())]) },
        ];
        let key = spec.mesh.as_mut().unwrap().jail_keys.remove(&common::name("web")).unwrap();
        spec.mesh.as_mut().unwrap().jail_keys.insert(jail.clone(), key);
        spec.jails[2].base = Some(jail.clone());
        let mut sources = common::sources();
        sources.insert("/s.sh".into(), StepFiles {
            entry: "s.sh".into(),
            files: BTreeMap::from([("s.sh".to_string(), setup_text.clone())]),
        });
        sources.insert("/pb/site.yml".into(), StepFiles {
            entry: "site.yml".into(),
            files: BTreeMap::from([
                ("site.yml".to_string(), playbook.clone()),
                ("templates/a.j2".to_string(), setup_text.clone()),
            ]),
        });
        let _: &SetupSources = &sources;

        let r = render_all(&spec, &sources).unwrap();
        let dir_t = tempfile::tempdir().unwrap();
        let run = common::sandbox::run(&r.script.text, dir_t.path());

        // Every file lands byte for byte, once.
        let installed = run.files_map();
        prop_assert_eq!(installed.len(), run.files.len(), "no file is written twice");
        for path in installed.keys() {
            let known = r.files.iter().any(|f| &f.guest_path == path)
                || path == "/var/unbound/forward.conf"
                || path.contains("/var/jrun/setup/");
            prop_assert!(known, "unexpected file {}", path);
        }
        for f in &r.files {
            prop_assert_eq!(installed.get(&f.guest_path), Some(&f.content));
        }
        // The setup files and vars each arrive whole: the script's text, a shell var as
        // one argument, the playbook's folder file by file, its vars as JSON.
        let root = format!("/usr/local/jrun/jails/{jail}");
        prop_assert_eq!(installed.get(&format!("{root}/var/jrun/setup/0/s.sh")), Some(&setup_text));
        prop_assert_eq!(installed.get(&format!("{root}/var/jrun/setup/1/site.yml")), Some(&playbook));
        prop_assert_eq!(installed.get(&format!("{root}/var/jrun/setup/1/templates/a.j2")), Some(&setup_text));
        let vars: BTreeMap<String, String> =
            serde_json::from_str(&installed[&format!("{root}/var/jrun/setup/1.vars.json")]).unwrap();
        prop_assert_eq!(vars.get("W"), Some(&var_val));
        let var_arg = format!("V={var_val}");
        prop_assert!(run.calls.iter().any(|c| c[0] == "jexec" && c.contains(&var_arg)));
        let ansible = "cd '/var/jrun/setup/1' && exec ansible-playbook -i localhost, -c local './site.yml' -e @'/var/jrun/setup/1.vars.json'";
        prop_assert!(run.calls.iter().any(|c| c[0] == "jexec" && c.last().map(String::as_str) == Some(ansible)));
        let mkdir_target = format!("{root}{}", target.display());
        prop_assert!(run.calls.iter().any(|c| c[0] == "mkdir" && c.last() == Some(&mkdir_target)));

        // The service script hands the command to sh -c as one word.
        let rc = &installed[&format!("{root}/usr/local/etc/rc.d/jrun_services")];
        let calls = run_services(rc, dir_t.path());
        prop_assert_eq!(calls.len(), 2, "the exec and its health check");
        let argv = &calls[0];
        let t = cmd.trim_start();
        let execd = if t == "exec" || t.starts_with("exec ") || t.starts_with("exec\t") {
            cmd.clone()
        } else {
            format!("exec {cmd}")
        };
        let expected_cmd = format!("cd {} && {execd}", jrun_vm::quote::sh_quote(&dir));
        prop_assert_eq!(argv.last(), Some(&expected_cmd));
        let env_arg = format!("APP_ENV={env_val}");
        prop_assert!(argv.contains(&env_arg));
        // The health loop is one word for sh -c; run with stubs, it hands the check to
        // the inner sh -c whole.
        let health_loop = calls[1].last().unwrap();
        let check = run_health_once(health_loop, dir_t.path());
        let in_dir = format!("cd {} && {health}", jrun_vm::quote::sh_quote(&dir));
        prop_assert_eq!(check, vec!["2".to_string(), "/bin/sh".into(), "-c".into(), in_dir]);

        // The fstab keeps one line per mount with four fields after the device.
        let fstab = &installed[&format!("/usr/local/etc/jrun/fstab.{jail}")];
        let line = fstab.lines().find(|l| !l.starts_with('#')).unwrap();
        prop_assert_eq!(line.split_whitespace().count(), 6);
    }
}

/// Runs a jail's `jrun_services` rc script with a stub `rc.subr` and `daemon`, returning
/// the argv of each daemon call.
fn run_services(rc: &str, dir: &std::path::Path) -> Vec<Vec<String>> {
    let stub = dir.join("daemon-argv");
    let _ = std::fs::remove_file(&stub);
    let text = rc
        .replace(
            ". /etc/rc.subr",
            "load_rc_config() { :; }\nrun_rc_command() { jrun_services_start; }",
        )
        .replace("mkdir -p /var/log/jrun /var/run/jrun", ":")
        .replace("rm -f /var/run/jrun/ready*", ":")
        .replace("/usr/sbin/daemon", "record");
    let script = format!("record() {{ printf '%s\\0' \"$@\" >> \"$STUB\"; printf '\\036\\0' >> \"$STUB\"; }}\n{text}");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("rc")
        .arg("start")
        .env("STUB", &stub)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    split_records(&std::fs::read(&stub).unwrap())
}

/// NUL-separated arguments, calls ended by a `\x1e` argument.
fn split_records(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut args: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    args.pop();
    let mut out = vec![];
    let mut cur = vec![];
    for a in args {
        if a == b"\x1e" {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(String::from_utf8(a.to_vec()).unwrap());
        }
    }
    out
}

/// Runs one round of a health loop with `sleep` succeeding once and `timeout` recorded.
fn run_health_once(health_loop: &str, dir: &std::path::Path) -> Vec<String> {
    let stub = dir.join("timeout-argv");
    let _ = std::fs::remove_file(&stub);
    let script = format!(
        "n=0\nsleep() {{ n=$((n + 1)); [ \"$n\" -le 1 ]; }}\ntouch() {{ :; }}\ntimeout() {{ printf '%s\\0' \"$@\" >> \"$STUB\"; printf '\\036\\0' >> \"$STUB\"; }}\n{health_loop}"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("STUB", &stub)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    split_records(&std::fs::read(&stub).unwrap()).remove(0)
}
