//! A jrun instance on the vm runtime against the stand-in guest, driven through the real
//! CLI, for the stand-in flow tests (`vm_flow_standin`, `vm_snapshot_standin`). Each test
//! declares `local_env` and `standin` at its root.

#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::sync::Arc;

use jrun_vm::render::{Script, StepInfo};
use jrun_vm::ssh::RemoteExec;

use super::{local_env, standin};

pub struct Flow {
    pub home: tempfile::TempDir,
    /// Every setting its jrun runs with: `local_env`'s, then the test's.
    pub env: Vec<(String, String)>,
}

impl Flow {
    pub fn new(env: &[(&str, String)]) -> Flow {
        let mut all: Vec<(String, String)> = local_env::LOCAL_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.clone()));
        }
        Flow {
            home: tempfile::tempdir().unwrap(),
            env: all,
        }
    }

    pub fn jrun(&self, args: &[&str]) -> Output {
        let mut cmd = local_env::jrun();
        cmd.args(args)
            .env("JRUN_HOME", self.home.path())
            // No terminal: a confirmation is refused unless -y is given.
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.jrun(args);
        assert!(
            out.status.success(),
            "jrun {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args`, expects exit `code`, returns stderr on one line (miette wraps it,
    /// with `│` margins).
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.jrun(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "jrun {args:?}\n--- stdout\n{}\n--- stderr\n{err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err.replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn runtime(&self) -> jrun_vm::runtime::VmRuntime {
        let mut vars: std::collections::HashMap<String, String> =
            self.env.iter().cloned().collect();
        vars.insert("JRUN_HOME".into(), self.home.path().display().to_string());
        let settings = jrun_core::settings::Settings::from_vars(&vars).unwrap();
        jrun_vm::runtime::VmRuntime::new(
            &settings,
            Arc::new(jrun_core::exec::SystemRunner),
            Default::default(),
        )
    }

    /// Runs `body` in the guest as root and returns its output.
    pub fn guest(&self, body: &str) -> Vec<String> {
        let script = Script {
            text: format!("#!/bin/sh\nset -eu\n{body}\nprintf 'jrun-done\\n'\n"),
            steps: vec![StepInfo {
                jail: None,
                name: "test".into(),
            }],
        };
        let mut lines = vec![];
        self.runtime()
            .executor()
            .unwrap()
            .run_script(&script, &mut |p| {
                if let jrun_vm::ssh::Progress::Output(l) = p {
                    lines.push(l.to_string())
                }
            })
            .unwrap();
        lines
    }

    /// The shim log's calls (fields TAB-separated), from call `from` on.
    pub fn calls_since(&self, from: usize) -> Vec<String> {
        let log = self.guest(&format!("cat {}", standin::SHIM_LOG));
        log[from.min(log.len())..].to_vec()
    }

    pub fn jsonl(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        let rt = self.runtime();
        if let Some(vm) = rt.process() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(vm.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
