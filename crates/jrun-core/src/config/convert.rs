//! From a parsed UCL document to the typed [`Config`], recording where each value was
//! written so that the checks across jails can point at it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use jrun_mesh::DnsLabel;
use ucl::{Key, Kind, Object, Span, Value};

use super::blocks::{self, Dirs, ForwardShape};
use super::error::{Draft, ErrorKind};
use super::model::{
    Base, BaseForward, BaseMount, Config, Forward, Jail, JailName, MeshPort, Mount,
};
use super::read::{did_you_mean, merged_from_elsewhere, prefixed, Reader};
use super::values;
use crate::net;

const TOP_KEYS: &[&str] = &["base", "jail"];
const BASE_KEYS: &[&str] = &["setup", "mount", "forward"];
const JAIL_KEYS: &[&str] = &[
    "release", "ip", "base", "depends", "mount", "forward", "exec", "setup", "mesh",
];
const MESH_KEYS: &[&str] = &["allow"];
const JAIL_FORWARD: ForwardShape = ForwardShape {
    keys: &["proto", "host", "jail"],
    what: "a jail forward",
    host_example: "host = 8080;",
    inner: "jail",
    inner_example: "jail = 8080;",
};
const BASE_FORWARD: ForwardShape = ForwardShape {
    keys: &["proto", "host", "target"],
    what: "a base forward",
    host_example: "host = 2200;",
    inner: "target",
    inner_example: "target = 22;",
};
const MOUNT_KEYS: &[&str] = &["host", "jail"];
const BASE_MOUNT_KEYS: &[&str] = &["host", "target"];
const JAIL_BASE_KEYS: &[&str] = &["type", "name"];

/// Where the values that cross-jail checks need were written.
#[derive(Debug, Default)]
pub(crate) struct Sites {
    /// Parallel to `Config::jails`.
    pub jails: Vec<JailSites>,
    /// Parallel to `Base::forwards`: the `host` values.
    pub base_forwards: Vec<Span>,
}

#[derive(Debug, Default)]
pub(crate) struct JailSites {
    pub ip: Option<Span>,
    /// Parallel to `Jail::forwards`: the `host` values.
    pub forwards: Vec<Span>,
    /// Parallel to `Jail::depends`.
    pub depends: Vec<Span>,
    pub base: Option<Span>,
}

/// Converts the whole document. Jails whose names are invalid are left out of the result
/// (their bodies are still checked); references to them are not reported twice.
pub(crate) fn document(
    r: &mut Reader<'_>,
    root: &Value,
    path: PathBuf,
    dirs: &Dirs<'_>,
) -> (Config, Sites) {
    let mut config = Config {
        path,
        base: None,
        jails: Vec::new(),
    };
    let mut sites = Sites::default();
    let Some(top) = root.as_object() else {
        r.wrong_type("", "the file", root, "a block");
        return (config, sites);
    };
    r.known_keys("", top, TOP_KEYS, "a config file");
    if let Some(v) = top.get("base") {
        config.base = r
            .object("", "base", v)
            .map(|o| base(r, dirs, o, &mut sites));
    }
    let entries = top
        .get("jail")
        .map(|v| jail_entries(r, v))
        .unwrap_or_default();
    let names = Names {
        all: entries.iter().map(|(k, _)| k.name.to_string()).collect(),
    };
    for (key, body) in entries {
        let at = format!("jail `{}`", key.name);
        let name = match DnsLabel::new(key.name.clone()) {
            Ok(n) => Some(n),
            Err(why) => {
                let help = match values::label_suggestion(&key.name) {
                    Some(s) => format!(
                        "jail names are DNS labels: lowercase letters, digits and '-', e.g. `{s}`"
                    ),
                    None => "jail names are DNS labels: lowercase letters, digits and '-'".into(),
                };
                r.push(
                    Draft::new(
                        ErrorKind::BadJailName,
                        format!("jail name `{}` {why}", key.name),
                    )
                    .at(key.span, "not a DNS label")
                    .help(help),
                );
                None
            }
        };
        let mut js = JailSites::default();
        let Some(obj) = r.object("", &format!("jail \"{}\"", key.name), body) else {
            continue;
        };
        let jail = jail(r, dirs, &at, name, obj, &names, &mut js);
        if let Some(jail) = jail {
            config.jails.push(jail);
            sites.jails.push(js);
        }
    }
    (config, sites)
}

/// The `jail` value: `jail "a" { } jail "b" { }` merges into one object of jails; a jail
/// declared twice comes back as an implicit array, which is refused.
fn jail_entries<'v>(r: &mut Reader<'_>, v: &'v Value<'v>) -> Vec<(&'v Key<'v>, &'v Value<'v>)> {
    let Some(obj) = r.object("", "jail", v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, body) in obj.iter() {
        match &body.kind {
            Kind::Array(copies) if copies.iter().all(|c| c.as_object().is_some()) => {
                r.push(
                    Draft::new(
                        ErrorKind::Duplicate,
                        format!("jail `{}` is declared {} times", k.name, copies.len()),
                    )
                    .at(copies[1].span, "declared again here")
                    .at(k.span, "first declared here")
                    .help("jail names must be unique in a file; rename or merge one of them"),
                );
                out.push((k, &copies[0]));
            }
            _ => {
                if let Some(again) = merged_from_elsewhere(body) {
                    r.push(
                        Draft::new(
                            ErrorKind::Duplicate,
                            format!("jail `{}` is declared more than once", k.name),
                        )
                        .at(again, "from another declaration of this jail")
                        .at(k.span, "first declared here")
                        .help("jail names must be unique in a file; rename or merge one of them"),
                    );
                }
                out.push((k, body));
            }
        }
    }
    out
}

/// Every jail name the file declares, valid or not.
struct Names {
    all: BTreeSet<String>,
}

impl Names {
    /// Resolves a reference to a jail. `Err(None)` means the name is declared but invalid
    /// (already reported); `Err(Some(hint))` means it is not declared.
    fn resolve(&self, name: &str) -> Result<JailName, Option<String>> {
        if !self.all.contains(name) {
            let all: Vec<&str> = self.all.iter().map(String::as_str).collect();
            return Err(Some(match did_you_mean(name, &all) {
                Some(s) => format!("did you mean `{s}`?"),
                None if all.is_empty() => "this file declares no jails".into(),
                None => format!("the jails of this file are: {}", all.join(", ")),
            }));
        }
        DnsLabel::new(name).map_err(|_| None)
    }
}

fn jail(
    r: &mut Reader<'_>,
    dirs: &Dirs<'_>,
    at: &str,
    name: Option<JailName>,
    obj: &Object,
    names: &Names,
    js: &mut JailSites,
) -> Option<Jail> {
    r.known_keys(at, obj, JAIL_KEYS, "a jail");
    let release = obj.get("release").and_then(|v| {
        let s = r.text(at, "release", v)?;
        match values::check_release(s) {
            Ok(()) => Some(s.to_string()),
            Err(why) => {
                r.bad_value(
                    at,
                    "release",
                    v.span,
                    &why,
                    "write a release such as \"15.0-RELEASE\", or leave it out to use the VM's",
                );
                None
            }
        }
    });
    let ip = obj.get("ip").and_then(|v| {
        js.ip = Some(v.span);
        ip(r, at, v)
    });
    let base = obj.get_entry("base").and_then(|(k, v)| {
        let o = r.object(at, "base", v)?;
        jail_base(r, at, k.span, o, names, js)
    });
    let mut depends = Vec::new();
    if let Some(v) = obj.get("depends") {
        let list: Vec<&Value> = match &v.kind {
            Kind::Array(items) => items.iter().collect(),
            Kind::String(_) => vec![v],
            _ => {
                r.wrong_type(at, "depends", v, "a list of jail names");
                Vec::new()
            }
        };
        for item in list {
            let Some(dep) = r.string(at, "depends", item) else {
                continue;
            };
            if let Some(dep) = reference(r, at, "depends on", dep, item.span, names) {
                if !depends.contains(&dep) {
                    depends.push(dep);
                    js.depends.push(item.span);
                }
            }
        }
    }
    let mut forwards = Vec::new();
    if let Some(v) = obj.get("forward") {
        for f in blocks::forwards(r, at, v, &JAIL_FORWARD) {
            forwards.push(Forward {
                name: f.name,
                proto: f.proto,
                host: f.host,
                jail: f.inner,
            });
            js.forwards.push(f.host_span);
        }
    }
    let mut mounts = Vec::new();
    if let Some(v) = obj.get("mount") {
        for (k, o) in blocks::items(r, at, "mount", v) {
            let mat = prefixed(at, format!("mount `{}`", k.name));
            r.known_keys(&mat, o, MOUNT_KEYS, "a jail mount");
            let host = r
                .required(&mat, o, "host", k.span, "host = \"./src\";")
                .and_then(|h| blocks::host_dir(r, dirs, &mat, h));
            let jail = r
                .required(&mat, o, "jail", k.span, "jail = \"/srv/app\";")
                .and_then(|j| blocks::guest_path(r, &mat, "jail", j));
            if let Some(((host, jail), v)) = host.zip(jail).zip(o.get("jail")) {
                if let Some(prev) = mounts.iter().find(|m: &&Mount| m.jail == jail) {
                    r.push(duplicate_target(&mat, &jail, v.span, &prev.name));
                } else {
                    mounts.push(Mount {
                        name: k.name.to_string(),
                        host,
                        jail,
                    });
                }
            }
        }
    }
    let mut execs = Vec::new();
    if let Some(v) = obj.get("exec") {
        for (k, o) in blocks::items(r, at, "exec", v) {
            let eat = prefixed(at, format!("exec `{}`", k.name));
            execs.extend(blocks::exec(r, &eat, k, o));
        }
    }
    let setup = setup_steps(r, dirs, at, obj.get("setup"));
    let mesh_allow = obj.get("mesh").and_then(|v| mesh_allow(r, at, v));
    Some(Jail {
        name: name?,
        release,
        ip,
        base,
        depends,
        mounts,
        forwards,
        execs,
        setup,
        mesh_allow,
    })
}

/// `mesh { allow = [80, "5432/tcp", "53/udp"]; }`: the ports paired peers may reach (a
/// bare number is tcp). No `allow`: every port. An entry written twice counts once.
fn mesh_allow(r: &mut Reader<'_>, at: &str, v: &Value) -> Option<BTreeSet<MeshPort>> {
    let obj = r.object(at, "mesh", v)?;
    let mat = prefixed(at, "mesh");
    r.known_keys(&mat, obj, MESH_KEYS, "a jail's mesh block");
    let allow = obj.get("allow")?;
    let items: Vec<&Value> = match &allow.kind {
        Kind::Array(items) => items.iter().collect(),
        _ => vec![allow],
    };
    let help =
        "write ports as 80 (tcp), \"5432/tcp\" or \"53/udp\", e.g. allow = [80, \"53/udp\"];";
    let mut ports = BTreeSet::new();
    for item in items {
        let parsed = match &item.kind {
            Kind::Int(n) => match u16::try_from(*n) {
                Ok(p) => MeshPort::new(super::model::Proto::Tcp, p),
                Err(_) => Err(format!("is {n}, not a port from 1 to 65535")),
            },
            Kind::String(s) => s.trim().parse::<MeshPort>(),
            _ => {
                r.wrong_type(&mat, "allow", item, "a port such as 80 or \"53/udp\"");
                continue;
            }
        };
        match parsed {
            Ok(p) => {
                ports.insert(p);
            }
            Err(why) => r.bad_value(&mat, "allow", item.span, &format!("entry {why}"), help),
        }
    }
    Some(ports)
}

fn duplicate_target(at: &str, path: &std::path::Path, span: Span, other: &str) -> Draft {
    Draft::new(
        ErrorKind::Duplicate,
        prefixed(
            at,
            format!(
                "{} is already the target of mount `{other}`",
                path.display()
            ),
        ),
    )
    .at(span, "mounted twice")
    .help("each folder inside can receive one mount; pick another path")
}

fn ip(r: &mut Reader<'_>, at: &str, v: &Value) -> Option<Ipv4Addr> {
    let s = r.string(at, "ip", v)?;
    let help = "use an address from 10.17.89.2 to 10.17.89.254 (.1 is the bridge), or leave `ip` out to have one assigned";
    match s.parse::<Ipv4Addr>() {
        Ok(ip) if net::is_assignable(ip) => Some(ip),
        Ok(ip) if net::in_subnet(ip) => {
            r.bad_value(
                at,
                "ip",
                v.span,
                &format!("{ip} is reserved (network, bridge or broadcast)"),
                help,
            );
            None
        }
        Ok(ip) => {
            r.bad_value(
                at,
                "ip",
                v.span,
                &format!("{ip} is outside the jail subnet 10.17.89.0/24"),
                help,
            );
            None
        }
        Err(_) => {
            r.bad_value(
                at,
                "ip",
                v.span,
                &format!("{s:?} is not an IPv4 address"),
                help,
            );
            None
        }
    }
}

fn jail_base(
    r: &mut Reader<'_>,
    at: &str,
    key: Span,
    o: &Object,
    names: &Names,
    js: &mut JailSites,
) -> Option<JailName> {
    let bat = prefixed(at, "base");
    r.known_keys(&bat, o, JAIL_BASE_KEYS, "a jail's base");
    if let Some(t) = o.get("type") {
        match r.string(&bat, "type", t) {
            Some("jail") | None => {}
            Some(other) => r.bad_value(
                &bat,
                "type",
                t.span,
                &format!("is {other:?}; only \"jail\" is supported"),
                "write base { type = \"jail\"; name = \"<another jail>\"; }",
            ),
        }
    }
    let v = r.required(&bat, o, "name", key, "name = \"<the jail to clone>\";")?;
    let name = r.string(&bat, "name", v)?;
    let dep = reference(r, &bat, "clones", name, v.span, names)?;
    js.base = Some(v.span);
    Some(dep)
}

/// A reference to another jail of the file (`depends`, `base.name`).
fn reference(
    r: &mut Reader<'_>,
    at: &str,
    verb: &str,
    name: &str,
    span: Span,
    names: &Names,
) -> Option<JailName> {
    match names.resolve(name) {
        Ok(n) => Some(n),
        Err(None) => None,
        Err(Some(help)) => {
            r.push(
                Draft::new(
                    ErrorKind::UnknownJail,
                    prefixed(
                        at,
                        format!("{verb} `{name}`, which this file does not declare"),
                    ),
                )
                .at(span, "no such jail")
                .help(help),
            );
            None
        }
    }
}

fn setup_steps(
    r: &mut Reader<'_>,
    dirs: &Dirs<'_>,
    at: &str,
    v: Option<&Value>,
) -> Vec<super::model::SetupStep> {
    let Some(v) = v else { return Vec::new() };
    blocks::items(r, at, "setup", v)
        .into_iter()
        .filter_map(|(k, o)| {
            let sat = prefixed(at, format!("setup `{}`", k.name));
            blocks::setup(r, dirs, &sat, k, o)
        })
        .collect()
}

fn base(r: &mut Reader<'_>, dirs: &Dirs<'_>, obj: &Object, sites: &mut Sites) -> Base {
    let at = "base";
    r.known_keys(at, obj, BASE_KEYS, "the base block");
    let mut out = Base {
        setup: setup_steps(r, dirs, at, obj.get("setup")),
        ..Base::default()
    };
    if let Some(v) = obj.get("forward") {
        for f in blocks::forwards(r, at, v, &BASE_FORWARD) {
            out.forwards.push(BaseForward {
                name: f.name,
                proto: f.proto,
                host: f.host,
                target: f.inner,
            });
            sites.base_forwards.push(f.host_span);
        }
    }
    if let Some(v) = obj.get("mount") {
        for (k, o) in blocks::items(r, at, "mount", v) {
            let mat = prefixed(at, format!("mount `{}`", k.name));
            r.known_keys(&mat, o, BASE_MOUNT_KEYS, "a base mount");
            let host = r
                .required(&mat, o, "host", k.span, "host = \"./data\";")
                .and_then(|h| blocks::host_dir(r, dirs, &mat, h));
            let target = r
                .required(&mat, o, "target", k.span, "target = \"/home/admin/data\";")
                .and_then(|t| blocks::guest_path(r, &mat, "target", t));
            if let Some(((host, target), v)) = host.zip(target).zip(o.get("target")) {
                if let Some(prev) = out.mounts.iter().find(|m| m.target == target) {
                    r.push(duplicate_target(&mat, &target, v.span, &prev.name));
                } else {
                    out.mounts.push(BaseMount {
                        name: k.name.to_string(),
                        host,
                        target,
                    });
                }
            }
        }
    }
    out
}
