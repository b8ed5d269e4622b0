//! The named-item blocks shared by `base` and jails: `forward`, `mount`, `exec`, `setup`.

use std::path::Path;
use std::time::Duration;

use ucl::{Key, Kind, Object, Span, Value};

use super::error::{Draft, ErrorKind};
use super::model::{Exec, ExecUser, Healthcheck, Proto, SetupKind, SetupSource, SetupStep};
use super::read::{merged_from_elsewhere, prefixed, Reader};
use super::values;

/// Healthcheck defaults, as the original: every 30s, 10s to answer, 3 failures to restart.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRIES: u32 = 3;

/// Where host paths in the file resolve.
pub(crate) struct Dirs<'a> {
    pub config_dir: &'a Path,
    pub home: Option<&'a Path>,
}

/// How one kind of `forward` item is written: the keys it may have and the key (with an
/// example) naming the port it forwards to.
pub(crate) struct ForwardShape {
    pub keys: &'static [&'static str],
    pub what: &'static str,
    pub host_example: &'static str,
    pub inner: &'static str,
    pub inner_example: &'static str,
}

/// One `forward` item read: the protocol, the host port and where it was written, and the
/// port it forwards to.
pub(crate) struct ForwardItem {
    pub name: String,
    pub proto: Proto,
    pub host: u16,
    pub host_span: Span,
    pub inner: u16,
}

/// The items of a `forward` block written as `shape`; an item with a missing or invalid
/// value is reported and left out.
pub(crate) fn forwards(
    r: &mut Reader<'_>,
    at: &str,
    v: &Value,
    shape: &ForwardShape,
) -> Vec<ForwardItem> {
    let mut out = Vec::new();
    for (k, o) in items(r, at, "forward", v) {
        let fat = prefixed(at, format!("forward `{}`", k.name));
        r.known_keys(&fat, o, shape.keys, shape.what);
        let proto = proto(r, &fat, o);
        let host = r.required(&fat, o, "host", k.span, shape.host_example);
        let host_span = host.map(|h| h.span);
        let host = host.and_then(|h| r.port(&fat, "host", h));
        let inner = r
            .required(&fat, o, shape.inner, k.span, shape.inner_example)
            .and_then(|v| r.port(&fat, shape.inner, v));
        if let (Some(proto), Some(host), Some(inner), Some(host_span)) =
            (proto, host, inner, host_span)
        {
            out.push(ForwardItem {
                name: k.name.to_string(),
                proto,
                host,
                host_span,
                inner,
            });
        }
    }
    out
}

/// The items of a block such as `forward { http { … } debug { … } }`: each name checked,
/// each body an object; an item written twice is refused.
pub(crate) fn items<'v>(
    r: &mut Reader<'_>,
    at: &str,
    key: &str,
    v: &'v Value<'v>,
) -> Vec<(&'v Key<'v>, &'v Object<'v>)> {
    let Some(obj) = r.object(at, key, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, body) in obj.iter() {
        if let Err(why) = values::check_item_name(&k.name) {
            r.push(
                Draft::new(
                    ErrorKind::BadValue,
                    prefixed(at, format!("{key} name `{}` {why}", k.name)),
                )
                .at(k.span, "not a valid name")
                .help("name items with letters, digits, '_' and '-', e.g. `http` or `custom_ssh`"),
            );
            continue;
        }
        let item_at = prefixed(at, format!("{key} `{}`", k.name));
        match &body.kind {
            Kind::Object(o) => {
                if let Some(again) = merged_from_elsewhere(body) {
                    r.push(
                        Draft::new(
                            ErrorKind::Duplicate,
                            format!("{item_at} is defined more than once"),
                        )
                        .at(again, format!("from another `{}` block", k.name))
                        .at(k.span, "first defined here")
                        .help(format!("give each {key} its own name, or merge them")),
                    );
                }
                out.push((k, o));
            }
            Kind::Array(copies) if copies.iter().all(|c| c.as_object().is_some()) => {
                let mut d = Draft::new(
                    ErrorKind::Duplicate,
                    format!("{item_at} is defined {} times", copies.len()),
                )
                .at(copies[1].span, "defined again here")
                .at(k.span, "first defined here");
                d = d.help(format!("give each {key} its own name, or merge the two"));
                r.push(d);
                if let Some(o) = copies[0].as_object() {
                    out.push((k, o));
                }
            }
            _ => r.wrong_type(at, &k.name, body, "a block `{ … }`"),
        }
    }
    out
}

/// `proto` (default tcp).
pub(crate) fn proto(r: &mut Reader<'_>, at: &str, obj: &Object) -> Option<Proto> {
    let Some(v) = obj.get("proto") else {
        return Some(Proto::Tcp);
    };
    match r.string(at, "proto", v)? {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        other => {
            r.bad_value(
                at,
                "proto",
                v.span,
                &format!("is {other:?}, not \"tcp\" or \"udp\""),
                "write proto = \"tcp\" or proto = \"udp\" (tcp when left out)",
            );
            None
        }
    }
}

/// A guest-side path (`jail` of a mount, `target` of a base mount).
pub(crate) fn guest_path(
    r: &mut Reader<'_>,
    at: &str,
    key: &str,
    v: &Value,
) -> Option<std::path::PathBuf> {
    let s = r.text(at, key, v)?;
    match values::check_guest_path(s) {
        Ok(p) => Some(p),
        Err(why) => {
            r.bad_value(
                at,
                key,
                v.span,
                &why,
                "write an absolute path such as \"/srv/app\"",
            );
            None
        }
    }
}

/// A host-side folder, resolved against the config's folder. A folder that is missing is a
/// warning (the runtime creates nothing and checks again before mounting); a file is an error.
pub(crate) fn host_dir(
    r: &mut Reader<'_>,
    dirs: &Dirs<'_>,
    at: &str,
    v: &Value,
) -> Option<std::path::PathBuf> {
    let s = r.text(at, "host", v)?;
    let path = values::resolve_host_path(s, dirs.config_dir, dirs.home);
    if path.is_file() {
        r.bad_value(
            at,
            "host",
            v.span,
            &format!("is a file ({}), not a folder", path.display()),
            "mounts share folders; name the folder that holds the file",
        );
        return None;
    }
    if !path.exists() {
        r.push(
            Draft::new(
                ErrorKind::MissingPath,
                prefixed(at, format!("host folder {} does not exist", path.display())),
            )
            .warning()
            .at(v.span, "resolved against the config file's folder")
            .help("create it before `jrun up`, or fix the path"),
        );
    }
    Some(path)
}

const EXEC_KEYS: &[&str] = &["cmd", "dir", "env", "healthcheck", "user"];
const HEALTH_KEYS: &[&str] = &["test", "interval", "timeout", "retries"];
const SETUP_KEYS: &[&str] = &["type", "file", "url", "vars"];

/// One `exec { <name> { cmd dir env healthcheck user } }` item.
pub(crate) fn exec(r: &mut Reader<'_>, at: &str, key: &Key, obj: &Object) -> Option<Exec> {
    r.known_keys(at, obj, EXEC_KEYS, "an exec block");
    let cmd = r
        .required(at, obj, "cmd", key.span, "cmd = \"./server --port 8080\";")
        .and_then(|v| r.script(at, "cmd", v));
    let dir = match obj.get("dir") {
        None => Some(None),
        Some(v) => guest_path(r, at, "dir", v).map(|p| Some(p.display().to_string())),
    };
    let env = obj
        .get("env")
        .map(|v| r.string_map(at, "env", v, values::check_text))
        .unwrap_or_default();
    let healthcheck = match obj.get_entry("healthcheck") {
        None => Some(None),
        Some((k, v)) => {
            let hat = prefixed(at, "healthcheck");
            r.object(at, "healthcheck", v)
                .and_then(|o| healthcheck(r, &hat, k.span, o))
                .map(Some)
        }
    };
    let user = match obj.get("user") {
        None => Some(None),
        Some(v) => exec_user(r, at, v).map(Some),
    };
    Some(Exec {
        name: key.name.to_string(),
        cmd: cmd?.to_string(),
        dir: dir?,
        env,
        healthcheck: healthcheck?,
        user: user?,
    })
}

/// `user = "www";` or a uid, `user = 1001;` (also quoted).
fn exec_user(r: &mut Reader<'_>, at: &str, v: &Value) -> Option<ExecUser> {
    let text = match &v.kind {
        Kind::String(s) => s.to_string(),
        Kind::Int(n) => n.to_string(),
        _ => {
            r.wrong_type(at, "user", v, "a user name or a uid");
            return None;
        }
    };
    match ExecUser::new(&text) {
        Ok(u) => Some(u),
        Err(why) => {
            r.bad_value(
                at,
                "user",
                v.span,
                &why,
                "name an account of the jail, e.g. `user = \"www\";`, or a uid: `user = 1001;`",
            );
            None
        }
    }
}

fn healthcheck(r: &mut Reader<'_>, at: &str, span: Span, obj: &Object) -> Option<Healthcheck> {
    r.known_keys(at, obj, HEALTH_KEYS, "a healthcheck");
    let test = r
        .required(
            at,
            obj,
            "test",
            span,
            "test = \"fetch -qo /dev/null http://127.0.0.1:8080/\";",
        )
        .and_then(|v| r.script(at, "test", v));
    let interval = obj
        .get("interval")
        .map_or(Some(DEFAULT_INTERVAL), |v| r.duration(at, "interval", v));
    let timeout = obj
        .get("timeout")
        .map_or(Some(DEFAULT_TIMEOUT), |v| r.duration(at, "timeout", v));
    let retries = match obj.get("retries") {
        None => Some(DEFAULT_RETRIES),
        Some(v) => match r.count(at, "retries", v)? {
            0 => {
                r.bad_value(
                    at,
                    "retries",
                    v.span,
                    "is 0",
                    "a service is restarted after this many failed checks in a row; use 1 or more",
                );
                None
            }
            n => Some(n),
        },
    };
    Some(Healthcheck {
        test: test?.to_string(),
        interval: interval?,
        timeout: timeout?,
        retries: retries?,
    })
}

/// One `setup { <name> { type file|url vars } }` step.
pub(crate) fn setup(
    r: &mut Reader<'_>,
    dirs: &Dirs<'_>,
    at: &str,
    key: &Key,
    obj: &Object,
) -> Option<SetupStep> {
    r.known_keys(at, obj, SETUP_KEYS, "a setup step");
    let kind = match obj.get("type") {
        None => Some(SetupKind::Ansible),
        Some(v) => match r.string(at, "type", v) {
            Some("ansible") => Some(SetupKind::Ansible),
            Some("shell") => Some(SetupKind::Shell),
            Some(other) => {
                r.bad_value(
                    at,
                    "type",
                    v.span,
                    &format!("is {other:?}, not \"ansible\" or \"shell\""),
                    "write type = \"ansible\" (a playbook; the default) or type = \"shell\" (a script)",
                );
                None
            }
            None => None,
        },
    };
    let source = match (obj.get("file"), obj.get("url")) {
        (Some(f), Some(u)) => {
            r.push(
                Draft::new(
                    ErrorKind::BadValue,
                    prefixed(at, "both `file` and `url` are given"),
                )
                .at(u.span, "a URL")
                .at(f.span, "and a file")
                .help("a setup step runs one playbook or script: keep one of them"),
            );
            None
        }
        (None, None) => {
            r.push(
                Draft::new(
                    ErrorKind::MissingKey,
                    prefixed(at, "neither `file` nor `url` is given"),
                )
                .at(key.span, "this step runs nothing")
                .help("add file = \"setup.yml\"; or url = \"hub://nginx/rolling\";"),
            );
            None
        }
        (Some(f), None) => setup_file(r, dirs, at, f),
        (None, Some(u)) => {
            let s = r.text(at, "url", u)?;
            match crate::playbook::RemoteSource::parse(s) {
                Ok(_) => Some(SetupSource::Url(s.to_string())),
                Err(why) => {
                    r.bad_value(
                        at,
                        "url",
                        u.span,
                        &why,
                        "write url = \"hub://nginx/rolling\"; or a GitHub file URL; for any other file use `file`",
                    );
                    None
                }
            }
        }
    };
    let vars = obj
        .get("vars")
        // Playbook vars keep their line breaks (Jailrun's docs pass multi-line values).
        .map(|v| r.string_map(at, "vars", v, values::check_script))
        .unwrap_or_default();
    Some(SetupStep {
        name: key.name.to_string(),
        kind: kind?,
        source: source?,
        vars,
    })
}

fn setup_file(r: &mut Reader<'_>, dirs: &Dirs<'_>, at: &str, v: &Value) -> Option<SetupSource> {
    let s = r.text(at, "file", v)?;
    if values::check_url(s).is_ok() {
        r.bad_value(
            at,
            "file",
            v.span,
            "looks like a URL",
            "use `url` for remote playbooks and scripts",
        );
        return None;
    }
    let beside_config = values::resolve_host_path(s, dirs.config_dir, dirs.home);
    // As Jailrun: a relative file not found next to the config is looked for from the
    // current folder (its examples name files from the repository's root).
    let from_cwd = (!beside_config.exists() && Path::new(s).is_relative() && !s.starts_with('~'))
        .then(|| std::env::current_dir().ok())
        .flatten()
        .map(|cwd| values::normalize(&cwd.join(s)))
        .filter(|p| p.exists());
    let path = match from_cwd {
        Some(p) => {
            r.push(
                Draft::new(
                    ErrorKind::MissingPath,
                    prefixed(
                        at,
                        format!(
                            "setup file {s} is not next to the config; using {} (from the current folder)",
                            p.display()
                        ),
                    ),
                )
                .warning()
                .at(v.span, "not found in the config's folder")
                .help(format!(
                    "write the path relative to the config's folder ({}) to silence this",
                    dirs.config_dir.display()
                )),
            );
            p
        }
        None => beside_config,
    };
    if path.is_dir() {
        r.bad_value(
            at,
            "file",
            v.span,
            &format!("is a folder ({})", path.display()),
            "name the playbook or script file itself",
        );
        return None;
    }
    if !path.exists() {
        r.push(
            Draft::new(
                ErrorKind::MissingPath,
                prefixed(at, format!("setup file {} does not exist", path.display())),
            )
            .warning()
            .at(
                v.span,
                "resolved against the config file's folder, then the current folder",
            )
            .help("create it before `jrun up`, or fix the path"),
        );
    }
    Some(SetupSource::File(path))
}
