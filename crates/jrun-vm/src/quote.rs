//! POSIX `sh` quoting: the one way a value from a config reaches a generated script.

/// Quotes `s` as one `sh` word: single quotes, with each `'` written as `'\''`.
/// Inside single quotes `sh` interprets nothing (`$`, `` ` ``, `\`, `;`, newlines), so the
/// word is always exactly `s`.
pub fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Whether `s` is a portable shell variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_everything_sh_would_interpret() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("$(id); `x`\n"), "'$(id); `x`\n'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn round_trips_through_a_real_sh() {
        let nasty = "a'b\"c$(id)`x`;\\n\nz '' \\";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote(nasty)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("PGDATA"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1x"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name("A;B"));
        assert!(!is_env_name(""));
    }
}
