//! The typed configuration: what a user's UCL file describes, validated.
//!
//! `model` holds the types every other layer consumes. [`load`] reads a file, parses the
//! UCL, converts it into the model and checks it, reporting every mistake at once with its
//! file, line, column, cause and a hint ([`ConfigErrors`], a `miette` diagnostic).
//!
//! Choices beyond the original's documentation:
//! - unknown keys are errors (with a "did you mean" hint), not ignored;
//! - healthcheck `interval`/`timeout` accept a UCL time (`30s`), a number of seconds, or a
//!   string as in the original (`"30s"`, `"500ms"`, `"5m"`, `"1h"`); defaults 30s, 10s and
//!   3 retries; at most one day;
//! - host paths (mount `host`, setup `file`) resolve against the config file's folder
//!   (`~/` against `$HOME`); a missing mount folder or setup file is a warning, since the
//!   runtime checks again before using it; a file where a folder belongs is an error;
//! - item names (`forward { http {…} }`) are letters, digits, `_` and `-`;
//! - a forward may not take the VM's SSH port for tcp (udp on that number is free).

mod blocks;
mod convert;
mod error;
mod model;
mod order;
mod read;
mod validate;
pub(crate) mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use blocks::{DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use error::{ConfigError, ConfigErrors, ErrorKind, Label};
pub use model::*;
pub use order::dependency_order;
pub use values::parse_duration;

use error::Draft;
use read::Reader;

/// A config that passed every check, and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Diagnostics of warning severity only (possibly none).
    pub warnings: ConfigErrors,
}

/// Reads, parses and checks the config file at `path`. `ssh_port` is the host port that
/// reaches the VM (`Settings::ssh_port`), which no forward may claim.
pub fn load(path: &Path, ssh_port: u16) -> Result<Config, ConfigErrors> {
    load_with_warnings(path, ssh_port).map(|l| l.config)
}

/// As [`load`], keeping the warnings (missing mount folders, missing setup files).
pub fn load_with_warnings(path: &Path, ssh_port: u16) -> Result<Loaded, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(src) => load_str(path, &src, ssh_port),
        Err(e) => {
            let d = Draft::new(
                ErrorKind::Io,
                format!("cannot read {}: {e}", path.display()),
            )
            .help("check the path of the config file");
            let item = d.locate(path, "");
            Err(ConfigErrors::new(path, "", vec![item]))
        }
    }
}

/// Checks config text `src` as if read from `path` (relative paths in it resolve against
/// `path`'s folder).
pub fn load_str(path: &Path, src: &str, ssh_port: u16) -> Result<Loaded, ConfigErrors> {
    let src: Arc<str> = Arc::from(src);
    let finish = |drafts: Vec<Draft>| {
        let mut drafts = drafts;
        drafts.sort_by_key(|d| d.position());
        let items = drafts.into_iter().map(|d| d.locate(path, &src)).collect();
        ConfigErrors::new(path, src.clone(), items)
    };
    let root = match ucl::parse(&src) {
        Ok(root) => root,
        Err(e) => {
            let d = Draft::new(ErrorKind::Syntax, format!("syntax error: {}", e.message))
                .at(e.span, "here")
                .help("see the UCL syntax: `key = value;`, blocks `name { … }`, lists `[a, b]`");
            return Err(finish(vec![d]));
        }
    };
    let abs = absolute(path);
    let config_dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let dirs = blocks::Dirs {
        config_dir: &config_dir,
        home: home.as_deref(),
    };
    let mut r = Reader::new(&src);
    let (config, sites) = convert::document(&mut r, &root, abs, &dirs);
    validate::across_jails(&mut r, &config, &sites, ssh_port);
    if r.has_errors() {
        return Err(finish(r.problems));
    }
    Ok(Loaded {
        config,
        warnings: finish(r.problems),
    })
}

fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    values::normalize(&abs)
}
