//! Pure checks and conversions of single values: durations, item names, guest paths,
//! host paths, releases. Each returns a reason a user can act on.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The longest healthcheck interval or timeout accepted. A bare `1m` in UCL means one
/// million (libucl's multiplier), not a minute; this bound turns that slip into an error.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration written as a string, as the original does: a number of seconds
/// (`"30"`), or a number with a unit `ms`, `s`, `m`/`min` (minutes) or `h` (`"10s"`, `"1.5m"`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    seconds(num * scale)
}

/// A number of seconds as a duration, if finite and not negative. A number too large for
/// `Duration` saturates to `Duration::MAX`, so callers report it as "too long" (never a panic).
pub fn seconds(secs: f64) -> Option<Duration> {
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Names of the items of a block (`forward { http { } }`, `exec { server { } }`) become parts
/// of service names, log files and firewall comments, so they are kept to a safe alphabet.
pub fn check_item_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '_' and '-' are allowed"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    Ok(())
}

/// An exec's `user`: a user name `[a-z_][a-z0-9_-]{0,31}` (what FreeBSD's and Linux's
/// account tools accept, without the trailing `$` of machine accounts), or a numeric uid
/// below 4294967295 (`(uid_t)-1` means "unchanged" to setuid-family calls).
pub fn check_exec_user(user: &str) -> Result<(), String> {
    if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
        return match user.parse::<u32>() {
            Ok(n) if n < u32::MAX => Ok(()),
            _ => Err("is not a uid (0 to 4294967294)".into()),
        };
    }
    let mut bytes = user.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && user.len() <= 32
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("is not a user name (a lowercase letter or '_', then up to 31 of lowercase letters, digits, '_' and '-') nor a numeric uid".into())
    }
}

/// Environment variable and playbook variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_var_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("is not a variable name (letters, digits and '_', not starting with a digit)".into())
    }
}

/// Text that ends up in rendered files and commands may not carry control characters
/// (a newline would start a new directive).
pub fn check_text(text: &str) -> Result<(), String> {
    no_control_but(text, &['\t'])
}

/// As [`check_text`], and line breaks are allowed: a script (`cmd`, a check's `test`)
/// reaches `/bin/sh -c` as written, over several lines.
pub fn check_script(text: &str) -> Result<(), String> {
    no_control_but(text, &['\t', '\n'])
}

fn no_control_but(text: &str, allowed: &[char]) -> Result<(), String> {
    match text
        .chars()
        .find(|c| c.is_control() && !allowed.contains(c))
    {
        Some(c) => Err(format!("contains the control character {c:?}")),
        None => Ok(()),
    }
}

/// A path inside a jail or the VM: absolute, no `..` (it could climb out of the jail's
/// root), not `/` itself, no control characters.
pub fn check_guest_path(path: &str) -> Result<PathBuf, String> {
    check_text(path)?;
    if !path.starts_with('/') {
        return Err("must be an absolute path (starting with '/')".into());
    }
    let p = Path::new(path);
    if p.components().any(|c| c == Component::ParentDir) {
        return Err("may not contain '..'".into());
    }
    let clean: PathBuf = p.components().collect();
    if clean == Path::new("/") {
        return Err("may not be '/' itself".into());
    }
    Ok(clean)
}

/// Resolves a host path from the config: `~/…` against `home`, relative paths against the
/// config file's folder; `.` and `..` are folded lexically (symlinks are left alone).
pub fn resolve_host_path(path: &str, config_dir: &Path, home: Option<&Path>) -> PathBuf {
    let joined = match (
        path.strip_prefix("~/").or((path == "~").then_some("")),
        home,
    ) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => config_dir.join(path),
    };
    normalize(&joined)
}

/// Folds `.` and `..` without touching the filesystem.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A FreeBSD release such as `15.0-RELEASE` or `14.3-RELEASE-p2`: it becomes part of a
/// download URL and a dataset name.
pub fn check_release(release: &str) -> Result<(), String> {
    let (version, rest) = match release.split_once('-') {
        Some((v, r)) => (v, Some(r)),
        None => (release, None),
    };
    let version_ok = version
        .split_once('.')
        .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
    let rest_ok = rest.is_none_or(|r| {
        r.split('-')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
    });
    if version_ok && rest_ok && release.len() <= 40 {
        Ok(())
    } else {
        Err("is not a FreeBSD release like \"15.0-RELEASE\"".into())
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// A remote setup source: `http://`, `https://` or a Jailrun Hub `hub://` URL.
pub fn check_url(url: &str) -> Result<(), String> {
    check_text(url)?;
    if url.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    let rest = ["https://", "http://", "hub://"]
        .iter()
        .find_map(|p| url.strip_prefix(p));
    match rest {
        Some(r) if !r.is_empty() => Ok(()),
        Some(_) => Err("has nothing after the scheme".into()),
        None => Err("must start with https://, http:// or hub://".into()),
    }
}

/// Turns an invalid jail name into a DNS label, for the hint ("use `my-app`").
pub fn label_suggestion(name: &str) -> Option<String> {
    let mut s: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let s: String = s.chars().take(63).collect();
    let s = s.trim_end_matches('-').to_string();
    (!s.is_empty() && s != name).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_the_original() {
        let d = |s| parse_duration(s);
        assert_eq!(d("30s"), Some(Duration::from_secs(30)));
        assert_eq!(d("30"), Some(Duration::from_secs(30)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("5m"), Some(Duration::from_secs(300)));
        assert_eq!(d("5min"), Some(Duration::from_secs(300)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d(" 10 s "), Some(Duration::from_secs(10)));
        for bad in ["", "s", "ten", "10 sec", "10d", "-1s", "1.2.3s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
        assert_eq!(d("99999999999999999999s"), Some(Duration::MAX));
        assert_eq!(seconds(1e20), Some(Duration::MAX));
        assert_eq!(seconds(f64::INFINITY), None);
    }

    #[test]
    fn item_names() {
        for ok in ["http", "custom_ssh", "web-1", "2nd"] {
            assert!(check_item_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "_x", "-x", "a b", "a.b", "a/b", "é", &"x".repeat(64)] {
            assert!(check_item_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn var_names() {
        assert!(check_var_name("DATABASE_URL").is_ok());
        assert!(check_var_name("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "A=B"] {
            assert!(check_var_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn guest_paths() {
        assert_eq!(
            check_guest_path("/srv/app/").unwrap(),
            PathBuf::from("/srv/app")
        );
        assert_eq!(
            check_guest_path("/srv/./app").unwrap(),
            PathBuf::from("/srv/app")
        );
        assert!(check_guest_path("srv/app").is_err());
        assert!(check_guest_path("/srv/../../etc").is_err());
        assert!(check_guest_path("/").is_err());
        assert!(check_guest_path("/srv\n/x").is_err());
    }

    #[test]
    fn host_paths_resolve_against_the_config_folder() {
        let dir = Path::new("/home/u/proj");
        let home = Some(Path::new("/home/u"));
        assert_eq!(resolve_host_path(".", dir, home), dir);
        assert_eq!(
            resolve_host_path("./data", dir, home),
            PathBuf::from("/home/u/proj/data")
        );
        assert_eq!(
            resolve_host_path("../shared", dir, home),
            PathBuf::from("/home/u/shared")
        );
        assert_eq!(resolve_host_path("/abs", dir, home), PathBuf::from("/abs"));
        assert_eq!(
            resolve_host_path("~/code", dir, home),
            PathBuf::from("/home/u/code")
        );
    }

    #[test]
    fn releases() {
        for ok in ["15.0-RELEASE", "14.3-RELEASE-p2", "15.0", "16.0-CURRENT"] {
            assert!(check_release(ok).is_ok(), "{ok}");
        }
        for bad in ["", "15", "RELEASE", "15.0-", "15.0-RE LEASE", "15.0;rm"] {
            assert!(check_release(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("hub://nginx/rolling").is_ok());
        assert!(check_url("https://example.org/p.yml").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("hub://").is_err());
        assert!(check_url("hub://a b").is_err());
    }

    #[test]
    fn label_suggestions() {
        assert_eq!(label_suggestion("My_App").as_deref(), Some("my-app"));
        assert_eq!(label_suggestion("web.1").as_deref(), Some("web-1"));
        assert_eq!(label_suggestion("__"), None);
    }
}
