//! Text a jail controls (its services' logs, its setup steps' output) on its way to an
//! admin's terminal: control characters would let it move the cursor, rewrite the title,
//! or hide what it printed, so they are shown escaped instead.

use std::borrow::Cow;

/// `text` with every control character (C0 but tab, DEL, C1) and every bidirectional
/// override shown as an escape (`\x1b`, `\u{202e}`), so it prints as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_run() {
        assert_eq!(printable("GET / 200\tok"), "GET / 200\tok");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("\x1b]0;x\x07title"), "\\x1b]0;x\\x07title");
        assert_eq!(printable("a\rb\u{9b}c"), "a\\x0db\\x9bc");
        assert_eq!(printable("evil\u{202e}txt"), "evil\\u{202e}txt");
    }
}
