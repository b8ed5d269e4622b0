//! What a pairing changes, as pure functions of the state: this side's roster, the checks a
//! peer's roster must pass before it is recorded, and the mesh wiring (every jail's
//! `mesh_peers` set and the resolver's records) that the state implies. `jrun pair` and
//! `jrun pair --drop` compute the wiring before and after, apply the new one through the
//! runtime and put the old one back if that fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jrun_core::config::JailName;
use jrun_core::net::{DnsRecords, JailFirewall};
use jrun_core::runtime::{Runtime, RuntimeError};
use jrun_core::state::{MeshPeer, PairDirection, RemoteJail, State};
use jrun_mesh::protocol::{Roster, RosterJail};
use jrun_mesh::{KeyStore, PairCode, YggAddress};

use crate::wiring;

/// Why a pairing cannot go ahead; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("no deployed jails to share; run `jrun up <config>` first")]
    NothingToShare,
    #[error("jail `{jail}` has no mesh key in {dir} (was it deployed with JRUN_MESH_NETWORK=false?); run `jrun up` with the mesh on")]
    NoKey { jail: String, dir: String },
    #[error("cannot read the mesh key of jail `{jail}`: {cause}")]
    BadKey { jail: String, cause: String },
    #[error("jail `{jail}` is recorded but its network is not there; run `jrun up` to bring it back, then pair")]
    NotRunning { jail: String },
    #[error("the Yggdrasil node of jail `{jail}` did not answer within {waited:?}; `jrun status` shows it, `jrun up` restarts it")]
    NodeSilent { jail: String, waited: Duration },
    #[error("jail `{jail}`: the running node says {running}, but its key gives {stored}; run `jrun up --provision` to restart its node")]
    AddressMismatch {
        jail: String,
        running: String,
        stored: String,
    },
    #[error("this instance is already paired under code {code}; `jrun pair --list` shows it, `jrun pair --share <jails> {code}` changes which of your jails it reaches, `jrun pair --drop {code}` revokes it")]
    AlreadyPaired { code: PairCode },
    #[error("the peer's roster names jail `{name}` twice; nothing was changed. Ask the peer to check their jails and pair again")]
    NameCollision { name: String },
    #[error("the peer's roster lists address {address} twice; nothing was changed")]
    AddressCollision { address: String },
    #[error("the peer's roster lists address {address}, which {holder}: a peer may list only its own jails' addresses; nothing was changed")]
    AddressHeld { address: String, holder: String },
    #[error("there is no pairing {code}; `jrun pair --list` shows the pairings")]
    NoSuchPairing { code: PairCode },
    #[error("--share names `{jail}`, which is not a deployed jail of this instance ({known}); `jrun status` lists them")]
    NotAJail { jail: String, known: String },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Asks a jail's running node for its address (`None` while it does not answer).
pub type RunningAddress<'a> = &'a dyn Fn(&JailName) -> Option<YggAddress>;

/// The local jails `--share` names, each checked to be a deployed jail; `None` (no
/// `--share`): every deployed jail.
pub fn shared_jails(
    state: &State,
    share: Option<&[JailName]>,
) -> Result<BTreeSet<JailName>, PairError> {
    let deployed = || state.jails.values().filter(|j| j.deployed).map(|j| &j.name);
    let Some(share) = share else {
        return Ok(deployed().cloned().collect());
    };
    for name in share {
        if !deployed().any(|d| d == name) {
            let known: Vec<&str> = deployed().map(|d| d.as_str()).collect();
            return Err(PairError::NotAJail {
                jail: name.to_string(),
                known: if known.is_empty() {
                    "it has none".into()
                } else {
                    format!("it has {}", known.join(", "))
                },
            });
        }
    }
    Ok(share.iter().cloned().collect())
}

/// This side's roster: the `shared` jails (see [`shared_jails`]), each with its node
/// address from the key store, cross-checked with the jail's running node (given
/// `patience` to answer: a node started by the last `up` may still be coming up).
pub fn local_roster(
    state: &State,
    shared: &BTreeSet<JailName>,
    keys: &KeyStore,
    rt: &dyn Runtime,
    running: RunningAddress<'_>,
    patience: Duration,
) -> Result<Roster, PairError> {
    let mut jails = Vec::new();
    for jail in state
        .jails
        .values()
        .filter(|j| j.deployed && shared.contains(&j.name))
    {
        let key = keys
            .existing_jail_key(&jail.name)
            .map_err(|e| PairError::BadKey {
                jail: jail.name.to_string(),
                cause: e.to_string(),
            })?
            .ok_or_else(|| PairError::NoKey {
                jail: jail.name.to_string(),
                dir: keys.dir().display().to_string(),
            })?;
        let stored = key.identity.address();
        if !rt.observe_jail(&jail.name)?.exists {
            return Err(PairError::NotRunning {
                jail: jail.name.to_string(),
            });
        }
        let deadline = Instant::now() + patience;
        let seen = loop {
            match running(&jail.name) {
                Some(a) => break a,
                None if Instant::now() >= deadline => {
                    return Err(PairError::NodeSilent {
                        jail: jail.name.to_string(),
                        waited: patience,
                    })
                }
                None => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        if seen != stored {
            return Err(PairError::AddressMismatch {
                jail: jail.name.to_string(),
                running: seen.to_string(),
                stored: stored.to_string(),
            });
        }
        jails.push(RosterJail {
            name: jail.name.clone(),
            ygg_address: stored,
        });
    }
    if jails.is_empty() {
        return Err(PairError::NothingToShare);
    }
    Ok(Roster { jails })
}

/// Refuses a code this instance is already paired under.
pub fn check_code_free(state: &State, code: &PairCode) -> Result<(), PairError> {
    if state.peers.contains_key(code) {
        return Err(PairError::AlreadyPaired { code: code.clone() });
    }
    Ok(())
}

/// The record of a pairing with `remote`, sharing the jails of `local` (this side's
/// roster, which the peer received), after the checks the state needs: a fresh code,
/// names and addresses unique within the roster, and no address that another pairing or
/// one of this instance's own jails (`local`) already holds — a peer listing those could
/// keep access that `--drop` of their pairing claims to remove, or pose as a local jail.
/// (The relay client has already validated each name as a DNS label and each address as
/// a node address in `200::/8`.)
pub fn new_peer(
    state: &State,
    code: &PairCode,
    direction: PairDirection,
    paired_at: u64,
    remote: &Roster,
    local: &Roster,
) -> Result<MeshPeer, PairError> {
    check_code_free(state, code)?;
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for j in &remote.jails {
        if !names.insert(&j.name) {
            return Err(PairError::NameCollision {
                name: j.name.to_string(),
            });
        }
        if !addresses.insert(j.ygg_address) {
            return Err(PairError::AddressCollision {
                address: j.ygg_address.to_string(),
            });
        }
        if let Some(mine) = local.jails.iter().find(|l| l.ygg_address == j.ygg_address) {
            return Err(PairError::AddressHeld {
                address: j.ygg_address.to_string(),
                holder: format!("is your own jail `{}`'s", mine.name),
            });
        }
        if let Some(other) = state
            .peers
            .values()
            .find(|p| p.jails.iter().any(|r| r.ygg_address == j.ygg_address))
        {
            return Err(PairError::AddressHeld {
                address: j.ygg_address.to_string(),
                holder: format!("pairing {} already lists", other.code),
            });
        }
    }
    let mut jails: Vec<RemoteJail> = remote
        .jails
        .iter()
        .map(|j| RemoteJail {
            name: j.name.clone(),
            ygg_address: j.ygg_address,
        })
        .collect();
    jails.sort();
    Ok(MeshPeer {
        code: code.clone(),
        direction,
        paired_at,
        jails,
        shared: Some(local.jails.iter().map(|j| j.name.clone()).collect()),
    })
}

/// The mesh wiring a state implies: one firewall per recorded jail, each accepting the
/// addresses of the pairings that share it, on the ports its `mesh { allow }` names, and
/// the whole record set (local and remote).
pub fn mesh_wiring(state: &State) -> (Vec<JailFirewall>, DnsRecords) {
    let firewalls = state
        .jails
        .values()
        .map(|j| {
            JailFirewall::new(j.name.clone(), state.mesh_addresses_for(&j.name))
                .allowing(j.mesh_allow.clone())
        })
        .collect();
    (firewalls, wiring::records(state))
}

/// The state with pairing `code` sharing exactly `shared` (`jrun pair --share <jails>
/// <code>`): only this side's firewalls change; the peer keeps the names it learned.
pub fn reshare(
    state: &State,
    code: &PairCode,
    shared: BTreeSet<JailName>,
) -> Result<State, PairError> {
    let mut after = state.clone();
    let peer = after
        .peers
        .get_mut(code)
        .ok_or_else(|| PairError::NoSuchPairing { code: code.clone() })?;
    peer.shared = Some(shared);
    Ok(after)
}

/// Finishes a pairing change a crash interrupted (`state.mesh_pending`): applies the
/// wiring `state.peers` implies and clears the mark. The caller saves.
pub fn reconcile(rt: &dyn Runtime, state: &mut State) -> Result<(), RuntimeError> {
    if state.mesh_pending {
        let (firewalls, records) = mesh_wiring(state);
        rt.apply_mesh_from(state, &firewalls, &records)?;
        state.mesh_pending = false;
    }
    Ok(())
}

/// Moves the running instance from `before`'s wiring to `after`'s. If that fails part-way,
/// `before`'s wiring is put back (best effort) and the first error returned.
pub fn apply(rt: &dyn Runtime, before: &State, after: &State) -> Result<(), RuntimeError> {
    let (firewalls, records) = mesh_wiring(after);
    if let Err(e) = rt.apply_mesh_from(after, &firewalls, &records) {
        let (old_fw, old_records) = mesh_wiring(before);
        if let Err(undo) = rt.apply_mesh_from(before, &old_fw, &old_records) {
            tracing::warn!("could not restore the previous mesh wiring: {undo}");
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
