//! From the planner's [`Plan`] (and jrun's key store) to a [`GuestSpec`].

use std::net::{IpAddr, Ipv4Addr};

use jrun_core::plan::Plan;
use jrun_mesh::yggdrasil::{PeerUri, YggVersion};
use jrun_mesh::KeyStore;

use crate::spec::{GuestJail, GuestSpec, MeshSpec, Release, SpecError};

/// QEMU's user network resolver, which forwards to the host's.
pub const QEMU_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

/// The Yggdrasil the FreeBSD guest installs from packages.
pub const GUEST_YGG: YggVersion = YggVersion::V0_5;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("jail {jail}: {source}")]
    Release { jail: String, source: SpecError },
    #[error("JRUN_BSD_VERSION: {0}")]
    VmRelease(SpecError),
    #[error("JRUN_RELAY_PEER={value:?}: {cause}")]
    RelayPeer { value: String, cause: String },
    #[error("cannot read or create the Yggdrasil key of {who}: {cause}")]
    Key { who: String, cause: String },
}

/// Keys for the VM node and every jail of `plan` (created on first use, then kept).
pub fn mesh_from_store(
    plan: &Plan,
    store: &KeyStore,
    relay_peer: Option<&str>,
) -> Result<MeshSpec, BuildError> {
    let relay_peer = relay_peer
        .map(|v| {
            v.parse::<PeerUri>().map_err(|e| BuildError::RelayPeer {
                value: v.into(),
                cause: e.to_string(),
            })
        })
        .transpose()?;
    let key_err = |who: String| {
        move |e: jrun_mesh::IdentityError| BuildError::Key {
            who,
            cause: e.to_string(),
        }
    };
    let vm_key = store
        .vm_key()
        .map_err(key_err("the VM node".into()))?
        .identity;
    let mut jail_keys = std::collections::BTreeMap::new();
    for j in &plan.jails {
        let key = store
            .jail_key(j.name())
            .map_err(key_err(format!("jail {}", j.name())))?;
        jail_keys.insert(j.name().clone(), key.identity);
    }
    Ok(MeshSpec {
        version: GUEST_YGG,
        relay_peer,
        vm_key,
        jail_keys,
    })
}

/// The guest description for `plan`: `bsd_version` is `JRUN_BSD_VERSION`.
pub fn from_plan(
    plan: &Plan,
    bsd_version: &str,
    mesh: Option<MeshSpec>,
    provision: bool,
) -> Result<GuestSpec, BuildError> {
    let release = Release::from_config(bsd_version).map_err(BuildError::VmRelease)?;
    let jails = plan
        .jails
        .iter()
        .map(|jp| {
            let j = &jp.jail;
            let release = j
                .release
                .as_deref()
                .map(Release::from_config)
                .transpose()
                .map_err(|source| BuildError::Release {
                    jail: j.name.to_string(),
                    source,
                })?;
            Ok(GuestJail {
                name: j.name.clone(),
                ip: jp.ip,
                release,
                base: j.base.clone(),
                depends: j.depends.clone(),
                mounts: j.mounts.clone(),
                execs: j.execs.clone(),
                setup: j.setup.clone(),
                firewall: jp.firewall.clone(),
                recreate: jp
                    .actions
                    .iter()
                    .any(|a| a.op == jrun_core::plan::Op::Recreate),
                forwarded_tcp_ports: jp
                    .redirects
                    .iter()
                    .filter(|r| r.proto == jrun_core::config::Proto::Tcp)
                    .map(|r| r.jail_port)
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let base = plan.base.clone().unwrap_or_default();
    Ok(GuestSpec {
        release,
        upstream_dns: vec![IpAddr::V4(QEMU_DNS)],
        vm_firewall: plan.vm_firewall.clone(),
        base_forwards: base.forwards,
        base_mounts: base.mounts,
        base_setup: base.setup,
        dns: plan.dns.clone(),
        jails,
        removed: plan.removals.iter().map(|r| r.name.clone()).collect(),
        mesh,
        provision,
        ready_timeout_secs: None,
        bsd_mirror: jrun_core::settings::DEFAULT_BSD_MIRROR.into(),
    })
}
