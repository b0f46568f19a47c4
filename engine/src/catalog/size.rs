//! Hand-written download sizes ("4.9GB", "246MB", "~23GB", "9.31GB (9536MB)") to bytes.

/// Parses a size string into bytes.
///
/// Decimal units (`KB`, `MB`, `GB`, `TB`: powers of 1000) as the preset data uses them, binary
/// units (`KiB`, `MiB`, `GiB`, `TiB`) as powers of 1024, a bare number or `B` as bytes. A leading
/// `~` ("about") and a trailing parenthesised remark are ignored. The arithmetic is exact
/// decimal, so "4.9GB" is 4 900 000 000 bytes, not a float rounding of it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let original = text;
    let mut s = text.trim();
    if let Some(open) = s.find('(') {
        s = s[..open].trim_end();
    }
    s = s.trim_start_matches(['~', '≈']).trim_start();
    if s.is_empty() {
        return Err(format!(
            "`{original}` is not a size (expected e.g. 4.9GB, 246MB, 1.5 GiB)"
        ));
    }
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_end);
    let unit = unit.trim();
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{original}` has an unknown unit `{unit}` (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let digits_ok = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
        || frac_part.len() > 18
        || int_part.len() > 18
    {
        return Err(format!(
            "`{original}` is not a size (expected e.g. 4.9GB, 246MB, 1.5 GiB)"
        ));
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part
            .parse()
            .map_err(|_| format!("`{original}` is too large"))?
    };
    let frac: u128 = if frac_part.is_empty() {
        0
    } else {
        frac_part
            .parse()
            .map_err(|_| format!("`{original}` is not a size"))?
    };
    let scale = 10u128.pow(frac_part.len() as u32);
    // (int + frac/scale) * multiplier, rounded to the nearest byte.
    let bytes = int * multiplier + (frac * multiplier + scale / 2) / scale;
    u64::try_from(bytes).map_err(|_| format!("`{original}` is too large"))
}

/// Gigabytes (decimal, as `disk_gb` in the registry means them) to bytes; negative or
/// non-finite values give `None`.
pub(crate) fn gb_to_bytes(gb: f64) -> Option<u64> {
    if gb.is_finite() && gb >= 0.0 {
        Some((gb * 1e9).round() as u64)
    } else {
        None
    }
}
