//! Renderers: every file jrun writes into the FreeBSD guest, as whole texts built from a
//! validated [`GuestSpec`], plus the one provisioning script that installs them.

mod dns;
mod jail;
mod pf;
mod script;
mod setup_files;
mod vm;
mod ygg;

use std::path::{Component, Path, PathBuf};

use jrun_core::config::JailName;

pub use dns::unbound_include;
pub use jail::{
    devfs_rules, jail_conf, jail_conf_index, jail_fstab, jail_rc_conf, resolv_conf, services_rc,
    vm_rc_conf, SERVICE_ENV,
};
pub use pf::{forwards_anchor, jail_pf_conf, vm_pf_conf};
pub use script::{
    pairing_script, provisioning_script, Script, StepInfo, PRELUDE as SCRIPT_PRELUDE,
};
pub use vm::{loader_conf, share_mounts, shares_rc, sysctl_conf, SYSCTLS};
pub use ygg::{
    jail_node, private_key_pem, vm_node, ADMIN_SOCKET as YGG_ADMIN_SOCKET, KEY_PATH as YGG_KEY_PATH,
};

use crate::paths;
use crate::spec::GuestSpec;

/// One file the guest receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFile {
    /// Where it goes in the VM (jail files: under the jail's root).
    pub guest_path: String,
    /// Unix permissions.
    pub mode: u32,
    pub content: String,
    /// Its name in `jrun render --out DIR` (`vm/pf.conf`, `jails/web/pf.conf`).
    pub review_path: String,
    /// Key material: never printed, written 0600.
    pub secret: bool,
}

/// Everything rendered for one [`GuestSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub files: Vec<GuestFile>,
    pub script: Script,
}

pub use setup_files::{load_setup_sources, source_key, SetupSources, StepFiles};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("jail {jail}: {what} {value:?} cannot be used: {why}")]
    Unsafe {
        jail: String,
        what: String,
        value: String,
        why: &'static str,
    },
    #[error("setup source {0} was not loaded; jrun reads setup files before rendering")]
    MissingSource(String),
    #[error("could not read setup file {path}: {cause}; check that it exists and is readable")]
    ReadSource { path: PathBuf, cause: String },
    #[error("jail {0}: the mesh is on but jrun has no Yggdrasil key for it")]
    MissingKey(JailName),
    #[error("{0}")]
    Mesh(String),
}

/// Renders every guest file and the provisioning script.
pub fn render_all(spec: &GuestSpec, sources: &SetupSources) -> Result<Rendered, RenderError> {
    let files = guest_files(spec)?;
    let script = provisioning_script(spec, &files, sources)?;
    Ok(Rendered { files, script })
}

/// Every file, in the order the script installs them.
pub fn guest_files(spec: &GuestSpec) -> Result<Vec<GuestFile>, RenderError> {
    let file = |guest_path: String, mode, content, review_path: String| GuestFile {
        guest_path,
        mode,
        content,
        review_path,
        secret: false,
    };
    let mut out = vec![
        file(
            "/etc/rc.conf.local".into(),
            0o644,
            vm_rc_conf(spec),
            "vm/rc.conf.local".into(),
        ),
        file(
            "/etc/devfs.rules".into(),
            0o644,
            devfs_rules(),
            "vm/devfs.rules".into(),
        ),
        file(
            "/boot/loader.conf.d/jrun.conf".into(),
            0o644,
            loader_conf(),
            "vm/loader.conf".into(),
        ),
        file(
            "/etc/sysctl.conf.local".into(),
            0o644,
            sysctl_conf(),
            "vm/sysctl.conf.local".into(),
        ),
        file(
            "/etc/jail.conf".into(),
            0o644,
            jail_conf_index(),
            "vm/jail.conf".into(),
        ),
        file(
            "/etc/pf.conf".into(),
            0o600,
            vm_pf_conf(&spec.base_forwards),
            "vm/pf.conf".into(),
        ),
        file(
            format!("{}/forwards.pf", paths::ETC_DIR),
            0o600,
            forwards_anchor(&spec.vm_firewall),
            "vm/forwards.pf".into(),
        ),
        file(
            "/var/unbound/conf.d/jrun.conf".into(),
            0o644,
            unbound_include(&spec.dns, &spec.upstream_dns),
            "vm/unbound-jrun.conf".into(),
        ),
    ];
    if let Some(mesh) = &spec.mesh {
        out.push(file(
            ygg::CONF_PATH.into(),
            0o600,
            vm_node(mesh.version, &mesh.vm_key, mesh.relay_peer.as_ref())?,
            "vm/yggdrasil.conf".into(),
        ));
        if mesh.version == crate::spec::YggVersion::V0_5 {
            out.push(GuestFile {
                secret: true,
                ..file(
                    ygg::KEY_PATH.into(),
                    0o600,
                    private_key_pem(&mesh.vm_key),
                    "vm/yggdrasil-private.pem".into(),
                )
            });
        }
    }
    if !shares(spec).is_empty() {
        out.push(file(
            SHARES_RC.into(),
            0o755,
            shares_rc(spec)?,
            "vm/jrun_shares".into(),
        ));
    }
    for j in &spec.jails {
        let n = &j.name;
        let jf = |p: &str, mode, content, review: &str| {
            file(
                paths::in_jail(n, p),
                mode,
                content,
                format!("jails/{n}/{review}"),
            )
        };
        out.push(file(
            paths::jail_conf(n),
            0o644,
            jail_conf(j),
            format!("jails/{n}/jail.conf"),
        ));
        if !j.mounts.is_empty() {
            out.push(file(
                paths::jail_fstab(n),
                0o644,
                jail_fstab(j)?,
                format!("jails/{n}/fstab"),
            ));
        }
        out.push(jf(
            "/etc/rc.conf.local",
            0o644,
            jail_rc_conf(j, spec.mesh.is_some()),
            "rc.conf.local",
        ));
        out.push(jf("/etc/resolv.conf", 0o644, resolv_conf(), "resolv.conf"));
        out.push(jf(
            "/etc/pf.conf",
            0o600,
            jail_pf_conf(&j.firewall),
            "pf.conf",
        ));
        out.push(jf(
            "/usr/local/etc/rc.d/jrun_services",
            0o755,
            services_rc(j)?,
            "jrun_services",
        ));
        if let Some(mesh) = &spec.mesh {
            let key = mesh
                .jail_keys
                .get(n)
                .ok_or_else(|| RenderError::MissingKey(n.clone()))?;
            out.push(jf(
                ygg::CONF_PATH,
                0o600,
                jail_node(mesh.version, key)?,
                "yggdrasil.conf",
            ));
            if mesh.version == crate::spec::YggVersion::V0_5 {
                out.push(GuestFile {
                    secret: true,
                    ..jf(
                        ygg::KEY_PATH,
                        0o600,
                        private_key_pem(key),
                        "yggdrasil-private.pem",
                    )
                });
            }
        }
    }
    Ok(out)
}

/// The VM's rc script that mounts the 9p shares at boot.
pub const SHARES_RC: &str = "/usr/local/etc/rc.d/jrun_shares";

/// One 9p share QEMU exports: a host folder and its tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    pub tag: String,
    pub host: PathBuf,
}

/// Every 9p share of `spec` (base mounts, then each jail's), one per host folder.
pub fn shares(spec: &GuestSpec) -> Vec<Share> {
    let hosts = spec.base_mounts.iter().map(|m| m.host.clone()).chain(
        spec.jails
            .iter()
            .flat_map(|j| j.mounts.iter().map(|m| m.host.clone())),
    );
    let mut out: Vec<Share> = Vec::new();
    for host in hosts {
        let tag = paths::share_tag(&host);
        if !out.iter().any(|s| s.tag == tag) {
            out.push(Share { tag, host });
        }
    }
    out
}

/// A guest path that can stand in an fstab line: absolute, without `..`, whitespace,
/// control characters or `#`.
fn fstab_path(jail: &JailName, what: &str, p: &Path) -> Result<String, RenderError> {
    fstab_path_str(jail.as_str(), what, p)
}

fn fstab_path_str(jail: &str, what: &str, p: &Path) -> Result<String, RenderError> {
    let bad = |why| RenderError::Unsafe {
        jail: jail.to_string(),
        what: what.to_string(),
        value: p.display().to_string(),
        why,
    };
    let s = p.to_str().ok_or_else(|| bad("it is not UTF-8"))?;
    if !p.is_absolute() {
        return Err(bad("a guest path must be absolute"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(bad("a guest path may not contain '..'"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(bad(
            "a guest path may not contain spaces, control characters or '#'",
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}
