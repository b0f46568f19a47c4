//! Pure formatting and parsing helpers: bytes, durations, UTC dates, masked secrets.

/// Formats seconds as `1 h 02 min`, `3 min 05 s` or `42 s`.
pub fn format_duration_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// Masks a secret for display: keeps a short prefix such as `hf_` and the last four characters.
/// Short secrets show nothing of themselves.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_string();
    }
    let prefix_len = chars
        .iter()
        .take(5)
        .position(|c| *c == '_' || *c == '-')
        .map(|i| i + 1)
        .unwrap_or(0);
    let prefix: String = chars[..prefix_len].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// Bytes in decimal units, as disk vendors, pods and model cards count them ("4.9 GB").
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Share of `part` in `whole`, 0–100, safe for a zero whole.
pub fn percent_of(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 100.0).clamp(0.0, 100.0) as f32
    }
}

/// A UTC timestamp as `2026-11-22 14:03:09 UTC`. The same text on server and browser, so a
/// server-rendered page hydrates without a mismatch whatever the viewer's time zone.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-11-23` → Unix milliseconds at 00:00 UTC that day (dates are shown in UTC
/// everywhere, so date filters use UTC too). `None` for anything else.
pub fn utc_day_start_ms(date: &str) -> Option<i64> {
    let mut parts = date.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, the
/// inverse of `civil_from_days`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_prefix_and_last_four() {
        assert_eq!(mask_secret("hf_AbCdEfGhIjKlMnOpabcd"), "hf_…abcd");
        assert_eq!(mask_secret("0123456789abcdef0123456789abwxyz"), "…wxyz");
        assert_eq!(mask_secret("short"), "…");
        // The masked form never contains the middle of the secret.
        let masked = mask_secret("hf_SECRETMIDDLEPARTzzzz");
        assert!(!masked.contains("SECRET"));
    }

    #[test]
    fn bytes_are_decimal() {
        assert_eq!(format_bytes(999), "999 B");
        assert_eq!(format_bytes(4_900_000_000), "4.9 GB");
        assert_eq!(format_bytes(246_000_000), "246 MB");
        assert_eq!(format_bytes(1_500), "1.5 kB");
    }

    #[test]
    fn utc_format_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        // 2026-11-22 14:03:09 UTC
        assert_eq!(format_utc(1_795_356_189_000), "2026-11-22 14:03:09 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn day_starts_round_trip_with_format_utc() {
        for ms in [0i64, 951_782_400_000, 1_763_856_000_000, 4_102_444_800_000] {
            let date = &format_utc(ms)[..10];
            assert_eq!(utc_day_start_ms(date), Some(ms), "{date}");
        }
        assert_eq!(utc_day_start_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(utc_day_start_ms("2024-13-01"), None);
        assert_eq!(utc_day_start_ms("yesterday"), None);
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in [-719_468, -1, 0, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                days_from_civil(y, i64::from(m), i64::from(d)),
                days,
                "{y}-{m}-{d}"
            );
        }
    }
}
