//! The period of a systemd timer's `OnCalendar=`, for the forms whose period is
//! certain; `None` for every other one (a guess would make the RAM-log alert
//! fire on a node that is fine, or stay silent on one whose logs are stale).
//!
//! Followed from systemd.time(7) and src/basic/calendarspec.c (read, not
//! copied): an expression is `[weekdays] [date] [time] [timezone]`; the date
//! `*-*-*` may be left out; a time field is `*`, a number, or `start/step`
//! (repeat every `step` from `start`); seconds default to 0; shorthands
//! `minutely`, `hourly`, `daily`, `weekly` mean `*-*-* *:*:00`,
//! `*-*-* *:00:00`, `*-*-* 00:00:00` and `Mon *-*-* 00:00:00`. `monthly` and
//! longer have no fixed period (months differ in length) and are left out, as
//! are lists (`6,18:00`), ranges, explicit dates, several weekdays and time
//! zones (whose rules the collector cannot know).

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

const WEEKDAYS: [&str; 14] = [
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Seconds between two elapses of `OnCalendar=spec`, when that is certain.
pub fn period_s(spec: &str) -> Option<u64> {
    let spec = spec.trim();
    match spec.to_ascii_lowercase().as_str() {
        "minutely" => return Some(MINUTE),
        "hourly" => return Some(HOUR),
        "daily" => return Some(DAY),
        "weekly" => return Some(7 * DAY),
        _ => {}
    }
    let mut words: Vec<&str> = spec.split_whitespace().collect();
    let weekly = words
        .first()
        .is_some_and(|w| WEEKDAYS.contains(&w.to_ascii_lowercase().as_str()));
    if weekly {
        words.remove(0);
    }
    let time = match words.as_slice() {
        [date, time] if every_day(date) => *time,
        [time] if time.contains(':') => *time,
        [date] if every_day(date) => "00:00:00",
        _ => return None,
    };
    let period = time_period_s(time)?;
    match (weekly, period) {
        (false, p) => Some(p),
        (true, DAY) => Some(7 * DAY),
        (true, _) => None, // several runs on one weekday a week: no single period
    }
}

/// `*-*-*` (or `*-*`): every day of every month of every year.
fn every_day(date: &str) -> bool {
    date == "*-*-*" || date == "*-*"
}

/// `HH:MM[:SS]` to its period: one run a day, an hour, a minute, or every
/// `step` hours or minutes when the step divides the day or the hour evenly.
fn time_period_s(time: &str) -> Option<u64> {
    let parts: Vec<&str> = time.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    number(s, 60)?;
    match (field(h, 24)?, field(m, 60)?) {
        (Field::At, Field::At) => Some(DAY),
        (Field::Every(step), Field::At) => Some(step * HOUR),
        (Field::Every(1), Field::Every(step)) => Some(step * MINUTE),
        _ => None,
    }
}

enum Field {
    /// One value: runs at it once per enclosing unit.
    At,
    /// Every `n` units, evenly through the enclosing unit.
    Every(u64),
}

/// `*` (every unit), `N` (once), or `start/step` with step dividing `range`.
fn field(text: &str, range: u64) -> Option<Field> {
    if text == "*" {
        return Some(Field::Every(1));
    }
    if let Some((start, step)) = text.split_once('/') {
        let start = if start == "*" {
            0
        } else {
            number(start, range)?
        };
        let step = number(step, range + 1)?;
        // A start past the step, or a step that does not divide the range,
        // leaves an uneven gap across midnight or the full hour.
        return (step > 0 && start < step && range % step == 0).then_some(Field::Every(step));
    }
    number(text, range).map(|_| Field::At)
}

/// A decimal number below `limit` (systemd allows leading zeros).
fn number(text: &str, limit: u64) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 4 {
        return None;
    }
    text.parse().ok().filter(|n| *n < limit)
}

#[cfg(test)]
mod tests {
    use super::period_s;

    #[test]
    fn certain_periods() {
        for (spec, want) in [
            ("daily", 86_400),
            ("Daily", 86_400),
            ("hourly", 3600),
            ("weekly", 604_800),
            ("minutely", 60),
            ("*-*-* 23:55:00", 86_400), // log2ram's timer in its older releases
            ("*-*-* 23:55", 86_400),
            ("23:55", 86_400),
            ("*-*-* *:00:00", 3600),
            ("*:30", 3600),
            ("*-*-* 00/6:00:00", 6 * 3600),
            ("*-*-* 2/3:00", 3 * 3600),
            ("*-*-* *:0/15", 900),
            ("*:*:00", 60),
            ("Mon *-*-* 03:00:00", 604_800),
            ("sunday 04:00", 604_800),
            ("*-*-*", 86_400),
        ] {
            assert_eq!(period_s(spec), Some(want), "{spec}");
        }
    }

    #[test]
    fn uncertain_periods_are_omitted() {
        for spec in [
            "monthly",
            "yearly",
            "quarterly",
            "",
            "*-*-01 00:00:00",
            "2026-*-* 00:00",
            "Mon,Fri *-*-* 00:00",
            "Mon..Fri 00:00",
            "*-*-* 06,18:00:00",
            "*-*-* 00/5:00:00", // 5 does not divide 24: a 4-hour gap at midnight
            "*-*-* 5/3:00",     // starts past its step: a 6-hour gap across midnight
            "*-*-* 03:*:00",    // every minute of one hour
            "Mon *:00",
            "*-*-* 23:55:00 UTC",
            "*-*-* 23:55:00 Europe/Berlin",
            "*-*-* 25:00:00",
            "*-*-* 12:60",
            "*-*-* 1:2:3:4",
            "*-*-* 23:55:5.5",
            "-1",
            "nonsense",
        ] {
            assert_eq!(period_s(spec), None, "{spec}");
        }
    }
}
