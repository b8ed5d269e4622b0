//! Fetches remote setup steps (`url = "hub://…"` or a GitHub file URL) into the cache
//! under `JRUN_HOME` before a runtime runs them (see `jrun_core::playbook`). Every file is
//! checked against the playbook's `jrun.manifest` before it is kept; a folder is replaced
//! only once every file of the new version is in place.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use jrun_core::config::{Config, SetupSource};
use jrun_core::playbook::{self, Manifest, RemoteSource, MANIFEST, MAX_FILE_BYTES};
use jrun_core::settings::Settings;

/// How a remote step's files are made ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Ask GitHub for the manifest again (the step runs in this `up`); with no answer, a
    /// verified cached copy is used and a note says so.
    Always,
    /// A verified cached copy is enough; fetch only what is missing.
    IfMissing,
}

/// Makes every remote step of `config` ready in the cache. `refresh(step_scope)` says,
/// per step, whether to ask for a fresh manifest. `note` hears one line per playbook.
pub fn prepare(
    config: &Config,
    settings: &Settings,
    refresh: &dyn Fn(Option<&str>) -> Refresh,
    note: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut wanted: BTreeMap<String, Refresh> = BTreeMap::new();
    let base_steps = config.base.iter().flat_map(|b| b.setup.iter());
    let steps = base_steps.map(|s| (None, s)).chain(
        config
            .jails
            .iter()
            .flat_map(|j| j.setup.iter().map(move |s| (Some(j.name.as_str()), s))),
    );
    for (scope, step) in steps {
        if let SetupSource::Url(url) = &step.source {
            let r = refresh(scope);
            let e = wanted.entry(url.clone()).or_insert(r);
            if r == Refresh::Always {
                *e = Refresh::Always;
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let client = client()?;
    for (url, refresh) in wanted {
        ensure(&client, settings, &url, refresh, note)?;
    }
    Ok(())
}

/// [`prepare`] for one plan: a step whose jail (or the VM, for `base` steps) runs its
/// setup in this plan asks for a fresh manifest; the rest only need a cached copy (the
/// vm runtime's script carries every step, run or not).
pub fn prepare_for_plan(
    config: &Config,
    plan: &jrun_core::plan::Plan,
    settings: &Settings,
    note: &mut dyn FnMut(&str),
) -> miette::Result<()> {
    use jrun_core::plan::{Op, VmOp};
    let runs = |scope: Option<&str>| {
        let runs = match scope {
            None => plan.vm.actions.iter().any(|a| a.op == VmOp::RunSetup),
            Some(name) => plan.jail(name).is_some_and(|j| {
                j.actions
                    .iter()
                    .any(|a| matches!(a.op, Op::Create | Op::Recreate | Op::RunSetup))
            }),
        };
        if runs {
            Refresh::Always
        } else {
            Refresh::IfMissing
        }
    };
    prepare(config, settings, &runs, note)
        .map_err(|e| miette::miette!(help = "check the step's url, or JRUN_GITHUB_RAW", "{e}"))
}

fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        // GitHub's raw host answers directly; a redirect is followed only within https
        // (never down to http) and only a few times.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt.url().scheme() != "https"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else if downgrade {
                attempt.error("a redirect from https to http")
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("jrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {e}"))
}

fn ensure(
    client: &reqwest::blocking::Client,
    settings: &Settings,
    url: &str,
    refresh: Refresh,
    note: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let source = RemoteSource::parse(url).map_err(|e| format!("setup url {url} {e}"))?;
    let label = source.label();
    let cached = playbook::cached(&settings.home, &source);
    if refresh == Refresh::IfMissing && cached.is_ok() {
        return Ok(());
    }
    let manifest_url = source.raw_url(&settings.github_raw, MANIFEST);
    let manifest_bytes = match get(client, &manifest_url) {
        Ok(b) => b,
        Err(e) => {
            return match cached {
                Ok(c) => {
                    note(&format!(
                        "{label}: cannot fetch its manifest ({e}); using the copy cached in {}",
                        c.dir.display()
                    ));
                    Ok(())
                }
                Err(_) => Err(format!(
                    "cannot fetch the playbook {url}: {e}; no copy of it is cached yet, so `jrun up` needs to reach {} once",
                    settings.github_raw
                )),
            };
        }
    };
    let text = String::from_utf8(manifest_bytes.clone())
        .map_err(|_| format!("{manifest_url} is not text"))?;
    let manifest = Manifest::parse(&text).map_err(|e| format!("{manifest_url}: {e}"))?;
    if !manifest.files.contains_key(&source.entry) {
        return Err(format!(
            "{url}: its file {} is not listed in {manifest_url}",
            source.entry
        ));
    }
    let dest = playbook::cache_root(&settings.home).join(source.cache_key());
    if let Ok(c) = &cached {
        if c.manifest == manifest {
            note(&format!("{label}: cached copy is current"));
            return Ok(());
        }
    }
    note(&format!(
        "{label}: fetching {} files from {}",
        manifest.files.len(),
        settings.github_raw
    ));
    fill(client, settings, &source, &manifest, &manifest_bytes, &dest)?;
    note(&format!(
        "{label}: {} files checked against {MANIFEST}",
        manifest.files.len()
    ));
    Ok(())
}

/// Fetches every file into a fresh folder beside `dest`, checks it, then swaps it in.
fn fill(
    client: &reqwest::blocking::Client,
    settings: &Settings,
    source: &RemoteSource,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    dest: &Path,
) -> Result<(), String> {
    let root = dest.parent().expect("the cache folder has a parent");
    create_private_dir(root)?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(root)
        .map_err(|e| format!("cannot create a folder in {}: {e}", root.display()))?;
    for (rel, want) in &manifest.files {
        let url = source.raw_url(&settings.github_raw, rel);
        let bytes = get(client, &url)?;
        let got = playbook::sha256_hex(&bytes);
        if got != *want {
            return Err(format!(
                "{url} does not match {MANIFEST}: expected SHA-256 {want}, got {got}; nothing was kept"
            ));
        }
        let path = tmp.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        jrun_core::fs::write_atomic(&path, &bytes, 0o600)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    jrun_core::fs::write_atomic(&tmp.path().join(MANIFEST), manifest_bytes, 0o600)
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    let fresh = tmp.keep();
    // The old copy moves aside first, so a crash leaves one complete copy or none, never
    // a mix (a missing copy is fetched again).
    let old = root.join(format!(".old-{}", source.cache_key()));
    let _ = std::fs::remove_dir_all(&old);
    if dest.exists() {
        std::fs::rename(dest, &old)
            .map_err(|e| format!("cannot replace {}: {e}", dest.display()))?;
    }
    std::fs::rename(&fresh, dest).map_err(|e| format!("cannot move {}: {e}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// One GET: the body of a 200 answer, at most [`MAX_FILE_BYTES`].
fn get(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>, String> {
    let resp = client.get(url).send().map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let mut body = Vec::new();
    resp.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{url}: {e}"))?;
    if body.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{url} is larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(body)
}
