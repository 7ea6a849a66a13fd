//! journald.conf(5): effective `Storage=` and `SyncIntervalSec=`.
//!
//! Main file: the first of /etc, /run, /usr/local/lib, /usr/lib `systemd/journald.conf`.
//! Drop-ins: `journald.conf.d/*.conf` in the same four directories, a name in an
//! earlier directory masking the same name later, a link to /dev/null ignored,
//! all applied in file-name order after the main file; the last assignment wins,
//! an empty assignment resets to the default.

pub const MAIN: [&str; 4] = [
    "/etc/systemd/journald.conf",
    "/run/systemd/journald.conf",
    "/usr/local/lib/systemd/journald.conf",
    "/usr/lib/systemd/journald.conf",
];
pub const DROPIN_DIRS: [&str; 4] = [
    "/etc/systemd/journald.conf.d",
    "/run/systemd/journald.conf.d",
    "/usr/local/lib/systemd/journald.conf.d",
    "/usr/lib/systemd/journald.conf.d",
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `None` = default (`auto`).
    pub storage: Option<String>,
    /// Seconds; `None` = default (300).
    pub sync_interval_s: Option<u64>,
    /// Where each came from (file path), for `vigil doctor`.
    pub storage_from: Option<String>,
}

pub const DEFAULT_SYNC_S: u64 = 300;

/// Apply one file's `[Journal]` assignments on top of `s`.
pub fn apply(s: &mut Settings, text: &str, path: &str) {
    let mut in_journal = false;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') {
            in_journal = l == "[Journal]";
            continue;
        }
        if !in_journal {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Storage" => {
                let v = v.to_ascii_lowercase();
                s.storage = (!v.is_empty()).then_some(v);
                s.storage_from = Some(path.to_string());
            }
            "SyncIntervalSec" => {
                s.sync_interval_s = if v.is_empty() { None } else { timespan_s(v) }
            }
            _ => {}
        }
    }
}

/// systemd time span (`5m`, `30s`, `1min 30s`, `300` = seconds) in whole seconds.
pub fn timespan_s(v: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = v.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = rest[num_end..].trim_start();
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = rest[unit_end..].trim_start();
        let mul = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "ms" | "msec" => 0.001,
            "us" | "usec" | "µs" => 0.000_001,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        total += n * mul;
    }
    Some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs() {
        // ../shared/data/journald: commented defaults, a volatile drop-in without a final newline.
        let mut s = Settings::default();
        apply(
            &mut s,
            "[Journal]\n#Storage=auto\n#SyncIntervalSec=5m\n",
            "/etc/systemd/journald.conf",
        );
        assert_eq!(s, Settings::default());
        apply(
            &mut s,
            "[Journal]\nStorage=volatile\nSystemMaxUse=10M",
            "/etc/systemd/journald.conf.d/volatile.conf",
        );
        assert_eq!(s.storage.as_deref(), Some("volatile"));
        apply(
            &mut s,
            "[Journal]\nStorage=\nSyncIntervalSec=30s\n[Other]\nStorage=none\n",
            "x",
        );
        assert_eq!((s.storage, s.sync_interval_s), (None, Some(30)));
    }

    #[test]
    fn timespans() {
        assert_eq!(timespan_s("5m"), Some(300));
        assert_eq!(timespan_s("1min 30s"), Some(90));
        assert_eq!(timespan_s("300"), Some(300));
        assert_eq!(timespan_s("2h"), Some(7200));
        assert_eq!(timespan_s("soon"), None);
    }
}
