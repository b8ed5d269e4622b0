//! UTC dates for humans from Unix seconds (civil-from-days, no time zone database).

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_seconds(secs: u64) -> String {
    let rem = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        date(secs),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD HH:MM` (a table column headed "UTC").
pub fn utc_minutes(secs: u64) -> String {
    let rem = secs % 86_400;
    format!("{} {:02}:{:02}", date(secs), rem / 3600, rem % 3600 / 60)
}

/// `YYYY-MM-DD_HH-MM-SS`: how Jailrun names a snapshot taken at `secs`.
pub fn utc_stamp(secs: u64) -> String {
    let rem = secs % 86_400;
    format!(
        "{}_{:02}-{:02}-{:02}",
        date(secs),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD` of the day `secs` falls in.
fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_seconds(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(utc_minutes(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_seconds(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc_stamp(1_700_000_000), "2023-11-14_22-13-20");
        assert_eq!(utc_stamp(0), "1970-01-01_00-00-00");
    }
}
