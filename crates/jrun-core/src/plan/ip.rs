//! IP assignment (DESIGN §2): a static `ip` wins, else the address in state, else the
//! first address of the pool that nobody holds, claims or answers on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Probe;
use crate::config::{Config, JailName};
use crate::net::{is_assignable, BRIDGE_IP, POOL, SUBNET, SUBNET_PREFIX};
use crate::state::State;

/// Where a jail's address comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpSource {
    /// The config's `ip`.
    Static,
    /// Kept from state.
    Kept,
    /// Newly assigned from the pool.
    New,
    /// Newly assigned because another jail's static `ip` took the kept one.
    Displaced { from: Ipv4Addr, by: JailName },
}

/// One jail's resolved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    pub ip: Ipv4Addr,
    pub source: IpSource,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("jail {jail} has ip = \"{ip}\", which is not usable: jail addresses lie in {SUBNET}/{SUBNET_PREFIX} and may not be .0, .1 (the bridge, {BRIDGE_IP}) or .255")]
    NotAssignable { jail: JailName, ip: Ipv4Addr },
    #[error("jails {first} and {second} both have ip = \"{ip}\"; give one of them another address or remove its `ip`")]
    DuplicateStatic {
        ip: Ipv4Addr,
        first: JailName,
        second: JailName,
    },
    #[error("jail {jail} has ip = \"{ip}\", but something jrun does not manage already answers on that address; choose another address")]
    StaticInUse { jail: JailName, ip: Ipv4Addr },
    #[error("{needed} jails need an address but only {free} are free in {}.{}–{}; remove jails or give some a static ip outside that range", pool_prefix(), POOL.start(), POOL.end())]
    PoolExhausted { needed: usize, free: usize },
}

fn pool_prefix() -> String {
    let o = SUBNET.octets();
    format!("{}.{}.{}", o[0], o[1], o[2])
}

fn pool_ip(last: u8) -> Ipv4Addr {
    let o = SUBNET.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// Resolves the address of every jail in `scope` (names of `config`).
pub fn assign_ips(
    config: &Config,
    scope: &BTreeSet<JailName>,
    state: &State,
    probe: &Probe,
) -> Result<BTreeMap<JailName, Assigned>, IpError> {
    let held: BTreeMap<Ipv4Addr, &JailName> =
        state.jails.values().map(|j| (j.ip, &j.name)).collect();
    let mut statics: BTreeMap<Ipv4Addr, &JailName> = BTreeMap::new();
    for jail in &config.jails {
        let Some(ip) = jail.ip else { continue };
        if !is_assignable(ip) {
            return Err(IpError::NotAssignable {
                jail: jail.name.clone(),
                ip,
            });
        }
        if let Some(first) = statics.insert(ip, &jail.name) {
            return Err(IpError::DuplicateStatic {
                ip,
                first: first.clone(),
                second: jail.name.clone(),
            });
        }
        if probe.in_use.contains(&ip) && !held.contains_key(&ip) {
            return Err(IpError::StaticInUse {
                jail: jail.name.clone(),
                ip,
            });
        }
    }

    let mut out = BTreeMap::new();
    let mut kept: BTreeSet<Ipv4Addr> = BTreeSet::new();
    // Jails needing a new address, in declaration order, with the address they lost.
    let mut needy: Vec<(&JailName, Option<(Ipv4Addr, JailName)>)> = Vec::new();
    for jail in config.jails.iter().filter(|j| scope.contains(&j.name)) {
        if let Some(ip) = jail.ip {
            out.insert(
                jail.name.clone(),
                Assigned {
                    ip,
                    source: IpSource::Static,
                },
            );
            continue;
        }
        match state.jails.get(&jail.name).map(|s| s.ip) {
            Some(ip) => match statics.get(&ip) {
                Some(&owner) if *owner != jail.name => {
                    needy.push((&jail.name, Some((ip, owner.clone()))));
                }
                _ if kept.insert(ip) => {
                    out.insert(
                        jail.name.clone(),
                        Assigned {
                            ip,
                            source: IpSource::Kept,
                        },
                    );
                }
                _ => needy.push((&jail.name, None)),
            },
            None => needy.push((&jail.name, None)),
        }
    }

    let taken = |ip: &Ipv4Addr| {
        statics.contains_key(ip)
            || held.contains_key(ip)
            || kept.contains(ip)
            || probe.in_use.contains(ip)
    };
    let free: Vec<Ipv4Addr> = POOL.map(pool_ip).filter(|ip| !taken(ip)).collect();
    if needy.len() > free.len() {
        return Err(IpError::PoolExhausted {
            needed: needy.len(),
            free: free.len(),
        });
    }
    for ((name, lost), ip) in needy.into_iter().zip(free) {
        let source = match lost {
            Some((from, by)) => IpSource::Displaced { from, by },
            None => IpSource::New,
        };
        out.insert(name.clone(), Assigned { ip, source });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{config, jail, state_with, JailExt};

    fn ip(last: u8) -> Ipv4Addr {
        pool_ip(last)
    }

    fn all(cfg: &Config) -> BTreeSet<JailName> {
        cfg.jails.iter().map(|j| j.name.clone()).collect()
    }

    fn got(a: &BTreeMap<JailName, Assigned>, name: &str) -> Assigned {
        a[&JailName::new(name).unwrap()].clone()
    }

    #[test]
    fn static_then_state_then_first_free() {
        let cfg = config(vec![jail("a"), jail("b").ip(ip(10)), jail("c"), jail("d")]);
        let state = state_with(&[("c", ip(12))]);
        let probe = Probe {
            in_use: [ip(11), ip(12)].into(),
            ..Probe::default()
        };
        let a = assign_ips(&cfg, &all(&cfg), &state, &probe).unwrap();
        assert_eq!(
            got(&a, "b"),
            Assigned {
                ip: ip(10),
                source: IpSource::Static
            }
        );
        assert_eq!(
            got(&a, "c"),
            Assigned {
                ip: ip(12),
                source: IpSource::Kept
            }
        );
        assert_eq!(
            got(&a, "a"),
            Assigned {
                ip: ip(13),
                source: IpSource::New
            }
        );
        assert_eq!(
            got(&a, "d"),
            Assigned {
                ip: ip(14),
                source: IpSource::New
            }
        );
    }

    #[test]
    fn a_static_displaces_a_kept_address() {
        let cfg = config(vec![jail("a"), jail("b").ip(ip(10))]);
        let state = state_with(&[("a", ip(10))]);
        let a = assign_ips(&cfg, &all(&cfg), &state, &Probe::default()).unwrap();
        assert_eq!(
            got(&a, "a").source,
            IpSource::Displaced {
                from: ip(10),
                by: JailName::new("b").unwrap()
            }
        );
        assert_eq!(got(&a, "a").ip, ip(11));
    }

    #[test]
    fn bad_statics_are_refused() {
        let cfg = config(vec![jail("a").ip(ip(1))]);
        let err = assign_ips(&cfg, &all(&cfg), &State::default(), &Probe::default());
        assert!(matches!(err, Err(IpError::NotAssignable { .. })));
        let cfg = config(vec![jail("a").ip(ip(20)), jail("b").ip(ip(20))]);
        let err = assign_ips(&cfg, &all(&cfg), &State::default(), &Probe::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jails a and b both have ip = \"10.17.89.20\"; give one of them another address or remove its `ip`"
        );
        let cfg = config(vec![jail("a").ip(ip(20))]);
        let probe = Probe {
            in_use: [ip(20)].into(),
            ..Probe::default()
        };
        let err = assign_ips(&cfg, &all(&cfg), &State::default(), &probe);
        assert!(matches!(err, Err(IpError::StaticInUse { .. })));
    }

    #[test]
    fn exhaustion_says_how_many() {
        let cfg = config(vec![jail("a"), jail("b"), jail("c")]);
        let probe = Probe {
            in_use: (10..=248).map(ip).collect(),
            ..Probe::default()
        };
        let err = assign_ips(&cfg, &all(&cfg), &State::default(), &probe).unwrap_err();
        assert_eq!(err, IpError::PoolExhausted { needed: 3, free: 2 });
        assert_eq!(
            err.to_string(),
            "3 jails need an address but only 2 are free in 10.17.89.10–250; remove jails or \
             give some a static ip outside that range"
        );
    }
}
