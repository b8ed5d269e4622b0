//! Which Yggdrasil is installed: 0.4 and 0.5 read different configs and do not peer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The config dialect of an installed Yggdrasil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum YggVersion {
    /// 0.4.x: the key is a hex `PrivateKey` inside the config (Debian 12 ships 0.4.7).
    V0_4,
    /// 0.5.x: the key is read from a PEM file named by `PrivateKeyPath`.
    V0_5,
}

/// Why the installed version could not be told.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell which Yggdrasil {binary} is ({cause}); install Yggdrasil 0.4 or 0.5 (Debian: apt-get install yggdrasil)")]
pub struct YggVersionError {
    /// The binary that was asked.
    pub binary: PathBuf,
    /// What went wrong.
    pub cause: String,
}

impl YggVersion {
    /// The dialect of a version string such as `0.4.7`, `v0.5.12` or Debian's `0.4.7-1+b5`.
    pub fn from_version_str(v: &str) -> Option<Self> {
        let v = v.trim().trim_start_matches('v');
        let mut parts = v.split(['.', '-', '+']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        match (major, minor) {
            (0, 4) => Some(YggVersion::V0_4),
            (0, m) if m >= 5 => Some(YggVersion::V0_5),
            _ => None,
        }
    }

    /// Reads `Build version: X` from the output of `yggdrasil -version`; Debian's build
    /// prints `unknown` there, which gives `None`.
    pub fn from_version_output(out: &str) -> Option<Self> {
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Build version:"))
            .and_then(YggVersion::from_version_str)
    }

    /// Tells the dialect from a `-genconf` output: 0.4 writes a top-level `PublicKey`, 0.5
    /// no longer does.
    pub fn from_genconf_output(out: &str) -> Option<Self> {
        if !out.contains("PrivateKey") {
            return None;
        }
        let has_public_key = out
            .lines()
            .any(|l| l.trim_start().starts_with("PublicKey:"));
        Some(if has_public_key {
            YggVersion::V0_4
        } else {
            YggVersion::V0_5
        })
    }

    /// Asks the installed binary: `-version` first, then Debian's package database, then the
    /// shape of a generated config.
    pub fn detect(binary: &Path) -> Result<Self, YggVersionError> {
        let err = |cause: String| YggVersionError {
            binary: binary.to_path_buf(),
            cause,
        };
        let version = Command::new(binary)
            .arg("-version")
            .output()
            .map_err(|e| err(format!("cannot run it: {e}")))?;
        if let Some(v) = YggVersion::from_version_output(&String::from_utf8_lossy(&version.stdout))
        {
            return Ok(v);
        }
        let dpkg = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "yggdrasil"])
            .output();
        if let Ok(out) = dpkg {
            if out.status.success() {
                if let Some(v) = YggVersion::from_version_str(&String::from_utf8_lossy(&out.stdout))
                {
                    return Ok(v);
                }
            }
        }
        let genconf = Command::new(binary)
            .arg("-genconf")
            .output()
            .map_err(|e| err(format!("cannot run it: {e}")))?;
        YggVersion::from_genconf_output(&String::from_utf8_lossy(&genconf.stdout))
            .ok_or_else(|| err("neither -version, dpkg nor -genconf told".into()))
    }
}

impl fmt::Display for YggVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            YggVersion::V0_4 => "0.4",
            YggVersion::V0_5 => "0.5",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        use YggVersion::*;
        assert_eq!(YggVersion::from_version_str("0.4.7-1+b5"), Some(V0_4));
        assert_eq!(YggVersion::from_version_str("v0.5.12"), Some(V0_5));
        assert_eq!(YggVersion::from_version_str("0.3.16"), None);
        assert_eq!(YggVersion::from_version_str("unknown"), None);
        let debian = "Build name: unknown\nBuild version: unknown\n";
        assert_eq!(YggVersion::from_version_output(debian), None);
        let upstream = "Build name: yggdrasil\nBuild version: 0.5.12\n";
        assert_eq!(YggVersion::from_version_output(upstream), Some(V0_5));
        let g04 = "{\n  PublicKey: 30\n  PrivateKey: 59\n}";
        let g05 = "{\n  PrivateKey: 59\n  PrivateKeyPath: \"\"\n}";
        assert_eq!(YggVersion::from_genconf_output(g04), Some(V0_4));
        assert_eq!(YggVersion::from_genconf_output(g05), Some(V0_5));
        assert_eq!(YggVersion::from_genconf_output(""), None);
    }

    /// The test machines and CI install Debian's yggdrasil 0.4.7.
    #[test]
    fn detects_the_installed_binary() {
        let v = YggVersion::detect(Path::new("yggdrasil")).unwrap();
        assert_eq!(v, YggVersion::V0_4);
        assert!(YggVersion::detect(Path::new("/nonexistent/yggdrasil")).is_err());
    }
}
