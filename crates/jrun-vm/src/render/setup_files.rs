//! The files each setup step brings into the guest, read on the host before rendering
//! (rendering stays pure).
//!
//! - A shell step with a local `file`: that file alone.
//! - An ansible step with a local `file`: the playbook and the files beside it (its
//!   folder, as ansible finds templates, files, vars and roles relative to the playbook),
//!   within limits, since everything travels inside the provisioning script.
//! - A `url` step: every file its `jrun.manifest` lists, from the copy `jrun up` fetched
//!   into `JRUN_HOME/playbooks/` and checked.

use std::collections::BTreeMap;
use std::path::Path;

use jrun_core::config::{SetupKind, SetupSource, SetupStep};
use jrun_core::playbook::{self, RemoteSource};

use super::RenderError;
use crate::spec::GuestSpec;

/// Most files, and most bytes in all, a local playbook's folder may bring.
pub const MAX_FOLDER_FILES: usize = 200;
pub const MAX_FOLDER_BYTES: u64 = 4 * 1024 * 1024;

/// What one step brings: the file it runs and every file of its folder (relative path →
/// text), the entry included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFiles {
    pub entry: String,
    pub files: BTreeMap<String, String>,
}

/// Every step's files, by [`source_key`].
pub type SetupSources = BTreeMap<String, StepFiles>;

/// The key of a step's source in [`SetupSources`].
pub fn source_key(source: &SetupSource) -> String {
    match source {
        SetupSource::File(p) => p.display().to_string(),
        SetupSource::Url(u) => u.clone(),
    }
}

/// Reads the files of every setup step of `spec`; `home` is `JRUN_HOME` (the cache).
pub fn load_setup_sources(spec: &GuestSpec, home: &Path) -> Result<SetupSources, RenderError> {
    let steps = spec
        .base_setup
        .iter()
        .chain(spec.jails.iter().flat_map(|j| j.setup.iter()));
    let mut out = SetupSources::new();
    for step in steps {
        if let std::collections::btree_map::Entry::Vacant(e) = out.entry(source_key(&step.source)) {
            e.insert(step_files(step, home)?);
        }
    }
    Ok(out)
}

fn step_files(step: &SetupStep, home: &Path) -> Result<StepFiles, RenderError> {
    match (&step.source, step.kind) {
        (SetupSource::File(path), SetupKind::Shell) => {
            let entry = file_name(path)?;
            let text = read_text(path)?;
            Ok(StepFiles {
                files: BTreeMap::from([(entry.clone(), text)]),
                entry,
            })
        }
        (SetupSource::File(path), SetupKind::Ansible) => {
            let entry = file_name(path)?;
            let dir = path.parent().unwrap_or(Path::new("/"));
            let mut files = BTreeMap::new();
            let mut bytes = 0;
            walk(dir, dir, &mut files, &mut bytes)?;
            if !files.contains_key(&entry) {
                files.insert(entry.clone(), read_text(path)?);
            }
            Ok(StepFiles { entry, files })
        }
        (SetupSource::Url(url), _) => {
            let source = RemoteSource::parse(url).map_err(|e| RenderError::ReadSource {
                path: url.into(),
                cause: e,
            })?;
            let cached = playbook::cached(home, &source).map_err(|e| RenderError::ReadSource {
                path: url.into(),
                cause: format!("{e}; `jrun up` and `jrun render` fetch it first"),
            })?;
            let mut files = BTreeMap::new();
            for rel in cached.manifest.files.keys() {
                files.insert(rel.clone(), read_text(&cached.dir.join(rel))?);
            }
            Ok(StepFiles {
                entry: source.entry,
                files,
            })
        }
    }
}

fn file_name(path: &Path) -> Result<String, RenderError> {
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RenderError::ReadSource {
                path: path.into(),
                cause: "it has no UTF-8 file name".into(),
            })?;
    playbook::check_rel_path(name).map_err(|e| RenderError::ReadSource {
        path: path.into(),
        cause: format!("its name {e}"),
    })?;
    Ok(name.to_string())
}

/// A file's text: it travels inside the script, so it must be UTF-8 without NUL.
fn read_text(path: &Path) -> Result<String, RenderError> {
    let bad = |cause: String| RenderError::ReadSource {
        path: path.into(),
        cause,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        bad("it is not UTF-8 text; the vm runtime carries setup files as text".into())
    })?;
    if text.contains('\0') {
        return Err(bad("it contains a NUL byte".into()));
    }
    Ok(text)
}

/// Collects the regular files under `dir` (relative to `root`), skipping hidden names and
/// links; names that are not plain relative paths are refused rather than skipped, so a
/// playbook never silently misses a file.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    bytes: &mut u64,
) -> Result<(), RenderError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| RenderError::ReadSource {
            path: dir.into(),
            cause: e.to_string(),
        })?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, out, bytes)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            playbook::check_rel_path(&rel).map_err(|e| RenderError::ReadSource {
                path: path.clone(),
                cause: format!("a file beside the playbook {e}; rename it or move the playbook into a folder of its own"),
            })?;
            *bytes += meta.len();
            if out.len() >= MAX_FOLDER_FILES || *bytes > MAX_FOLDER_BYTES {
                return Err(RenderError::ReadSource {
                    path: root.into(),
                    cause: format!(
                        "the playbook's folder holds more than {MAX_FOLDER_FILES} files or {} MiB, which all travel to the guest; move the playbook and what it uses into a folder of their own",
                        MAX_FOLDER_BYTES / 1024 / 1024
                    ),
                });
            }
            out.insert(rel, read_text(&path)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn step(kind: SetupKind, source: SetupSource) -> SetupStep {
        SetupStep {
            name: "s".into(),
            kind,
            source,
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn an_ansible_playbook_brings_its_folder_and_a_script_only_itself() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("templates")).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::write(d.path().join("site.yml"), "- hosts: localhost\n").unwrap();
        std::fs::write(d.path().join("templates/a.conf.j2"), "x={{ x }}\n").unwrap();
        std::fs::write(d.path().join(".git/config"), "secret").unwrap();
        std::fs::write(d.path().join("init.sh"), "echo hi\n").unwrap();
        let pb = step_files(
            &step(
                SetupKind::Ansible,
                SetupSource::File(d.path().join("site.yml")),
            ),
            d.path(),
        )
        .unwrap();
        assert_eq!(pb.entry, "site.yml");
        assert_eq!(
            pb.files.keys().collect::<Vec<_>>(),
            ["init.sh", "site.yml", "templates/a.conf.j2"]
        );
        let sh = step_files(
            &step(
                SetupKind::Shell,
                SetupSource::File(d.path().join("init.sh")),
            ),
            d.path(),
        )
        .unwrap();
        assert_eq!(sh.files.keys().collect::<Vec<_>>(), ["init.sh"]);
    }

    #[test]
    fn binary_files_and_uncached_urls_are_refused_with_a_reason() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("site.yml"), "- hosts: localhost\n").unwrap();
        std::fs::write(d.path().join("logo.png"), [0x89, 0x50, 0xff, 0x00]).unwrap();
        let err = step_files(
            &step(
                SetupKind::Ansible,
                SetupSource::File(d.path().join("site.yml")),
            ),
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("logo.png") && err.contains("not UTF-8"),
            "{err}"
        );
        let err = step_files(
            &step(
                SetupKind::Ansible,
                SetupSource::Url("hub://nginx/rolling".into()),
            ),
            &PathBuf::from("/nonexistent"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fetch it first"), "{err}");
    }
}
