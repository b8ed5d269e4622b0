//! Settings from `JRUN_*` environment variables and an optional `.env` file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Which runtime jails live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// FreeBSD in QEMU, driven over SSH.
    Vm,
    /// Linux network namespaces, as root.
    Native,
}

/// Everything jrun takes from its environment, typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// `JRUN_HOME` (default `~/.jrun`): state, keys, logs.
    pub home: PathBuf,
    /// `JRUN_RUNTIME` (default `vm`).
    pub runtime: RuntimeKind,
    /// `JRUN_SSH_PORT` (default 2222): the host port that reaches the VM; no forward may take it.
    pub ssh_port: u16,
    /// `JRUN_QEMU_MEMORY` (default `4096M`).
    pub qemu_memory: String,
    /// `JRUN_QEMU_CPUS` (default: the host's cores).
    pub qemu_cpus: u32,
    /// `JRUN_QEMU_DISK_SIZE` (default `20G`).
    pub qemu_disk_size: String,
    /// `JRUN_BSD_VERSION` (default `15.0`).
    pub bsd_version: String,
    /// `JRUN_MESH_NETWORK` (default true): whether jails get Yggdrasil nodes.
    pub mesh_network: bool,
    /// `JRUN_RELAY`: the pairing relay's URL.
    pub relay: String,
    /// `JRUN_RELAY_INSECURE` (default false): accept a plain `http://` relay on another
    /// machine (loopback relays are always accepted), as `jrun pair --insecure-relay` does.
    pub relay_insecure: bool,
    /// `JRUN_RELAY_PEER` (default [`DEFAULT_RELAY_PEER`], as Jailrun): the Yggdrasil node
    /// the VM's node peers with, so paired jails can route to each other; `none` peers
    /// with nobody.
    pub relay_peer: Option<String>,
    /// `JRUN_QEMU_ACCEL` (default: the platform's, e.g. `kvm:tcg` on Linux): the QEMU
    /// accelerators to try, in order. Set `tcg` where `/dev/kvm` exists but hangs guests.
    pub qemu_accel: Option<QemuAccel>,
    /// `JRUN_BSD_MIRROR` (default [`DEFAULT_BSD_MIRROR`]): the base URL of FreeBSD's
    /// download tree, for the VM image and jails' `base.txz`. No trailing `/`.
    pub bsd_mirror: String,
    /// `JRUN_VM_BOOT_TIMEOUT` (default 600): seconds `jrun start` waits for the VM's SSH.
    pub vm_boot_timeout_secs: u64,
    /// `JRUN_GITHUB_RAW` (default [`DEFAULT_GITHUB_RAW`]): where GitHub files (`url` setup
    /// steps, `hub://` playbooks) are fetched from, as `<base>/<owner>/<repo>/<ref>/<path>`.
    /// No trailing `/`.
    pub github_raw: String,
}

/// GitHub's raw file host.
pub const DEFAULT_GITHUB_RAW: &str = "https://raw.githubusercontent.com";

/// The public relay's Yggdrasil node, which Jailrun's VMs peer with.
pub const DEFAULT_RELAY_PEER: &str = "tcp://relay.jail.run:37100";

/// FreeBSD's own download tree.
pub const DEFAULT_BSD_MIRROR: &str = "https://download.freebsd.org";

/// The accelerators `JRUN_QEMU_ACCEL` may name.
pub const QEMU_ACCELERATORS: &[&str] = &["kvm", "hvf", "whpx", "nvmm", "tcg"];

/// A colon list of distinct [`QEMU_ACCELERATORS`] (`kvm`, `kvm:tcg`): safe to put in
/// QEMU's `-machine accel=` value, since no other character gets through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct QemuAccel(String);

impl QemuAccel {
    /// `None` unless every `:`-separated part is a known accelerator, named once.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let known = parts.iter().all(|p| QEMU_ACCELERATORS.contains(p));
        let distinct = parts
            .iter()
            .enumerate()
            .all(|(i, p)| !parts[..i].contains(p));
        (known && distinct).then(|| QemuAccel(s.to_string()))
    }

    /// The list as QEMU takes it (`kvm:tcg`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QemuAccel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const DEFAULT_RELAY: &str = "https://relay.jail.run";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{var}={value:?} is not valid: {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("could not read {path}: {source}")]
    DotEnv {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected KEY=VALUE")]
    DotEnvSyntax { path: PathBuf, line: usize },
    #[error("cannot find a home folder for JRUN_HOME; set JRUN_HOME")]
    NoHome,
    #[error("could not {action} the jrun home folder {path}: {source}; set JRUN_HOME to a folder you can write")]
    Home {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Settings {
    /// Reads the process environment, with `./.env` (if present) filling in variables
    /// the environment does not set. `home` is then created if missing and made canonical
    /// (see [`prepare_home`]).
    pub fn load() -> Result<Self, SettingsError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let dotenv = Path::new(".env");
        if std::fs::symlink_metadata(dotenv).is_ok() {
            match open_dotenv(dotenv) {
                Ok(Some(text)) => {
                    for (k, v) in parse_dotenv(dotenv, &text)? {
                        vars.entry(k).or_insert(v);
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        let mut settings = Self::from_vars(&vars)?;
        settings.home = prepare_home(&settings.home)?;
        Ok(settings)
    }

    /// Builds settings from a variable map (the environment, in production).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
        let home = match get("JRUN_HOME") {
            Some(h) => PathBuf::from(h),
            None => PathBuf::from(get("HOME").ok_or(SettingsError::NoHome)?).join(".jrun"),
        };
        let runtime = match get("JRUN_RUNTIME").as_deref() {
            None | Some("vm") => RuntimeKind::Vm,
            Some("native") => RuntimeKind::Native,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: "JRUN_RUNTIME",
                    value: other.into(),
                    expected: "`vm` or `native`",
                })
            }
        };
        let ssh_port = parse_num(&get, "JRUN_SSH_PORT", 2222u16, "a port from 1 to 65535")?;
        if ssh_port == 0 {
            return Err(SettingsError::Invalid {
                var: "JRUN_SSH_PORT",
                value: "0".into(),
                expected: "a port from 1 to 65535",
            });
        }
        let cpus_default = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let qemu_cpus = parse_num(
            &get,
            "JRUN_QEMU_CPUS",
            cpus_default,
            "a whole number of CPUs",
        )?;
        let mesh_network = parse_bool(&get, "JRUN_MESH_NETWORK", true)?;
        let relay_insecure = parse_bool(&get, "JRUN_RELAY_INSECURE", false)?;
        let qemu_accel = match get("JRUN_QEMU_ACCEL") {
            None => None,
            Some(v) => Some(QemuAccel::parse(&v).ok_or(SettingsError::Invalid {
                var: "JRUN_QEMU_ACCEL",
                value: v,
                expected: "kvm, hvf, whpx, nvmm or tcg, or a `:` list of them (kvm:tcg)",
            })?),
        };
        let bsd_mirror = base_url(
            &get,
            "JRUN_BSD_MIRROR",
            DEFAULT_BSD_MIRROR,
            "an http:// or https:// URL without spaces or quotes, e.g. https://download.freebsd.org",
        )?;
        let github_raw = base_url(
            &get,
            "JRUN_GITHUB_RAW",
            DEFAULT_GITHUB_RAW,
            "an http:// or https:// URL without spaces or quotes, e.g. https://raw.githubusercontent.com",
        )?;
        let relay_peer = match get("JRUN_RELAY_PEER") {
            None => Some(DEFAULT_RELAY_PEER.to_string()),
            Some(v) if v.trim().eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v),
        };
        // Read where they are used (the supervisor, setup steps), but checked here: a wrong
        // value is refused before anything starts, not ignored or found out mid-deploy.
        for (var, min, max, expected) in [
            (
                "JRUN_LOG_MAX_BYTES",
                1u64,
                u64::MAX,
                "a whole number of bytes, at least 1 (e.g. 1048576)",
            ),
            (
                "JRUN_SETUP_TIMEOUT",
                1,
                7 * 24 * 3600,
                "a whole number of seconds from 1 to 604800",
            ),
        ] {
            if let Some(v) = get(var) {
                if !v
                    .trim()
                    .parse::<u64>()
                    .is_ok_and(|n| (min..=max).contains(&n))
                {
                    return Err(SettingsError::Invalid {
                        var,
                        value: v,
                        expected,
                    });
                }
            }
        }
        let vm_boot_timeout_secs = parse_num(
            &get,
            "JRUN_VM_BOOT_TIMEOUT",
            600u64,
            "a whole number of seconds",
        )?;
        Ok(Settings {
            home,
            runtime,
            ssh_port,
            qemu_memory: get("JRUN_QEMU_MEMORY").unwrap_or_else(|| "4096M".into()),
            qemu_cpus,
            qemu_disk_size: get("JRUN_QEMU_DISK_SIZE").unwrap_or_else(|| "20G".into()),
            bsd_version: get("JRUN_BSD_VERSION").unwrap_or_else(|| "15.0".into()),
            mesh_network,
            relay: get("JRUN_RELAY").unwrap_or_else(|| DEFAULT_RELAY.into()),
            relay_insecure,
            relay_peer,
            qemu_accel,
            bsd_mirror,
            vm_boot_timeout_secs,
            github_raw,
        })
    }
}

/// A yes/no setting: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (any case).
fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, SettingsError> {
    match get(var).as_deref() {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(SettingsError::Invalid {
                var,
                value: v.into(),
                expected: "true or false",
            }),
        },
    }
}

/// Creates `home` (mode 0700) when it is missing and returns its canonical path. The
/// native instance id and mount-point checks derive from this path, so a trailing `/`, a
/// symlink, `..` or a relative spelling of `JRUN_HOME` must all name one instance.
pub fn prepare_home(home: &Path) -> Result<PathBuf, SettingsError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |action: &'static str| {
        move |source| SettingsError::Home {
            action,
            path: home.to_path_buf(),
            source,
        }
    };
    if !home.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)
            .map_err(err("create"))?;
        // The mode asked for is masked by the umask; the home holds keys, so set it.
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
            .map_err(err("set the mode of"))?;
    }
    std::fs::canonicalize(home).map_err(err("resolve"))
}

/// A base URL setting: http(s), no spaces or quotes (it reaches guest scripts quoted, and
/// is joined with paths), without its trailing `/`.
fn base_url(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
    expected: &'static str,
) -> Result<String, SettingsError> {
    let Some(v) = get(var) else {
        return Ok(default.to_string());
    };
    let ok = (v.starts_with("http://") || v.starts_with("https://"))
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !b"'\"\\`$".contains(&b));
    if !ok {
        return Err(SettingsError::Invalid {
            var,
            value: v,
            expected,
        });
    }
    Ok(v.trim_end_matches('/').to_string())
}

fn parse_num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, SettingsError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| SettingsError::Invalid {
            var,
            value: v,
            expected,
        }),
    }
}

/// The text of `.env`, opened without following a link. As root it is read only when
/// root owns it and nobody else can write it (its values choose the home root trusts, the
/// relay, the VM…); otherwise a warning says it was ignored (`None`).
fn open_dotenv(path: &Path) -> Result<Option<String>, SettingsError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let err = |source| SettingsError::DotEnv {
        path: path.into(),
        source,
    };
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            eprintln!("jrun: ignored {}: it is a symbolic link", path.display());
            return Ok(None);
        }
        Err(e) => return Err(err(e)),
    };
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Ok(None);
    }
    if nix::unistd::geteuid().is_root() {
        if let Err(why) = crate::home_trust::dotenv_trusted(meta.uid(), meta.mode()) {
            eprintln!(
                "jrun: ignored {}: {why}; as root, jrun reads only a .env that root owns and nobody else can write",
                path.display()
            );
            return Ok(None);
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(err)?;
    Ok(Some(text))
}

/// `KEY=VALUE` lines; `#` comments, blank lines, optional `export ` and quotes.
fn parse_dotenv(path: &Path, text: &str) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or(SettingsError::DotEnvSyntax {
            path: path.into(),
            line: i + 1,
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_vars(&vars(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(s.home, PathBuf::from("/home/u/.jrun"));
        assert_eq!(s.runtime, RuntimeKind::Vm);
        assert_eq!(s.ssh_port, 2222);
        assert_eq!(s.qemu_memory, "4096M");
        assert_eq!(s.bsd_version, "15.0");
        assert!(s.mesh_network);
        assert_eq!(s.relay, DEFAULT_RELAY);
        assert_eq!(s.qemu_accel, None);
        assert_eq!(s.relay_peer.as_deref(), Some(DEFAULT_RELAY_PEER));
        assert_eq!(s.github_raw, DEFAULT_GITHUB_RAW);
    }

    #[test]
    fn log_size_and_setup_timeout_are_checked_at_load() {
        let with = |k: &str, v: &str| Settings::from_vars(&vars(&[("HOME", "/h"), (k, v)]));
        for bad in ["abc", "-5", "0", ""] {
            if !bad.is_empty() {
                assert!(with("JRUN_LOG_MAX_BYTES", bad).is_err(), "{bad}");
                assert!(with("JRUN_SETUP_TIMEOUT", bad).is_err(), "{bad}");
            }
        }
        assert!(with("JRUN_LOG_MAX_BYTES", "4096").is_ok());
        assert!(with("JRUN_SETUP_TIMEOUT", "604801").is_err());
        assert!(with("JRUN_SETUP_TIMEOUT", "60").is_ok());
    }

    #[test]
    fn relay_insecure_is_a_yes_or_no_off_by_default() {
        let insecure = |v: &str| {
            Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_RELAY_INSECURE", v)]))
                .map(|s| s.relay_insecure)
        };
        assert!(!insecure("").unwrap());
        assert!(
            !Settings::from_vars(&vars(&[("HOME", "/h")]))
                .unwrap()
                .relay_insecure
        );
        for yes in ["1", "true", "YES", "on"] {
            assert!(insecure(yes).unwrap(), "{yes}");
        }
        for no in ["0", "false", "No", "off"] {
            assert!(!insecure(no).unwrap(), "{no}");
        }
        assert!(insecure("maybe").is_err());
    }

    #[test]
    fn relay_peer_none_peers_with_nobody() {
        let peer = |v: &str| {
            Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_RELAY_PEER", v)]))
                .unwrap()
                .relay_peer
        };
        assert_eq!(peer("none"), None);
        assert_eq!(peer("NONE"), None);
        // Empty is unset, as for every setting.
        assert_eq!(peer("").as_deref(), Some(DEFAULT_RELAY_PEER));
        assert_eq!(peer("tcp://host:9001").as_deref(), Some("tcp://host:9001"));
    }

    #[test]
    fn github_raw_is_a_base_url_without_its_trailing_slash() {
        let raw = |v: &str| Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_GITHUB_RAW", v)]));
        assert_eq!(
            raw("http://127.0.0.1:8000/").unwrap().github_raw,
            "http://127.0.0.1:8000"
        );
        for bad in [
            "ftp://x",
            "http://a b",
            "https://x/'y",
            "raw.githubusercontent.com",
        ] {
            assert!(raw(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qemu_accel_is_a_list_of_known_accelerators() {
        let accel = |v: &str| Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_QEMU_ACCEL", v)]));
        for ok in ["tcg", "kvm", "hvf", "kvm:tcg", "hvf:tcg", "whpx:nvmm:tcg"] {
            let s = accel(ok).unwrap();
            assert_eq!(s.qemu_accel.as_ref().map(QemuAccel::as_str), Some(ok));
        }
        // Empty is unset, like every other variable.
        assert_eq!(accel("").unwrap().qemu_accel, None);
        for bad in [
            "xen",
            "KVM",
            "kvm:",
            ":tcg",
            "kvm::tcg",
            "kvm:kvm",
            "kvm,tcg",
            "tcg,kernel-irqchip=off",
            " kvm",
        ] {
            let err = accel(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("JRUN_QEMU_ACCEL="),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn overrides_and_errors() {
        let s = Settings::from_vars(&vars(&[
            ("JRUN_HOME", "/tmp/j"),
            ("JRUN_RUNTIME", "native"),
            ("JRUN_SSH_PORT", "2300"),
            ("JRUN_MESH_NETWORK", "off"),
        ]))
        .unwrap();
        assert_eq!(s.runtime, RuntimeKind::Native);
        assert_eq!(s.ssh_port, 2300);
        assert!(!s.mesh_network);
        let err =
            Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_RUNTIME", "docker")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "JRUN_RUNTIME=\"docker\" is not valid: `vm` or `native`"
        );
        assert!(Settings::from_vars(&vars(&[("HOME", "/h"), ("JRUN_SSH_PORT", "70000")])).is_err());
    }

    #[test]
    fn dotenv_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env");
        std::fs::write(
            &p,
            "# c\nexport JRUN_HOME=\"/x\"\nJRUN_RELAY='http://r'\n\n",
        )
        .unwrap();
        let read = |p: &Path| parse_dotenv(p, &std::fs::read_to_string(p).unwrap());
        assert_eq!(
            read(&p).unwrap(),
            [
                ("JRUN_HOME".to_string(), "/x".to_string()),
                ("JRUN_RELAY".to_string(), "http://r".to_string())
            ]
        );
        std::fs::write(&p, "oops\n").unwrap();
        assert!(matches!(
            read(&p),
            Err(SettingsError::DotEnvSyntax { line: 1, .. })
        ));
    }

    #[test]
    fn a_dotenv_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "JRUN_HOME=/x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join(".env")).unwrap();
        assert_eq!(open_dotenv(&dir.path().join(".env")).unwrap(), None);
    }

    #[test]
    fn home_is_created_private_and_every_spelling_is_one_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let spelled = base.join("x/../jrun/");
        let home = prepare_home(&spelled).unwrap();
        assert_eq!(home, base.join("jrun"));
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A symlink to it, and the folder itself, give the same path.
        std::os::unix::fs::symlink(&home, base.join("link")).unwrap();
        assert_eq!(prepare_home(&base.join("link")).unwrap(), home);
        assert_eq!(prepare_home(&base.join("jrun")).unwrap(), home);
        // An existing home keeps the mode its owner gave it.
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o750)).unwrap();
        prepare_home(&home).unwrap();
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        // A home that cannot be made names the folder.
        std::fs::write(base.join("file"), "").unwrap();
        let err = prepare_home(&base.join("file/jrun")).unwrap_err();
        assert!(err.to_string().contains("file/jrun"), "{err}");
        // from_vars stays pure: nothing is created or resolved.
        let s = Settings::from_vars(&vars(&[("JRUN_HOME", "rel/./h/")])).unwrap();
        assert_eq!(s.home, PathBuf::from("rel/./h/"));
        assert!(!Path::new("rel").exists());
    }
}
