//! journald.conf(5) read the way journald reads it: effective `Storage=` and
//! `SyncIntervalSec=`.
//!
//! Followed from systemd's sources (read, not copied):
//! - which files: the main file is the first of /etc, /run, /usr/local/lib,
//!   /usr/lib `systemd/journald.conf`; drop-ins are `journald.conf.d/*.conf` in
//!   the same directories, one list sorted by file name across all of them, a
//!   name in an earlier directory hiding the same name later (conf_files_list in
//!   src/basic/conf-files.c, config_parse_many in src/shared/conf-parser.c). A
//!   link to /dev/null or an empty file therefore masks its namesake and sets
//!   nothing. Main file first, then the drop-ins; the last valid assignment wins.
//! - each line (parse_line / config_parse in src/shared/conf-parser.c): stripped
//!   of whitespace; `#` or `;` first is a comment; a trailing backslash joins the
//!   next line (comment lines inside are skipped); `[Section]` headers, names
//!   case-sensitive; a line without `=` is ignored with a warning; key and value
//!   are stripped.
//! - `Storage=` is parsed by `DEFINE_CONFIG_PARSE_ENUM(config_parse_storage,
//!   storage, Storage)` (src/shared/conf-parser.h, journald's config): the value
//!   must be exactly one of the string table's entries (`auto`, `volatile`,
//!   `persistent`, `none`, case-sensitive); anything else, the empty value
//!   included, is logged and ignored, leaving the earlier setting in force.
//! - `SyncIntervalSec=` is `config_parse_sec` (parse_sec in src/basic/time-util.c):
//!   an unparsable or empty value is likewise ignored.

use super::mounts::{self, Mount};
use super::{masked, os_error, remote, systemd_conf_files, Forensics, C};
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

/// Where systemd looks for `NAME` and `NAME.d/*.conf`, highest precedence first
/// (CONF_PATHS in src/basic/path-lookup.h; Debian 12+ has merged /usr, so no /lib).
pub const CONF_DIRS: [&str; 4] = [
    "/etc/systemd",
    "/run/systemd",
    "/usr/local/lib/systemd",
    "/usr/lib/systemd",
];

/// journald's `Storage=` string table.
pub const STORAGE_VALUES: [&str; 4] = ["auto", "volatile", "persistent", "none"];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `None` = default (`auto`).
    pub storage: Option<String>,
    /// Seconds; `None` = default (300).
    pub sync_interval_s: Option<u64>,
    /// Where each came from (file path), for `vigil doctor`.
    pub storage_from: Option<String>,
    /// Assignments journald ignores (`path: Storage=Persistent`), as its log would say.
    pub ignored: Vec<String>,
}

pub const DEFAULT_SYNC_S: u64 = 300;

/// One `Key=value` line of a systemd-style file, with its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: Option<String>,
    pub key: String,
    pub value: String,
}

/// Every assignment in `text`, in order, as systemd's config parser sees them.
pub fn assignments(text: &str) -> Vec<Assignment> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut pending: Option<String> = None;
    for raw in text.lines() {
        let line = match pending.take() {
            // A comment inside a continued line is skipped, not joined.
            Some(p) if is_comment(raw.trim()) => {
                pending = Some(p);
                continue;
            }
            Some(p) => p + raw,
            None => raw.to_string(),
        };
        if ends_escaped(&line) {
            let mut l = line;
            l.pop();
            l.push(' ');
            pending = Some(l);
            continue;
        }
        let l = line.trim();
        if l.is_empty() || is_comment(l) {
            continue;
        }
        if let Some(inner) = l.strip_prefix('[') {
            match inner.strip_suffix(']') {
                Some(name) => section = Some(name.to_string()),
                // journald gives up on the rest of the file.
                None => break,
            }
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if !k.trim().is_empty() {
                out.push(Assignment {
                    section: section.clone(),
                    key: k.trim().to_string(),
                    value: v.trim().to_string(),
                });
            }
        }
    }
    out
}

fn is_comment(l: &str) -> bool {
    l.starts_with('#') || l.starts_with(';')
}

/// A final backslash that is not itself escaped continues the line.
fn ends_escaped(l: &str) -> bool {
    let n = l.bytes().rev().take_while(|b| *b == b'\\').count();
    n % 2 == 1
}

/// Apply one file's `[Journal]` assignments on top of `s`.
pub fn apply(s: &mut Settings, text: &str, path: &str) {
    for a in assignments(text) {
        if a.section.as_deref() != Some("Journal") {
            continue;
        }
        match a.key.as_str() {
            "Storage" if STORAGE_VALUES.contains(&a.value.as_str()) => {
                s.storage = Some(a.value);
                s.storage_from = Some(path.to_string());
            }
            "SyncIntervalSec" => match timespan_s(&a.value) {
                Some(v) => s.sync_interval_s = Some(v),
                None => s
                    .ignored
                    .push(format!("{path}: SyncIntervalSec={}", a.value)),
            },
            "Storage" => s.ignored.push(format!("{path}: Storage={}", a.value)),
            _ => {}
        }
    }
}

/// systemd time span (`5m`, `30s`, `1min 30s`, `300` = seconds) in whole
/// seconds; units as parse_time in src/basic/time-util.c, case-sensitive.
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
        total += n * unit_seconds(unit)?;
    }
    Some(total.round() as u64)
}

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "s" | "sec" | "second" | "seconds" => 1.0,
        "ms" | "msec" => 0.001,
        "us" | "usec" | "µs" | "μs" => 0.000_001,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 604_800.0,
        "M" | "month" | "months" => 2_629_800.0,
        "y" | "year" | "years" => 31_557_600.0,
        _ => return None,
    })
}

/// The settings journald runs with, and whether `/var/log/journal` exists
/// (what `Storage=auto` decides by).
pub fn collect(root: &Root, f: &mut Forensics, tally: &mut Tally) {
    let (js, unreadable) = running_settings(root, tally);
    f.journal_storage = js.storage.unwrap_or_else(|| "auto".into());
    f.journal_storage_from = js.storage_from;
    f.journal_sync_interval_s = js.sync_interval_s.unwrap_or(DEFAULT_SYNC_S);
    f.journal_config_ignored = js.ignored;
    f.journal_config_unreadable = unreadable;
    f.journal_dir_exists = read::is_dir(&root.path("/var/log/journal"));
}

/// The settings journald is running with, from its files in its precedence,
/// and the files that could not be read (then the settings are unknown).
fn running_settings(root: &Root, tally: &mut Tally) -> (Settings, Vec<String>) {
    let mut js = Settings::default();
    let mut unreadable = Vec::new();
    for path in systemd_conf_files(root, "journald.conf") {
        if masked(root, &path) {
            continue;
        }
        match remote::read_config(root, &path) {
            Ok(t) => apply(&mut js, &t, &path),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => {
                tally.read_failed(C, &e);
                unreadable.push(os_error(root, &e));
            }
        }
    }
    (js, unreadable)
}

/// Whether the journal survives a reset: written under /var (by its settings)
/// to a filesystem that is not in RAM (by the mounts).
pub fn judge_persistence(mounts: &[Mount], f: &mut Forensics) {
    let journal_mount = mounts::holding(mounts, "/var/log/journal");
    if let Some(m) = journal_mount {
        f.journal_fs = Some(m.fstype.clone());
        f.journal_source = Some(m.source.clone());
    }
    let journal_in_ram = journal_mount.is_some_and(Mount::in_ram);
    let writes_to_var = match f.journal_storage.as_str() {
        "persistent" => true,
        "auto" => f.journal_dir_exists,
        _ => false,
    };
    // An unreadable journald.conf could say anything: unknown, not a verdict.
    f.journal_persistent = f
        .journal_config_unreadable
        .is_empty()
        .then_some(writes_to_var && !journal_in_ram);
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
            "[Journal]\nSyncIntervalSec=30s\n[Other]\nStorage=none\n",
            "x",
        );
        assert_eq!(
            (s.storage.as_deref(), s.sync_interval_s),
            (Some("volatile"), Some(30))
        );
    }

    /// DEFINE_CONFIG_PARSE_ENUM: exact table entries only; anything else, empty
    /// included, is ignored and the earlier value stays.
    #[test]
    fn storage_is_case_sensitive_and_empty_is_ignored() {
        let mut s = Settings::default();
        apply(&mut s, "[Journal]\nStorage=Persistent\n", "/etc/a.conf");
        assert_eq!(s.storage, None, "journald ignores Persistent");
        apply(&mut s, "[Journal]\nStorage=volatile\n", "/etc/b.conf");
        apply(&mut s, "[Journal]\nStorage=\n", "/etc/c.conf");
        apply(
            &mut s,
            "[Journal]\nStorage = persistent # comment\n",
            "/etc/d.conf",
        );
        apply(&mut s, "[journal]\nStorage=persistent\n", "/etc/e.conf");
        apply(&mut s, "Storage=persistent\n", "/etc/f.conf");
        assert_eq!(
            (s.storage.as_deref(), s.storage_from.as_deref()),
            (Some("volatile"), Some("/etc/b.conf"))
        );
        assert_eq!(
            s.ignored,
            [
                "/etc/a.conf: Storage=Persistent",
                "/etc/c.conf: Storage=",
                "/etc/d.conf: Storage=persistent # comment",
            ]
        );
        apply(
            &mut s,
            "[Journal]\nSyncIntervalSec=\nSyncIntervalSec=5S\n",
            "/etc/g.conf",
        );
        assert_eq!(s.sync_interval_s, None, "empty and 5S are ignored");
    }

    #[test]
    fn lines_as_systemd_splits_them() {
        let a = assignments(
            "\u{feff}[Journal]\n  Storage=\\\n# note\n  persistent\nno equals sign\n=x\n;Storage=none\n",
        );
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].key.as_str(), a[0].value.as_str()),
            ("Storage", "persistent")
        );
        // A broken section header ends the file.
        assert!(assignments("[Journal\nStorage=none\n").is_empty());
    }

    #[test]
    fn timespans() {
        assert_eq!(timespan_s("5m"), Some(300));
        assert_eq!(timespan_s("1min 30s"), Some(90));
        assert_eq!(timespan_s("300"), Some(300));
        assert_eq!(timespan_s("2h"), Some(7200));
        assert_eq!(timespan_s("1M"), Some(2_629_800));
        assert_eq!(timespan_s("soon"), None);
        assert_eq!(timespan_s(""), None);
    }
}
