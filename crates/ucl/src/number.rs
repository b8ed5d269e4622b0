//! Numbers written as unquoted atoms, with libucl's suffixes.
//!
//! An atom that is not a number (`1.2.3`, `10apples`) is not an error: it becomes a
//! string, as in libucl. Only a number that does not fit is an error.

use crate::Kind;

/// Why a numeric atom was rejected.
#[derive(Debug, PartialEq)]
pub(crate) enum NumberError {
    OutOfRange,
}

const SECOND: f64 = 1.0;
const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
/// 365 days. (libucl multiplies by 7 × 365 days, an evident slip that we do not copy.)
const YEAR: f64 = 365.0 * DAY;

enum Suffix {
    None,
    /// `k m g`: ×1000ⁿ, keeps the number's type.
    Decimal(i64),
    /// `kb mb gb`: ×1024ⁿ, always an integer.
    Binary(i64),
    /// A time unit: the result is a `Time` in seconds.
    Time(f64),
}

fn suffix(s: &str) -> Option<Suffix> {
    let lower = |want: &str| s.eq_ignore_ascii_case(want);
    Some(match s.len() {
        0 => Suffix::None,
        1 => match s.as_bytes()[0].to_ascii_lowercase() {
            b'k' => Suffix::Decimal(1_000),
            b'm' => Suffix::Decimal(1_000_000),
            b'g' => Suffix::Decimal(1_000_000_000),
            b's' => Suffix::Time(SECOND),
            b'h' => Suffix::Time(HOUR),
            b'd' => Suffix::Time(DAY),
            b'w' => Suffix::Time(WEEK),
            b'y' => Suffix::Time(YEAR),
            _ => return None,
        },
        2 if lower("kb") => Suffix::Binary(1 << 10),
        2 if lower("mb") => Suffix::Binary(1 << 20),
        2 if lower("gb") => Suffix::Binary(1 << 30),
        2 if lower("ms") => Suffix::Time(0.001),
        3 if lower("min") => Suffix::Time(MINUTE),
        _ => return None,
    })
}

fn digits_len(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Reads `text` (an atom with surrounding blanks already removed) as a number.
///
/// `None`: not a number, the caller makes it a string.
pub(crate) fn parse_number(text: &str) -> Option<Result<Kind<'static>, NumberError>> {
    let b = text.as_bytes();
    let (neg, body) = match b.first()? {
        b'-' => (true, &text[1..]),
        c if c.is_ascii_digit() => (false, text),
        _ => return None,
    };
    let bb = body.as_bytes();
    if bb.len() > 2 && bb[0] == b'0' && (bb[1] | 0x20) == b'x' {
        let hex = &body[2..];
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        return Some(match i64::from_str_radix(hex, 16) {
            Ok(v) => Ok(Kind::Int(if neg { -v } else { v })),
            Err(_) => Err(NumberError::OutOfRange),
        });
    }
    let int_len = digits_len(bb);
    if int_len == 0 {
        return None;
    }
    let mut end = int_len;
    let mut is_float = false;
    if bb.get(end) == Some(&b'.') {
        is_float = true;
        end += 1;
        end += digits_len(&bb[end..]);
    }
    if matches!(bb.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(bb.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let exp_digits = digits_len(&bb[e..]);
        if exp_digits > 0 {
            is_float = true;
            end = e + exp_digits;
        }
    }
    let suffix = suffix(&body[end..])?;
    let numeric = &text[..end + usize::from(neg)];
    if is_float {
        // Rust's float parser rejects "1.e5"; libucl (strtod) accepts it.
        let value: f64 = if numeric.contains(".e") || numeric.contains(".E") {
            numeric.replacen('.', "", 1).parse().ok()?
        } else {
            numeric.parse().ok()?
        };
        if !value.is_finite() {
            return Some(Err(NumberError::OutOfRange));
        }
        return Some(scale_float(value, suffix));
    }
    let Ok(value) = numeric.parse::<i64>() else {
        return Some(Err(NumberError::OutOfRange));
    };
    Some(scale_int(value, suffix))
}

fn scale_int(v: i64, suffix: Suffix) -> Result<Kind<'static>, NumberError> {
    match suffix {
        Suffix::None => Ok(Kind::Int(v)),
        Suffix::Decimal(m) | Suffix::Binary(m) => v
            .checked_mul(m)
            .map(Kind::Int)
            .ok_or(NumberError::OutOfRange),
        Suffix::Time(unit) => Ok(Kind::Time(v as f64 * unit)),
    }
}

fn scale_float(v: f64, suffix: Suffix) -> Result<Kind<'static>, NumberError> {
    let scaled = match suffix {
        Suffix::None => return Ok(Kind::Float(v)),
        Suffix::Decimal(m) => Kind::Float(v * m as f64),
        Suffix::Binary(m) => {
            // As libucl: byte sizes are integers, the fraction is dropped.
            let bytes = (v * m as f64).trunc();
            if bytes.abs() >= i64::MAX as f64 {
                return Err(NumberError::OutOfRange);
            }
            Kind::Int(bytes as i64)
        }
        Suffix::Time(unit) => Kind::Time(v * unit),
    };
    match scaled {
        Kind::Float(f) | Kind::Time(f) if !f.is_finite() => Err(NumberError::OutOfRange),
        k => Ok(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<Kind<'static>> {
        parse_number(s).map(|r| r.expect("in range"))
    }

    #[test]
    fn integers_floats_and_hex() {
        assert_eq!(num("42"), Some(Kind::Int(42)));
        assert_eq!(num("-7"), Some(Kind::Int(-7)));
        assert_eq!(num("0x1F"), Some(Kind::Int(31)));
        assert_eq!(num("-0x10"), Some(Kind::Int(-16)));
        assert_eq!(num("1.5"), Some(Kind::Float(1.5)));
        assert_eq!(num("1e3"), Some(Kind::Float(1000.0)));
        assert_eq!(num("2.5E-1"), Some(Kind::Float(0.25)));
        assert_eq!(num("1.e2"), Some(Kind::Float(100.0)));
        assert_eq!(num("1."), Some(Kind::Float(1.0)));
        assert_eq!(num("-0"), Some(Kind::Int(0)));
        assert_eq!(num("007"), Some(Kind::Int(7)));
    }

    #[test]
    fn suffixes() {
        assert_eq!(num("10k"), Some(Kind::Int(10_000)));
        assert_eq!(num("2M"), Some(Kind::Int(2_000_000)));
        assert_eq!(num("1g"), Some(Kind::Int(1_000_000_000)));
        assert_eq!(num("1kb"), Some(Kind::Int(1024)));
        assert_eq!(num("2MB"), Some(Kind::Int(2 << 20)));
        assert_eq!(num("1.5kb"), Some(Kind::Int(1536)));
        assert_eq!(num("1.5k"), Some(Kind::Float(1500.0)));
        assert_eq!(num("10s"), Some(Kind::Time(10.0)));
        assert_eq!(num("250ms"), Some(Kind::Time(0.25)));
        assert_eq!(num("5min"), Some(Kind::Time(300.0)));
        assert_eq!(num("2h"), Some(Kind::Time(7200.0)));
        assert_eq!(num("1d"), Some(Kind::Time(86400.0)));
        assert_eq!(num("1w"), Some(Kind::Time(604800.0)));
        assert_eq!(num("1y"), Some(Kind::Time(31_536_000.0)));
    }

    #[test]
    fn not_numbers() {
        for s in [
            "", "-", "abc", "1.2.3", "10apples", "0x", "0xg", ".5", "+1", "1e", "1_000", "10 s",
        ] {
            assert_eq!(parse_number(s), None, "{s:?}");
        }
    }

    #[test]
    fn out_of_range() {
        for s in [
            "9223372036854775808",
            "0x8000000000000000",
            "9223372036854775807k",
            "1e999",
            "99999999999gb",
        ] {
            assert_eq!(parse_number(s), Some(Err(NumberError::OutOfRange)), "{s:?}");
        }
    }
}
