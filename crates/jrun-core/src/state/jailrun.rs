//! Jailrun's `state.json` (`src/jailrun/schemas/state.py` in the original), converted to
//! jrun's state on first use of a home the two tools share (`~/.jrun`).
//!
//! Every value is checked with the types and checks a config goes through before it lands
//! in the state; anything that does not pass refuses the whole conversion, naming the
//! field. What has no place in jrun's state is carried under `runtime.jailrun` (and stays
//! in the backup of the original).
//!
//! Jailrun's jails live in Jailrun's VM (its disk under `disks/`); jrun's VM is another
//! one, so converted jails are recorded not deployed and marked [`JailState::from_jailrun`]:
//! the next `jrun up` of a file that lists them creates them again, at the same address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use jrun_mesh::{DnsLabel, PairCode, YggAddress};
use serde_json::{json, Map, Value};

use super::model::{JailState, MeshPeer, PairDirection, RemoteJail, State};
use crate::config::{parse_duration, values};
use crate::config::{
    Base, BaseForward, BaseMount, Exec, Forward, Healthcheck, JailName, Mount, Proto, SetupKind,
    SetupSource, SetupStep, DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
};
use crate::net::{is_assignable, POOL, SUBNET};

/// Where the original is kept, next to `state.json` (never overwritten: a second,
/// different Jailrun file goes to `state.jailrun.2.json`, and so on).
pub const BACKUP_FILE: &str = "state.jailrun.json";

/// The version of Jailrun's state format this converts.
const JAILRUN_VERSION: u64 = 1;

const TOP_KEYS: &[&str] = &[
    "version",
    "base",
    "jails",
    "launched_fwds",
    "launched_shares",
    "ssh_port",
    "peers",
];

/// Why a Jailrun state cannot be converted: the field (`jails.web.forwards.http.host`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConvertError {
    pub field: String,
    pub reason: String,
}

/// The converted state, and one line per thing done, for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub state: State,
    pub notes: Vec<String>,
}

/// Whether `value` is a state file Jailrun wrote: only Jailrun's top-level keys, and at
/// least one mark jrun's format never has (its VM wiring at the top level, `peers` as a
/// list, dictionaries where jrun writes lists).
pub fn is_jailrun(value: &Value) -> bool {
    let Some(top) = value.as_object() else {
        return false;
    };
    if !top.keys().all(|k| TOP_KEYS.contains(&k.as_str())) {
        return false;
    }
    let wiring = ["launched_fwds", "launched_shares", "ssh_port"]
        .iter()
        .any(|k| top.contains_key(*k));
    let peer_list = top.get("peers").is_some_and(Value::is_array);
    let base_dicts = top
        .get("base")
        .and_then(|b| b.get("setup"))
        .is_some_and(Value::is_object);
    let jail_dicts = top
        .get("jails")
        .and_then(Value::as_object)
        .is_some_and(|jails| {
            jails.values().any(|j| {
                j.get("private_name").is_some()
                    || ["forwards", "mounts", "execs", "setup"]
                        .iter()
                        .any(|k| j.get(*k).is_some_and(Value::is_object))
            })
        });
    wiring || peer_list || base_dicts || jail_dicts
}

/// Converts Jailrun's state `value` (checked with [`is_jailrun`]).
pub fn convert(value: &Value) -> Result<Converted, ConvertError> {
    let top = object(value, "(the file)")?;
    known(top, "", TOP_KEYS)?;
    match top.get("version") {
        None => {}
        Some(v) => match v.as_u64() {
            Some(JAILRUN_VERSION) => {}
            _ => {
                return Err(fail(
                    "version",
                    format!("is {v}; this jrun converts Jailrun's state version {JAILRUN_VERSION}"),
                ))
            }
        },
    }
    let mut notes = Vec::new();
    let mut state = State::default();

    let jails = match top.get("jails") {
        None => Map::new(),
        Some(v) => object(v, "jails")?.clone(),
    };
    let mut unaddressed = Vec::new();
    for (key, v) in &jails {
        let (jail, ip) = jail(key, v)?;
        if ip.is_none() {
            unaddressed.push(jail.name.clone());
        }
        state.jails.insert(jail.name.clone(), jail);
    }
    // Addresses: unique; a jail Jailrun never gave one gets the first free address.
    let mut held: BTreeMap<Ipv4Addr, JailName> = BTreeMap::new();
    for j in state.jails.values() {
        if unaddressed.contains(&j.name) {
            continue;
        }
        if let Some(other) = held.insert(j.ip, j.name.clone()) {
            return Err(fail(
                &format!("jails.{}.ip", j.name),
                format!("{} is also the address of jail {other}", j.ip),
            ));
        }
    }
    for name in &unaddressed {
        let o = SUBNET.octets();
        let free = POOL
            .clone()
            .map(|last| Ipv4Addr::new(o[0], o[1], o[2], last))
            .find(|ip| !held.contains_key(ip))
            .ok_or_else(|| fail(&format!("jails.{name}.ip"), "no free address left".into()))?;
        held.insert(free, name.clone());
        state.jails.get_mut(name).expect("converted above").ip = free;
    }
    for j in state.jails.values() {
        if let Some(base) = &j.base {
            if !state.jails.contains_key(base) {
                return Err(fail(
                    &format!("jails.{}.base.name", j.name),
                    format!("names jail {base}, which the state does not hold"),
                ));
            }
        }
    }
    for j in state.jails.values() {
        let mut what = vec![format!("{}", j.ip)];
        what.extend(j.release.clone());
        let counts = [
            (j.forwards.len(), "forward"),
            (j.mounts.len(), "mount"),
            (j.execs.len(), "exec"),
            (j.setup.len(), "setup step"),
        ];
        let counts: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        let assigned = if unaddressed.contains(&j.name) {
            " (Jailrun had given it no address yet)"
        } else {
            ""
        };
        let with = if counts.is_empty() {
            String::new()
        } else {
            format!(" with {}", counts.join(", "))
        };
        notes.push(format!(
            "jail {} ({}){assigned}: converted{with}; it is not in jrun's VM yet, the next `jrun up` of its config file creates it again",
            j.name,
            what.join(", ")
        ));
    }

    let peers = match top.get("peers") {
        None => Vec::new(),
        Some(v) => array(v, "peers")?.clone(),
    };
    for (i, v) in peers.iter().enumerate() {
        let peer = peer(i, v)?;
        notes.push(format!(
            "pairing {} ({}): converted with {} remote jail{}",
            peer.code,
            match peer.direction {
                PairDirection::Created => "created here",
                PairDirection::Joined => "joined",
            },
            peer.jails.len(),
            if peer.jails.len() == 1 { "" } else { "s" }
        ));
        if state.peers.contains_key(&peer.code) {
            return Err(fail(
                &format!("peers[{i}].alias"),
                format!("pairing {} is listed twice", peer.code),
            ));
        }
        state.peers.insert(peer.code.clone(), peer);
    }

    // The VM-level parts: carried, not applied (jrun's VM is not Jailrun's).
    let base = match top.get("base") {
        None => Base::default(),
        Some(v) => base(v)?,
    };
    let ssh_port = match top.get("ssh_port") {
        None | Some(Value::Null) => None,
        Some(v) => Some(port(v, "ssh_port")?),
    };
    let launched_fwds = match top.get("launched_fwds") {
        None => Vec::new(),
        Some(v) => array(v, "launched_fwds")?.clone(),
    };
    for (i, f) in launched_fwds.iter().enumerate() {
        let at = format!("launched_fwds[{i}]");
        let o = object(f, &at)?;
        known(o, &at, &["proto", "host", "guest"])?;
        proto(o, &at)?;
        port(need(o, &at, "host")?, &format!("{at}.host"))?;
        port(need(o, &at, "guest")?, &format!("{at}.guest"))?;
    }
    let launched_shares = match top.get("launched_shares") {
        None => Vec::new(),
        Some(v) => array(v, "launched_shares")?.clone(),
    };
    for (i, s) in launched_shares.iter().enumerate() {
        let at = format!("launched_shares[{i}]");
        let o = object(s, &at)?;
        known(o, &at, &["host", "id", "mount_tag"])?;
        host_path(need(o, &at, "host")?, &format!("{at}.host"))?;
        for k in ["id", "mount_tag"] {
            let field = format!("{at}.{k}");
            values::check_item_name(string(need(o, &at, k)?, &field)?)
                .map_err(|why| fail(&field, why))?;
        }
    }
    let base_empty = base == Base::default();
    if !base_empty {
        notes.push(format!(
            "Jailrun's base ({} setup step(s), {} forward(s), {} mount(s)) is not recorded as applied: jrun's VM is a new one; `jrun up` of a file with that base block applies it (kept under runtime.jailrun in state.json)",
            base.setup.len(),
            base.forwards.len(),
            base.mounts.len()
        ));
    }
    if ssh_port.is_some() || !launched_fwds.is_empty() || !launched_shares.is_empty() {
        notes.push(format!(
            "Jailrun's VM wiring (SSH port {}, {} forward(s), {} share(s)) belongs to Jailrun's VM; jrun's VM derives its own from the jails (JRUN_SSH_PORT sets its SSH port; kept under runtime.jailrun)",
            ssh_port.map_or_else(|| "none".to_string(), |p| p.to_string()),
            launched_fwds.len(),
            launched_shares.len()
        ));
    }
    if !base_empty || ssh_port.is_some() || !launched_fwds.is_empty() || !launched_shares.is_empty()
    {
        state.runtime.insert(
            "jailrun".into(),
            json!({
                "base": base,
                "ssh_port": ssh_port,
                "launched_fwds": launched_fwds,
                "launched_shares": launched_shares,
            }),
        );
    }
    Ok(Converted { state, notes })
}

fn fail(field: &str, reason: String) -> ConvertError {
    ConvertError {
        field: field.to_string(),
        reason,
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ConvertError> {
    v.as_object()
        .ok_or_else(|| fail(at, format!("is {}, not an object", kind(v))))
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, ConvertError> {
    v.as_array()
        .ok_or_else(|| fail(at, format!("is {}, not a list", kind(v))))
}

fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, ConvertError> {
    v.as_str()
        .ok_or_else(|| fail(at, format!("is {}, not a string", kind(v))))
}

fn need<'a>(o: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a Value, ConvertError> {
    o.get(key)
        .ok_or_else(|| fail(&join(at, key), "is missing".into()))
}

/// A key this conversion does not know would be lost: refused.
fn known(o: &Map<String, Value>, at: &str, keys: &[&str]) -> Result<(), ConvertError> {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(fail(
            &join(at, k),
            "is not a field of Jailrun's state as jrun knows it (a newer Jailrun?); converting would lose it".into(),
        )),
        None => Ok(()),
    }
}

fn port(v: &Value, at: &str) -> Result<u16, ConvertError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| fail(at, format!("is {v}, not a port from 1 to 65535")))
}

fn proto(o: &Map<String, Value>, at: &str) -> Result<Proto, ConvertError> {
    match o.get("proto") {
        None => Ok(Proto::Tcp),
        Some(v) => match string(v, &join(at, "proto"))? {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(fail(
                &join(at, "proto"),
                format!("is {other:?}, not \"tcp\" or \"udp\""),
            )),
        },
    }
}

fn item_name(name: &str, at: &str) -> Result<String, ConvertError> {
    values::check_item_name(name).map_err(|why| fail(at, format!("the name {name:?} {why}")))?;
    Ok(name.to_string())
}

fn host_path(v: &Value, at: &str) -> Result<PathBuf, ConvertError> {
    let s = string(v, at)?;
    values::check_text(s).map_err(|why| fail(at, why))?;
    if !s.starts_with('/') {
        return Err(fail(at, format!("{s:?} is not an absolute path")));
    }
    Ok(values::normalize(std::path::Path::new(s)))
}

fn guest_path(v: &Value, at: &str) -> Result<PathBuf, ConvertError> {
    values::check_guest_path(string(v, at)?).map_err(|why| fail(at, why))
}

fn text_map(v: &Value, at: &str) -> Result<BTreeMap<String, String>, ConvertError> {
    let mut out = BTreeMap::new();
    for (k, v) in object(v, at)? {
        let field = join(at, k);
        values::check_var_name(k).map_err(|why| fail(&field, why))?;
        let s = string(v, &field)?;
        values::check_text(s).map_err(|why| fail(&field, why))?;
        out.insert(k.clone(), s.to_string());
    }
    Ok(out)
}

/// One entry of a Jailrun dictionary: its (checked) name, its field path, its object.
type Entry<'a> = (String, String, &'a Map<String, Value>);

/// Entries of a Jailrun dictionary (`forwards`, `mounts`…), each with its field path.
fn entries<'a>(
    o: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Vec<Entry<'a>>, ConvertError> {
    let Some(v) = o.get(key) else {
        return Ok(Vec::new());
    };
    let field = join(at, key);
    object(v, &field)?
        .iter()
        .map(|(name, v)| {
            let at = join(&field, name);
            let name = item_name(name, &at)?;
            Ok((name, at.clone(), object(v, &at)?))
        })
        .collect()
}

fn jail(key: &str, v: &Value) -> Result<(JailState, Option<Ipv4Addr>), ConvertError> {
    let at = format!("jails.{key}");
    let name = JailName::new(key).map_err(|e| {
        fail(
            &at,
            format!("{key:?} is not a jail name jrun accepts: it {e}"),
        )
    })?;
    let o = object(v, &at)?;
    known(
        o,
        &at,
        &[
            "name",
            "base",
            "release",
            "ip",
            "forwards",
            "mounts",
            "execs",
            "setup",
            "private_name",
        ],
    )?;
    if let Some(n) = o.get("name") {
        let n = string(n, &join(&at, "name"))?;
        if n != key {
            return Err(fail(
                &join(&at, "name"),
                format!("is {n:?}, but the jail is recorded under {key:?}"),
            ));
        }
    }
    if let Some(p) = o.get("private_name") {
        // Derived from the name by Jailrun (`j` + 12 hex digits of its SHA-256).
        string(p, &join(&at, "private_name"))?;
    }
    let release_at = join(&at, "release");
    let release = string(need(o, &at, "release")?, &release_at)?;
    values::check_release(release).map_err(|why| fail(&release_at, why))?;
    let ip = match o.get("ip") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let ip_at = join(&at, "ip");
            let s = string(v, &ip_at)?;
            let ip = Ipv4Addr::from_str(s)
                .map_err(|_| fail(&ip_at, format!("{s:?} is not an IPv4 address")))?;
            if !is_assignable(ip) {
                return Err(fail(
                    &ip_at,
                    format!("{ip} is not a jail address jrun can use"),
                ));
            }
            Some(ip)
        }
    };
    let base = match o.get("base") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let base_at = join(&at, "base");
            let b = object(v, &base_at)?;
            known(b, &base_at, &["type", "name", "private_name"])?;
            if let Some(t) = b.get("type") {
                let t = string(t, &join(&base_at, "type"))?;
                if t != "jail" {
                    return Err(fail(
                        &join(&base_at, "type"),
                        format!("is {t:?}, not \"jail\""),
                    ));
                }
            }
            let name_at = join(&base_at, "name");
            let n = string(need(b, &base_at, "name")?, &name_at)?;
            Some(
                JailName::new(n)
                    .map_err(|e| fail(&name_at, format!("{n:?} is not a jail name: it {e}")))?,
            )
        }
    };
    let mut forwards = Vec::new();
    for (fname, fat, f) in entries(o, &at, "forwards")? {
        known(f, &fat, &["proto", "host", "jail"])?;
        forwards.push(Forward {
            name: fname,
            proto: proto(f, &fat)?,
            host: port(need(f, &fat, "host")?, &join(&fat, "host"))?,
            jail: port(need(f, &fat, "jail")?, &join(&fat, "jail"))?,
        });
    }
    let mut mounts = Vec::new();
    let mut inside = BTreeSet::new();
    for (mname, mat, m) in entries(o, &at, "mounts")? {
        known(m, &mat, &["host", "jail"])?;
        let jail_path = guest_path(need(m, &mat, "jail")?, &join(&mat, "jail"))?;
        if !inside.insert(jail_path.clone()) {
            return Err(fail(
                &join(&mat, "jail"),
                format!("{} receives two mounts", jail_path.display()),
            ));
        }
        mounts.push(Mount {
            name: mname,
            host: host_path(need(m, &mat, "host")?, &join(&mat, "host"))?,
            jail: jail_path,
        });
    }
    let mut execs = Vec::new();
    for (ename, eat, e) in entries(o, &at, "execs")? {
        execs.push(exec(ename, &eat, e)?);
    }
    let mut setup = Vec::new();
    for (sname, sat, s) in entries(o, &at, "setup")? {
        setup.push(setup_step(sname, &sat, s)?);
    }
    let state = JailState {
        name,
        // Placeholder until addresses are assigned (`convert`).
        ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        release: Some(release.to_string()),
        base,
        // Jailrun's state does not record `depends`: the next `up` records them.
        depends: Vec::new(),
        forwards,
        mounts,
        execs,
        setup,
        deployed: false,
        file: None,
        from_jailrun: true,
        mesh_allow: None,
    };
    Ok((state, ip))
}

fn exec(name: String, at: &str, e: &Map<String, Value>) -> Result<Exec, ConvertError> {
    known(e, at, &["cmd", "dir", "env", "healthcheck"])?;
    let cmd_at = join(at, "cmd");
    let cmd = string(need(e, at, "cmd")?, &cmd_at)?;
    values::check_script(cmd).map_err(|why| fail(&cmd_at, why))?;
    let dir = match e.get("dir") {
        None => None,
        Some(v) if v.as_str() == Some("/") => None,
        Some(v) => Some(guest_path(v, &join(at, "dir"))?.display().to_string()),
    };
    let env = match e.get("env") {
        None => BTreeMap::new(),
        Some(v) => text_map(v, &join(at, "env"))?,
    };
    let healthcheck = match e.get("healthcheck") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let hat = join(at, "healthcheck");
            let h = object(v, &hat)?;
            // `timeout_seconds` and `interval_cycles` are derived by Jailrun.
            known(
                h,
                &hat,
                &[
                    "test",
                    "interval",
                    "timeout",
                    "retries",
                    "timeout_seconds",
                    "interval_cycles",
                ],
            )?;
            let test_at = join(&hat, "test");
            let test = string(need(h, &hat, "test")?, &test_at)?;
            values::check_script(test).map_err(|why| fail(&test_at, why))?;
            let duration = |key: &str, default| -> Result<_, ConvertError> {
                let Some(v) = h.get(key) else {
                    return Ok(default);
                };
                let field = join(&hat, key);
                let s = string(v, &field)?;
                match parse_duration(s) {
                    Some(d) if !d.is_zero() && d <= values::MAX_DURATION => Ok(d),
                    _ => Err(fail(
                        &field,
                        format!("{s:?} is not a duration from 1ms to a day"),
                    )),
                }
            };
            let retries = match h.get("retries") {
                None => DEFAULT_RETRIES,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        fail(
                            &join(&hat, "retries"),
                            format!(
                                "is {v}; jrun restarts a service after 1 or more failed checks"
                            ),
                        )
                    })?,
            };
            Some(Healthcheck {
                test: test.to_string(),
                interval: duration("interval", DEFAULT_INTERVAL)?,
                timeout: duration("timeout", DEFAULT_TIMEOUT)?,
                retries,
            })
        }
    };
    Ok(Exec {
        name,
        cmd: cmd.to_string(),
        dir,
        env,
        healthcheck,
        // Jailrun's execs have no user: they run as the jail's root.
        user: None,
    })
}

fn setup_step(name: String, at: &str, s: &Map<String, Value>) -> Result<SetupStep, ConvertError> {
    known(s, at, &["type", "file", "url", "vars"])?;
    if let Some(t) = s.get("type") {
        let t = string(t, &join(at, "type"))?;
        if t != "ansible" {
            return Err(fail(
                &join(at, "type"),
                format!("is {t:?}, not \"ansible\""),
            ));
        }
    }
    let source = match (s.get("file"), s.get("url")) {
        (Some(_), Some(_)) => {
            return Err(fail(at, "has both `file` and `url`".into()));
        }
        (None, None) => return Err(fail(at, "has neither `file` nor `url`".into())),
        // As the config gave it: Jailrun runs a relative playbook from the folder `jrun`
        // runs in. Only the next `up` of the file uses the step, from the file.
        (Some(f), None) => {
            let fat = join(at, "file");
            let f = string(f, &fat)?;
            values::check_text(f).map_err(|why| fail(&fat, why))?;
            if f.is_empty() {
                return Err(fail(&fat, "is empty".into()));
            }
            SetupSource::File(PathBuf::from(f))
        }
        (None, Some(u)) => {
            let uat = join(at, "url");
            let u = string(u, &uat)?;
            values::check_url(u).map_err(|why| fail(&uat, why))?;
            SetupSource::Url(u.to_string())
        }
    };
    let vars = match s.get("vars") {
        None => BTreeMap::new(),
        Some(v) => text_map(v, &join(at, "vars"))?,
    };
    Ok(SetupStep {
        name,
        kind: SetupKind::Ansible,
        source,
        vars,
    })
}

fn base(v: &Value) -> Result<Base, ConvertError> {
    let o = object(v, "base")?;
    known(o, "base", &["setup", "forwards", "mounts"])?;
    let mut base = Base::default();
    for (name, at, s) in entries(o, "base", "setup")? {
        base.setup.push(setup_step(name, &at, s)?);
    }
    for (name, at, f) in entries(o, "base", "forwards")? {
        known(f, &at, &["proto", "host", "target"])?;
        base.forwards.push(BaseForward {
            name,
            proto: proto(f, &at)?,
            host: port(need(f, &at, "host")?, &join(&at, "host"))?,
            target: port(need(f, &at, "target")?, &join(&at, "target"))?,
        });
    }
    for (name, at, m) in entries(o, "base", "mounts")? {
        known(m, &at, &["host", "target"])?;
        base.mounts.push(BaseMount {
            name,
            host: host_path(need(m, &at, "host")?, &join(&at, "host"))?,
            target: guest_path(need(m, &at, "target")?, &join(&at, "target"))?,
        });
    }
    Ok(base)
}

fn peer(i: usize, v: &Value) -> Result<MeshPeer, ConvertError> {
    let at = format!("peers[{i}]");
    let o = object(v, &at)?;
    known(o, &at, &["alias", "direction", "paired_at", "jails"])?;
    let alias_at = join(&at, "alias");
    let alias = string(need(o, &at, "alias")?, &alias_at)?;
    let code = PairCode::from_str(alias).map_err(|e| fail(&alias_at, e.to_string()))?;
    let dir_at = join(&at, "direction");
    let direction = match string(need(o, &at, "direction")?, &dir_at)? {
        "init" => PairDirection::Created,
        "joined" => PairDirection::Joined,
        other => {
            return Err(fail(
                &dir_at,
                format!("is {other:?}, not \"init\" or \"joined\""),
            ))
        }
    };
    let when_at = join(&at, "paired_at");
    let when = string(need(o, &at, "paired_at")?, &when_at)?;
    let paired_at = iso_to_epoch(when).ok_or_else(|| {
        fail(
            &when_at,
            format!("{when:?} is not a date and time like 2025-03-01T12:00:00+00:00"),
        )
    })?;
    let mut jails = Vec::new();
    if let Some(v) = o.get("jails") {
        let jat = join(&at, "jails");
        for (k, j) in array(v, &jat)?.iter().enumerate() {
            let at = format!("{jat}[{k}]");
            let j = object(j, &at)?;
            known(j, &at, &["name", "ygg_address"])?;
            let name_at = join(&at, "name");
            let n = string(need(j, &at, "name")?, &name_at)?;
            let name = DnsLabel::new(n)
                .map_err(|e| fail(&name_at, format!("{n:?} is not a DNS label: it {e}")))?;
            let addr_at = join(&at, "ygg_address");
            let a = string(need(j, &at, "ygg_address")?, &addr_at)?;
            let ygg_address = YggAddress::from_str(a).map_err(|e| fail(&addr_at, e.to_string()))?;
            jails.push(RemoteJail { name, ygg_address });
        }
    }
    Ok(MeshPeer {
        code,
        direction,
        paired_at,
        jails,
        // Jailrun opens every jail to every peer: a converted pairing keeps doing so.
        shared: None,
    })
}

/// Seconds since the Unix epoch of an ISO 8601 date and time as Python's `isoformat()`
/// writes it: `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]` (no offset: UTC).
fn iso_to_epoch(s: &str) -> Option<u64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let date = s.get(..10)?;
    let sep = s.get(10..11)?;
    if sep != "T" && sep != " " {
        return None;
    }
    let rest = s.get(11..)?;
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || date.as_bytes()[4] != b'-' {
        return None;
    }
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':');
    let (hh, mm, ss) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if c.next().is_some() {
        return None;
    }
    let frac_ok = rest[..rest.len() - offset.len()]
        .split_once('.')
        .is_none_or(|(_, f)| num(f).is_some());
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = frac_ok
        && (1..=12).contains(&m)
        && day >= 1
        && day <= days_in_month[(m - 1) as usize]
        && hh < 24
        && mm < 60
        && ss < 60;
    if !valid {
        return None;
    }
    let offset_secs = match offset {
        "" | "Z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_as_python_writes_them() {
        assert_eq!(iso_to_epoch("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(
            iso_to_epoch("2025-03-01T12:34:56.789012+00:00"),
            Some(1_740_832_496)
        );
        assert_eq!(
            iso_to_epoch("2025-03-01T14:34:56+02:00"),
            Some(1_740_832_496)
        );
        assert_eq!(iso_to_epoch("2025-03-01T12:34:56Z"), Some(1_740_832_496));
        assert_eq!(iso_to_epoch("2025-03-01T12:34:56"), Some(1_740_832_496));
        assert_eq!(
            iso_to_epoch("2024-02-29T00:00:00+00:00"),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "yesterday",
            "2025-02-30T00:00:00+00:00",
            "2025-13-01T00:00:00+00:00",
            "2025-03-01T24:00:00+00:00",
            "2025-03-01",
            "1969-12-31T23:59:59+00:00",
            "2025-03-01T12:34:56.x+00:00",
        ] {
            assert_eq!(iso_to_epoch(bad), None, "{bad}");
        }
    }

    #[test]
    fn jrun_states_are_not_taken_for_jailruns() {
        let jrun = serde_json::to_value(State::default()).unwrap();
        assert!(!is_jailrun(&jrun));
        let jrun = json!({"version": 1, "jails": {}, "peers": {}});
        assert!(!is_jailrun(&jrun));
        let jrun = json!({"version": 2, "jails": {"web": {"name": "web", "ip": "10.17.89.10", "deployed": true, "forwards": []}}});
        assert!(!is_jailrun(&jrun));
        let jailrun = json!({"version": 1, "base": {"setup": {}, "forwards": {}, "mounts": {}}, "jails": {}, "launched_fwds": [], "launched_shares": [], "ssh_port": null});
        assert!(is_jailrun(&jailrun));
        assert!(!is_jailrun(&json!([1, 2])));
    }
}
