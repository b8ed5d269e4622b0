//! Reading typed fields out of UCL values, collecting every mistake instead of stopping
//! at the first one.

use std::collections::BTreeMap;
use std::time::Duration;

use ucl::{Kind, Object, Span, Value};

use super::error::{Draft, ErrorKind};
use super::values;

/// Collects diagnostics while the loader walks the document.
#[derive(Debug)]
pub(crate) struct Reader<'s> {
    src: &'s str,
    pub(crate) problems: Vec<Draft>,
}

/// `"jail `web`, forward `http`: "` or nothing at the top level.
pub(crate) fn prefixed(at: &str, text: impl std::fmt::Display) -> String {
    if at.is_empty() {
        text.to_string()
    } else {
        format!("{at}: {text}")
    }
}

impl<'s> Reader<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Reader {
            src,
            problems: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, d: Draft) {
        self.problems.push(d);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.problems.iter().any(Draft::is_error)
    }

    /// Reports a value of the wrong type: "`host` must be a port number, found a string".
    pub(crate) fn wrong_type(&mut self, at: &str, key: &str, v: &Value, expected: &str) {
        let found = v.type_name();
        // libucl turns a key written twice into an implicit array; say so rather than
        // leave the user wondering where an array came from.
        let twice = matches!(v.kind, Kind::Array(_))
            && self
                .src
                .get(v.span.start()..)
                .is_some_and(|rest| !rest.starts_with('['));
        let quoted_number = match &v.kind {
            Kind::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let help = if twice {
            format!("`{key}` is given more than once here; keep one")
        } else if let (Some(n), true) = (quoted_number, expected.contains("number")) {
            format!("remove the quotes: `{key} = {n};`")
        } else {
            format!("write {expected} here")
        };
        self.push(
            Draft::new(
                ErrorKind::WrongType,
                prefixed(at, format!("`{key}` must be {expected}, found {found}")),
            )
            .at(v.span, format!("expected {expected}"))
            .help(help),
        );
    }

    pub(crate) fn bad_value(&mut self, at: &str, key: &str, span: Span, why: &str, help: &str) {
        self.push(
            Draft::new(ErrorKind::BadValue, prefixed(at, format!("`{key}` {why}")))
                .at(span, "")
                .help(help.to_string()),
        );
    }

    /// The object inside `v`, or a type error.
    pub(crate) fn object<'v>(
        &mut self,
        at: &str,
        key: &str,
        v: &'v Value<'v>,
    ) -> Option<&'v Object<'v>> {
        match &v.kind {
            Kind::Object(o) => Some(o),
            _ => {
                self.wrong_type(at, key, v, "a block `{ … }`");
                None
            }
        }
    }

    /// Refuses keys outside `allowed`, with a "did you mean" hint.
    pub(crate) fn known_keys(&mut self, at: &str, obj: &Object, allowed: &[&str], what: &str) {
        for (k, _) in obj.iter() {
            if allowed.contains(&&*k.name) {
                continue;
            }
            let help = match did_you_mean(&k.name, allowed) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the keys of {what} are: {}", allowed.join(", ")),
            };
            self.push(
                Draft::new(
                    ErrorKind::UnknownKey,
                    prefixed(at, format!("unknown key `{}`", k.name)),
                )
                .at(k.span, format!("not a key of {what}"))
                .help(help),
            );
        }
    }

    /// A required key, or an error pointing at the block that lacks it.
    pub(crate) fn required<'v>(
        &mut self,
        at: &str,
        obj: &'v Object<'v>,
        key: &str,
        block: Span,
        example: &str,
    ) -> Option<&'v Value<'v>> {
        let v = obj.get(key);
        if v.is_none() {
            self.push(
                Draft::new(
                    ErrorKind::MissingKey,
                    prefixed(at, format!("`{key}` is missing")),
                )
                .at(block, format!("this needs `{key}`"))
                .help(format!("add `{example}`")),
            );
        }
        v
    }

    pub(crate) fn string<'v>(&mut self, at: &str, key: &str, v: &'v Value<'v>) -> Option<&'v str> {
        self.checked(at, key, v, values::check_text)
    }

    /// A string that passes `check` (which says what is wrong with it).
    fn checked<'v>(
        &mut self,
        at: &str,
        key: &str,
        v: &'v Value<'v>,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<&'v str> {
        match &v.kind {
            Kind::String(s) => match check(s) {
                Ok(()) => Some(s),
                Err(why) => {
                    self.bad_value(at, key, v.span, &why, "remove it");
                    None
                }
            },
            _ => {
                self.wrong_type(at, key, v, "a string");
                None
            }
        }
    }

    /// A non-empty shell script (`cmd`, a health check's `test`): as [`Self::text`], and
    /// it may run over several lines (each reaches `/bin/sh -c` as written).
    pub(crate) fn script<'v>(&mut self, at: &str, key: &str, v: &'v Value<'v>) -> Option<&'v str> {
        let s = self.checked(at, key, v, values::check_script)?;
        self.non_empty(at, key, v, s)
    }

    /// A non-empty string.
    pub(crate) fn text<'v>(&mut self, at: &str, key: &str, v: &'v Value<'v>) -> Option<&'v str> {
        let s = self.string(at, key, v)?;
        self.non_empty(at, key, v, s)
    }

    fn non_empty<'v>(&mut self, at: &str, key: &str, v: &Value, s: &'v str) -> Option<&'v str> {
        if s.trim().is_empty() {
            self.bad_value(
                at,
                key,
                v.span,
                "is empty",
                "write a value, or leave the key out",
            );
            return None;
        }
        Some(s)
    }

    /// A whole number, also when quoted (`host = "8080"`, as Jailrun's configs write it).
    fn whole(v: &Value) -> Option<i64> {
        match &v.kind {
            Kind::Int(n) => Some(*n),
            Kind::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn port(&mut self, at: &str, key: &str, v: &Value) -> Option<u16> {
        match Self::whole(v) {
            Some(n) => match u16::try_from(n) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.bad_value(
                        at,
                        key,
                        v.span,
                        &format!("is {n}, not a port from 1 to 65535"),
                        "use a port number from 1 to 65535",
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(at, key, v, "a port number");
                None
            }
        }
    }

    pub(crate) fn count(&mut self, at: &str, key: &str, v: &Value) -> Option<u32> {
        match Self::whole(v) {
            Some(n) => match u32::try_from(n) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.bad_value(
                        at,
                        key,
                        v.span,
                        &format!("is {n}, not a count"),
                        "use a whole number from 0 up",
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(at, key, v, "a whole number");
                None
            }
        }
    }

    /// A duration: a UCL time (`30s` unquoted), a number of seconds, or a string such as
    /// `"30s"`, `"500ms"`, `"5m"`, `"1h"` (the original's form).
    pub(crate) fn duration(&mut self, at: &str, key: &str, v: &Value) -> Option<Duration> {
        let parsed = match &v.kind {
            Kind::Time(s) | Kind::Float(s) => values::seconds(*s),
            Kind::Int(n) => values::seconds(*n as f64),
            Kind::String(s) => values::parse_duration(s),
            _ => {
                self.wrong_type(at, key, v, "a duration such as \"30s\"");
                return None;
            }
        };
        match parsed {
            Some(d) if d.is_zero() => {
                self.bad_value(at, key, v.span, "is zero", "use a duration such as \"10s\"");
                None
            }
            Some(d) if d > values::MAX_DURATION => {
                self.bad_value(
                    at,
                    key,
                    v.span,
                    "is longer than a day",
                    "an unquoted `1m` means one million in UCL; write \"1m\" or 60s for a minute",
                );
                None
            }
            Some(d) => Some(d),
            None => {
                self.bad_value(
                    at,
                    key,
                    v.span,
                    "is not a duration",
                    "write a number of seconds or a string like \"30s\", \"500ms\", \"5m\" or \"1h\"",
                );
                None
            }
        }
    }

    /// `{ NAME = value; … }` with variable-name keys and scalar values (numbers and booleans
    /// are taken as their text, as a shell would see them).
    /// A block of `NAME = value` (values checked by `check`: [`values::check_text`] for a
    /// service's environment, [`values::check_script`] where line breaks are kept).
    pub(crate) fn string_map(
        &mut self,
        at: &str,
        key: &str,
        v: &Value,
        check: fn(&str) -> Result<(), String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(obj) = self.object(at, key, v) else {
            return out;
        };
        for (k, v) in obj.iter() {
            if let Err(why) = values::check_var_name(&k.name) {
                self.push(
                    Draft::new(
                        ErrorKind::BadValue,
                        prefixed(at, format!("`{key}` name `{}` {why}", k.name)),
                    )
                    .at(k.span, "not a variable name")
                    .help("use names like DATABASE_URL"),
                );
                continue;
            }
            let text = match &v.kind {
                Kind::String(s) => Some(s.to_string()),
                Kind::Int(n) => Some(n.to_string()),
                Kind::Float(f) => Some(f.to_string()),
                Kind::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            match text {
                None => self.wrong_type(at, &k.name, v, "a string"),
                Some(t) => match check(&t) {
                    Ok(()) => {
                        out.insert(k.name.to_string(), t);
                    }
                    Err(why) => self.bad_value(at, &k.name, v.span, &why, "remove it"),
                },
            }
        }
        out
    }
}

/// The first place inside `v` that lies outside `v`'s own text. The parser merges a block
/// declared twice (`jail "web" { } … jail "web" { }`) into the first one, as libucl does;
/// what came from the second declaration then sits outside the first one's span.
pub(crate) fn merged_from_elsewhere(v: &Value) -> Option<Span> {
    fn walk(v: &Value, outer: Span) -> Option<Span> {
        let outside = |s: Span| s.start() < outer.start() || s.end() > outer.end();
        match &v.kind {
            Kind::Object(o) => o.iter().find_map(|(k, child)| {
                if outside(k.span) {
                    Some(k.span)
                } else {
                    walk(child, outer)
                }
            }),
            Kind::Array(items) => items.iter().find_map(|i| {
                if outside(i.span) {
                    Some(i.span)
                } else {
                    walk(i, outer)
                }
            }),
            _ => outside(v.span).then_some(v.span),
        }
    }
    walk(v, v.span)
}

/// The closest allowed word, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (levenshtein(&word, a), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Edit distance; the words compared are config keys, a few characters long.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = [
            "release", "ip", "base", "depends", "mount", "forward", "exec", "setup",
        ];
        assert_eq!(did_you_mean("forwrd", &keys), Some("forward"));
        assert_eq!(did_you_mean("depend", &keys), Some("depends"));
        assert_eq!(did_you_mean("Mount", &keys), Some("mount"));
        assert_eq!(did_you_mean("execs", &keys), Some("exec"));
        assert_eq!(did_you_mean("colour", &keys), None);
        assert_eq!(did_you_mean("xx", &["ip"]), None);
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
