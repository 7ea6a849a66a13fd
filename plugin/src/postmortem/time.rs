//! RFC 3339 UTC in and out, without a date library: the post-mortem only
//! needs whole seconds in UTC and the `--at` / `--since` arguments.

const NS: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

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

/// `2026-02-09T15:54:50Z` (whole seconds, truncated).
pub fn rfc3339(unix_ns: i64) -> String {
    let s = unix_ns.div_euclid(NS);
    let (y, mo, d) = civil_from_days(s.div_euclid(86_400));
    let r = s.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r % 3600 / 60,
        r % 60
    )
}

/// `15:54:50` of a time (UTC), for compact evidence lines.
pub fn clock(unix_ns: i64) -> String {
    rfc3339(unix_ns)[11..19].to_string()
}

/// `3h 17m 10s`, `42s`.
pub fn span(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m"),
    }
}

fn num(s: &str, lo: i64, hi: i64) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    (lo..=hi).contains(&v).then_some(v)
}

/// A time on the command line: RFC 3339 (`2026-02-09T16:00:00Z`, an offset
/// `+01:00`, fractions ignored), `2026-02-09 16:00` or `2026-02-09` (UTC), or
/// an age relative to `now_ns` (`90m`, `12h`, `7d`: that long ago).
pub fn parse(arg: &str, now_ns: i64) -> Result<i64, String> {
    let a = arg.trim();
    if let Some(ago) = parse_age(a) {
        return Ok(now_ns - ago * NS);
    }
    parse_absolute(a).ok_or_else(|| {
        format!("invalid time {arg:?}: use RFC 3339 (2026-02-09T16:00:00Z), a date (2026-02-09) or an age (12h, 7d)")
    })
}

fn parse_age(a: &str) -> Option<i64> {
    let unit = match a.as_bytes().last()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86_400,
        b'w' => 7 * 86_400,
        _ => return None,
    };
    Some(num(&a[..a.len() - 1], 0, 100_000_000)? * unit)
}

fn parse_absolute(a: &str) -> Option<i64> {
    let date = a.get(..10)?;
    let (y, mo, d) = (
        num(date.get(..4)?, 1970, 9999)?,
        num(date.get(5..7)?, 1, 12)?,
        num(date.get(8..10)?, 1, 31)?,
    );
    if &date[4..5] != "-" || &date[7..8] != "-" {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let rest = &a[10..];
    if rest.is_empty() {
        return Some(secs * NS);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hms, zone) = split_zone(rest)?;
    let hms = hms.split('.').next()?;
    let parts: Vec<&str> = hms.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (num(h, 0, 23)?, num(m, 0, 59)?, 0),
        [h, m, s] => (num(h, 0, 23)?, num(m, 0, 59)?, num(s, 0, 60)?),
        _ => return None,
    };
    secs += h * 3600 + m * 60 + s - zone;
    Some(secs * NS)
}

/// Splits `16:00:00+01:00` into the clock and the offset in seconds east.
fn split_zone(t: &str) -> Option<(&str, i64)> {
    if let Some(c) = t.strip_suffix(['Z', 'z']) {
        return Some((c, 0));
    }
    match t.rfind(['+', '-']) {
        Some(i) => {
            let z = &t[i + 1..];
            let (h, m) = z.split_once(':').unwrap_or((z.get(..2)?, z.get(2..)?));
            let off = num(h, 0, 23)? * 3600 + num(m, 0, 59)? * 60;
            Some((&t[..i], if &t[i..=i] == "-" { -off } else { off }))
        }
        None => Some((t, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_770_652_490 * NS; // 2026-02-09T15:54:50Z

    #[test]
    fn formats_and_parses_the_incident_time() {
        assert_eq!(rfc3339(T), "2026-02-09T15:54:50Z");
        assert_eq!(parse("2026-02-09T15:54:50Z", 0), Ok(T));
        assert_eq!(parse("2026-02-09T16:54:50.123+01:00", 0), Ok(T));
        assert_eq!(parse("2026-02-09 15:54:50", 0), Ok(T));
        assert_eq!(parse("2026-02-09 15:54", 0), Ok(T - 50 * NS));
        assert_eq!(
            parse("2026-02-09", 0),
            Ok(T - (15 * 3600 + 54 * 60 + 50) * NS)
        );
        assert_eq!(clock(T), "15:54:50");
    }

    #[test]
    fn ages_and_garbage() {
        assert_eq!(parse("2h", T), Ok(T - 7200 * NS));
        assert_eq!(parse("7d", T), Ok(T - 7 * 86_400 * NS));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-09X",
            "2026-02-09T25:00",
            "h",
            "-3h",
        ] {
            assert!(parse(bad, T).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1, 0, 59, 365, 11_016, 20_493, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(span(11_830), "3h 17m 10s");
        assert_eq!(span(42), "42s");
        assert_eq!(span(90_061), "1d 01h 01m");
    }
}
