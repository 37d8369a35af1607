//! `--stale-since TIME|FILE`: an instant given as an RFC 3339 time, as
//! seconds since the epoch, or as a file's mtime (the release directory,
//! say). Parsed without a date crate: RFC 3339 is a fixed layout, and the
//! civil-date arithmetic is a dozen lines.

use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::Error;

/// The instant, in (fractional) seconds since the epoch.
pub fn parse(flag: &str, v: &str) -> Result<f64, Error> {
    let expected = || {
        format!("{flag} expects an RFC 3339 time (2026-12-01T10:00:00Z), seconds since the epoch, or an existing file whose mtime is the instant")
    };
    let t = v.trim();
    if t.is_empty() {
        return Err(Error::Usage(format!("{}, got an empty value", expected())));
    }
    let digits = t.strip_prefix('@').unwrap_or(t);
    if digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.starts_with(|c: char| c.is_ascii_digit())
    {
        return match digits.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(Error::Usage(format!("{}, got {v:?}", expected()))),
        };
    }
    if let Some(x) = rfc3339(t) {
        return Ok(x);
    }
    if looks_like_a_date(t) {
        return Err(Error::Usage(format!(
            "{}, got {v:?} (a date needs the full form YYYY-MM-DDTHH:MM:SS with Z or an offset such as +02:00)",
            expected()
        )));
    }
    let meta = std::fs::metadata(Path::new(v))
        .map_err(|e| Error::Usage(format!("{}, got {v:?} ({e})", expected())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}, got {v:?} (its mtime cannot be read)",
                expected()
            ))
        })?;
    Ok(mtime.as_secs_f64())
}

fn looks_like_a_date(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM)`.
fn rfc3339(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = t.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        frac = format!("0.{}", &f[..n]).parse().ok()?;
        rest = &f[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (
                rest[1..3].parse::<i64>().ok()?,
                rest[4..6].parse::<i64>().ok()?,
            );
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in[(month - 1) as usize]
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset;
    Some(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
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
    fn rfc3339_forms() {
        assert_eq!(parse("--x", "1970-01-01T00:00:00Z").unwrap(), 0.0);
        assert_eq!(
            parse("--x", "2026-12-01T10:00:00Z").unwrap(),
            1_796_119_200.0
        );
        assert_eq!(
            parse("--x", "2026-12-01T12:00:00+02:00").unwrap(),
            1_796_119_200.0
        );
        assert_eq!(
            parse("--x", "2026-12-01 09:30:00-00:30").unwrap(),
            1_796_119_200.0
        );
        assert_eq!(
            parse("--x", "2000-02-29t00:00:00.25z").unwrap(),
            951_782_400.25
        );
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(parse("--x", "1796119200").unwrap(), 1_796_119_200.0);
        assert_eq!(parse("--x", "@1796119200.5").unwrap(), 1_796_119_200.5);
    }

    #[test]
    fn a_file_gives_its_mtime() {
        let p = std::env::temp_dir().join(format!("instant-test-{}", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        let got = parse("--x", p.to_str().unwrap()).unwrap();
        let want = std::fs::metadata(&p).unwrap().modified().unwrap();
        let want = want.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-02-30T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00+2:00",
            "/no/such/release/dir",
            "yesterday",
        ] {
            let e = parse("--stale-since", bad).unwrap_err().to_string();
            assert!(
                e.contains("--stale-since expects an RFC 3339 time"),
                "{bad:?}: {e}"
            );
        }
    }
}
