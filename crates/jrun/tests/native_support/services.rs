//! The services suites' instance: `JRUN_LOG_MAX_BYTES` small, started, and on drop stopped
//! with any mount a failed test left under its home cleared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Instance;

/// An instance whose drop also clears any mount a failed test left under its home.
pub struct Jrun {
    pub inst: Instance,
}

impl Jrun {
    pub fn new() -> Self {
        let mut inst = Instance::new(false);
        inst.set_env("JRUN_LOG_MAX_BYTES", "4000");
        inst.start();
        Jrun { inst }
    }

    pub fn home(&self) -> &Path {
        self.inst.home.path()
    }

    /// `status --json`'s services of `jail`, by name.
    pub fn service(&self, jail: &str, name: &str) -> serde_json::Value {
        self.inst.status()["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["jail"] == jail && s["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Polls `service` until `pred` holds (at most `secs`); returns the last value seen.
    pub fn wait_service(
        &self,
        jail: &str,
        name: &str,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.service(jail, name);
            if pred(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Jrun {
    fn drop(&mut self) {
        let _ = self.inst.run(&["stop"]);
        for m in mount_points_under(self.home()) {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
    }
}

/// Mount points of this (the host's) mount namespace at or under `dir`.
pub fn mount_points_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// A folder next to the config with `files` in it.
pub fn folder(home: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}
