//! Remote setup steps as Jailrun resolves them: a `url` names one file in a GitHub
//! repository (`https://github.com/<owner>/<repo>/blob/<ref>/<path>`, or `hub://<name>/
//! <version>[@ref]` for Jailrun's hub), and the `jrun.manifest` in that file's folder lists
//! every file the step needs with its SHA-256. Nothing is used before it matches.
//!
//! Fetched files are kept under `<JRUN_HOME>/playbooks/<key>/` (the key is Jailrun's, so
//! both tools share a cache layout), with the manifest they were checked against: a later
//! `up` uses them without the network once the manifest cannot be fetched. This module is
//! the pure part (names, paths, manifests, the cache); the host's HTTP client fills the
//! cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The manifest's name, in the playbook's folder and in its cache folder.
pub const MANIFEST: &str = "jrun.manifest";
/// Jailrun's hub of playbooks.
pub const HUB_OWNER: &str = "hyphatech";
pub const HUB_REPO: &str = "jailrun-hub";
/// Most files one manifest may list, and most bytes one file may have: a playbook is a
/// handful of small text files, and the limits keep a hostile manifest from filling a disk.
pub const MAX_FILES: usize = 1000;
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One remote playbook (or script): the repository, the ref, its folder and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    pub owner: String,
    pub repo: String,
    pub reference: String,
    /// The file's folder in the repository, `""` at its root.
    pub dir: String,
    /// The file's name in `dir`.
    pub entry: String,
}

impl RemoteSource {
    /// Reads a setup step's `url`: `hub://…`, a GitHub `blob` URL, or a raw GitHub URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(body) = url.strip_prefix("hub://") {
            return Self::hub(body);
        }
        let (owner, repo, reference, path) = if let Some(rest) =
            url.strip_prefix("https://github.com/")
        {
            let mut parts = rest.splitn(5, '/');
            let (o, r, blob, rf, p) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            );
            match (o, r, blob, rf, p) {
                    (Some(o), Some(r), Some("blob"), Some(rf), Some(p)) => (o, r, rf, p),
                    _ => return Err("is not a GitHub file URL: expected https://github.com/<owner>/<repo>/blob/<ref>/<path>".into()),
                }
        } else if let Some(rest) = url.strip_prefix("https://raw.githubusercontent.com/") {
            let mut parts = rest.splitn(4, '/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(o), Some(r), Some(rf), Some(p)) => (o, r, rf, p),
                    _ => return Err("is not a raw GitHub file URL: expected https://raw.githubusercontent.com/<owner>/<repo>/<ref>/<path>".into()),
                }
        } else {
            return Err(
                    "is neither hub://<name>/<version>[@ref] nor a GitHub file URL (https://github.com/<owner>/<repo>/blob/<ref>/<path>): a remote step comes with a jrun.manifest of SHA-256 sums beside it, which only those have".into()
                );
        };
        Self::from_parts(owner, repo, reference, path)
    }

    /// `hub://postgres/16` → `hyphatech/jailrun-hub@main:playbooks/postgres/16/playbook.yml`;
    /// `hub://nginx/rolling@v1.0.0` takes that ref.
    fn hub(body: &str) -> Result<Self, String> {
        let body = body.trim_matches('/');
        let (path, reference) = match body.rsplit_once('@') {
            Some((p, r)) => (p, r),
            None => (body, "main"),
        };
        if path.is_empty() {
            return Err(
                "names no hub playbook: write hub://<name>/<version>, e.g. hub://nginx/rolling"
                    .into(),
            );
        }
        Self::from_parts(
            HUB_OWNER,
            HUB_REPO,
            reference,
            &format!("playbooks/{path}/playbook.yml"),
        )
    }

    fn from_parts(owner: &str, repo: &str, reference: &str, path: &str) -> Result<Self, String> {
        check_name("owner", owner)?;
        check_name("repository", repo)?;
        check_name("ref", reference)?;
        check_rel_path(path)?;
        let (dir, entry) = match path.rsplit_once('/') {
            Some((d, e)) => (d.to_string(), e.to_string()),
            None => (String::new(), path.to_string()),
        };
        Ok(RemoteSource {
            owner: owner.into(),
            repo: repo.into(),
            reference: reference.into(),
            dir,
            entry,
        })
    }

    /// Where `rel` (a path in the playbook's folder) is fetched from under `base`
    /// (`JRUN_GITHUB_RAW`): `<base>/<owner>/<repo>/<ref>/<dir>/<rel>`.
    pub fn raw_url(&self, base: &str, rel: &str) -> String {
        let base = base.trim_end_matches('/');
        let mut url = format!("{base}/{}/{}/{}", self.owner, self.repo, self.reference);
        if !self.dir.is_empty() {
            url.push('/');
            url.push_str(&self.dir);
        }
        url.push('/');
        url.push_str(rel);
        url
    }

    /// The cache folder's name, as Jailrun's `cache_key`:
    /// `<repo>_<ref with [^\w.-] as _>_<sha256("owner/repo/ref/dir")[:12]>`.
    pub fn cache_key(&self) -> String {
        let slug = format!(
            "{}/{}/{}/{}",
            self.owner, self.repo, self.reference, self.dir
        );
        let digest = hex(&Sha256::digest(slug.as_bytes()));
        let safe_ref: String = self
            .reference
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}_{safe_ref}_{}", self.repo, &digest[..12])
    }

    /// `owner/repo@ref:dir/entry`, for messages.
    pub fn label(&self) -> String {
        let path = if self.dir.is_empty() {
            self.entry.clone()
        } else {
            format!("{}/{}", self.dir, self.entry)
        };
        format!("{}/{}@{}:{path}", self.owner, self.repo, self.reference)
    }
}

/// An owner, repository or ref: what GitHub allows in one path segment, and nothing a
/// URL, a path or a shell could read as syntax.
fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has a {what} ({s:?}) that is not letters, digits, '.', '_' and '-' (not starting with '.')"
        ))
    }
}

/// A path relative to the playbook's folder: `/`-separated segments of letters, digits,
/// `.`, `_`, `+`, `-`, none of them `.` or `..`, no leading `/`.
pub fn check_rel_path(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 512
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has a path ({p:?}) that is not a plain relative path (letters, digits, '.', '_', '+', '-' in '/'-separated parts, no '..')"
        ))
    }
}

/// A `jrun.manifest`: one `<sha256 hex>  <relative path>` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Relative path → lowercase SHA-256 hex.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut files = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("{MANIFEST} line {}: {why}: {line:?}", i + 1);
            let (sum, path) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `<sha256>  <path>`"))?;
            let path = path.trim_start();
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("the checksum is not 64 hex digits"));
            }
            check_rel_path(path).map_err(|e| bad(&e))?;
            if path == MANIFEST {
                return Err(bad("the manifest cannot list itself"));
            }
            if files
                .insert(path.to_string(), sum.to_ascii_lowercase())
                .is_some()
            {
                return Err(bad("this path is listed twice"));
            }
            if files.len() > MAX_FILES {
                return Err(format!("{MANIFEST} lists more than {MAX_FILES} files"));
            }
        }
        if files.is_empty() {
            return Err(format!("{MANIFEST} lists no file"));
        }
        // A file and a folder of the same name cannot both exist.
        for p in files.keys() {
            let mut prefix = String::new();
            for seg in p.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
                prefix.push_str(seg);
                if files.contains_key(&prefix) {
                    return Err(format!(
                        "{MANIFEST} lists {prefix} both as a file and as a folder"
                    ));
                }
                prefix.push('/');
            }
        }
        Ok(Manifest { files })
    }

    /// Whether `bytes` are what the manifest lists for `path`.
    pub fn matches(&self, path: &str, bytes: &[u8]) -> bool {
        self.files
            .get(path)
            .is_some_and(|want| *want == sha256_hex(bytes))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every cached playbook lives under here.
pub fn cache_root(home: &Path) -> PathBuf {
    home.join("playbooks")
}

/// A playbook in the cache, every file checked against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPlaybook {
    pub source: RemoteSource,
    /// The cache folder (the playbook's folder, as fetched).
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl CachedPlaybook {
    /// The file the step runs.
    pub fn entry(&self) -> PathBuf {
        self.dir.join(&self.source.entry)
    }
}

/// The cached copy of `source` under `home`, if it is complete and every file matches the
/// manifest saved with it (`Err` says what is missing or wrong). No network.
pub fn cached(home: &Path, source: &RemoteSource) -> Result<CachedPlaybook, String> {
    let dir = cache_root(home).join(source.cache_key());
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .map_err(|e| format!("{} is not cached ({e})", source.label()))?;
    let manifest = Manifest::parse(&text)?;
    verify_dir(&dir, &manifest)?;
    if !manifest.files.contains_key(&source.entry) {
        return Err(format!(
            "{} is not listed in its {MANIFEST}",
            source.label()
        ));
    }
    Ok(CachedPlaybook {
        source: source.clone(),
        dir,
        manifest,
    })
}

/// Every file `manifest` lists is in `dir` (a regular file, not a link) with its sum.
pub fn verify_dir(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    for rel in manifest.files.keys() {
        let path = dir.join(rel);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| format!("{} is missing ({e})", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !manifest.matches(rel, &bytes) {
            return Err(format!(
                "{} does not match its SHA-256 in {MANIFEST}",
                path.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls_expand_as_jailrun_does() {
        let s = RemoteSource::parse("hub://postgres/16").unwrap();
        assert_eq!(
            (s.owner.as_str(), s.repo.as_str(), s.reference.as_str()),
            ("hyphatech", "jailrun-hub", "main")
        );
        assert_eq!(s.dir, "playbooks/postgres/16");
        assert_eq!(s.entry, "playbook.yml");
        let s = RemoteSource::parse("hub://nginx/rolling@v1.0.0").unwrap();
        assert_eq!(s.reference, "v1.0.0");
        assert_eq!(s.dir, "playbooks/nginx/rolling");
        assert_eq!(
            s.raw_url("https://raw.githubusercontent.com", "templates/nginx.conf.j2"),
            "https://raw.githubusercontent.com/hyphatech/jailrun-hub/v1.0.0/playbooks/nginx/rolling/templates/nginx.conf.j2"
        );
    }

    #[test]
    fn github_blob_and_raw_urls_name_the_same_file() {
        let blob =
            RemoteSource::parse("https://github.com/acme/infra/blob/v2/ansible/web/site.yml")
                .unwrap();
        let raw = RemoteSource::parse(
            "https://raw.githubusercontent.com/acme/infra/v2/ansible/web/site.yml",
        )
        .unwrap();
        assert_eq!(blob, raw);
        assert_eq!(blob.dir, "ansible/web");
        assert_eq!(blob.entry, "site.yml");
        assert_eq!(
            blob.raw_url("http://127.0.0.1:8000/", MANIFEST),
            "http://127.0.0.1:8000/acme/infra/v2/ansible/web/jrun.manifest"
        );
        let root = RemoteSource::parse("https://github.com/acme/infra/blob/main/site.yml").unwrap();
        assert_eq!(root.dir, "");
        assert_eq!(
            root.raw_url("http://h", "site.yml"),
            "http://h/acme/infra/main/site.yml"
        );
    }

    #[test]
    fn the_cache_key_is_jailruns() {
        // Python: f"{repo}_{re.sub(r'[^\w.-]', '_', ref)}_{sha256(f'{owner}/{repo}/{ref}/{dir}')[:12]}"
        let s = RemoteSource::parse("hub://nginx/rolling").unwrap();
        let digest = sha256_hex(b"hyphatech/jailrun-hub/main/playbooks/nginx/rolling");
        assert_eq!(s.cache_key(), format!("jailrun-hub_main_{}", &digest[..12]));
    }

    #[test]
    fn other_urls_and_unsafe_parts_are_refused() {
        for bad in [
            "https://example.org/setup.yml",
            "http://github.com/a/b/blob/main/x.yml",
            "https://github.com/a/b/tree/main/x.yml",
            "https://github.com/a/b/blob/main",
            "https://github.com/a/b/blob/main/../x.yml",
            "https://github.com/a/b/blob/main/x//y.yml",
            "https://github.com/a/.b/blob/main/x.yml",
            "https://github.com/a/b/blob/ma;in/x.yml",
            "https://github.com/a/b/blob/main/x y.yml",
            "hub://",
            "hub://nginx/../../x",
            "hub://nginx/rolling@",
            "hub://nginx/rolling@$(id)",
        ] {
            assert!(RemoteSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_are_strict() {
        let sum = "a".repeat(64);
        let m =
            Manifest::parse(&format!("{sum}  playbook.yml\n\n{sum}  templates/x.j2\n")).unwrap();
        assert_eq!(m.files.len(), 2);
        for bad in [
            String::new(),
            sum.clone(),
            format!("{}  a.yml", "a".repeat(63)),
            format!("{}  a.yml", "g".repeat(64)),
            format!("{sum}  ../a.yml"),
            format!("{sum}  /etc/passwd"),
            format!("{sum}  a.yml\n{sum}  a.yml"),
            format!("{sum}  {MANIFEST}"),
            format!("{sum}  t\n{sum}  t/x"),
        ] {
            assert!(Manifest::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_cache_is_used_only_when_every_file_matches() {
        let home = tempfile::tempdir().unwrap();
        let s = RemoteSource::parse("hub://demo/1").unwrap();
        assert!(cached(home.path(), &s).is_err());
        let dir = cache_root(home.path()).join(s.cache_key());
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(dir.join("playbook.yml"), "- hosts: localhost\n").unwrap();
        std::fs::write(dir.join("templates/a.j2"), "x").unwrap();
        let manifest = format!(
            "{}  playbook.yml\n{}  templates/a.j2\n",
            sha256_hex(b"- hosts: localhost\n"),
            sha256_hex(b"x")
        );
        std::fs::write(dir.join(MANIFEST), &manifest).unwrap();
        let c = cached(home.path(), &s).unwrap();
        assert_eq!(c.entry(), dir.join("playbook.yml"));
        std::fs::write(dir.join("templates/a.j2"), "tampered").unwrap();
        assert!(cached(home.path(), &s)
            .unwrap_err()
            .contains("does not match"));
    }
}
