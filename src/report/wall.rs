//! Wall-clock RFC 3339 timestamps (UTC, milliseconds) for `--timestamps`:
//! the inverse of `cli::instant`'s civil-date arithmetic, no crate needed.

/// `2026-03-01T10:00:00.123Z` for `secs` since the epoch.
pub fn rfc3339_utc(secs: f64) -> String {
    let ms_total = (secs * 1000.0).round() as i64;
    let (days, ms_of_day) = (
        ms_total.div_euclid(86_400_000),
        ms_total.rem_euclid(86_400_000),
    );
    let (y, m, d) = civil_from_days(days);
    let s = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms_of_day % 1000
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (y, m, d).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Now, as [`rfc3339_utc`] writes it.
pub fn now() -> String {
    rfc3339_utc(crate::clock::Clock::new().wall_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_600_000_000.5), "2020-09-13T12:26:40.500Z");
        // A leap day, and the round trip through the parser of --stale-since.
        assert_eq!(rfc3339_utc(1_709_164_800.0), "2024-02-29T00:00:00.000Z");
        let back = crate::cli::instant::parse("--stale-since", "2024-02-29T00:00:00Z").unwrap();
        assert_eq!(back, 1_709_164_800.0);
    }
}
