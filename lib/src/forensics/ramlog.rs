//! RAM logging: `/var/log` in RAM (tmpfs, zram), and the RAM loggers that put
//! it there (log2ram, folder2ram, Armbian ramlog), recognised by their mounts,
//! with the age of their on-disk copy (what a freeze would lose) and, for
//! log2ram, the sync interval its systemd timer is configured with (what that
//! age is judged against).

use std::path::Path;

use super::journald::{self, Assignment};
use super::mounts::{self, Mount};
use super::{masked, oncalendar, systemd_conf_files, Forensics};
use crate::read;
use crate::root::Root;

/// Files looked at, at most, to date the on-disk copy.
const SYNC_WALK_BUDGET: u32 = 20_000;

pub fn collect(root: &Root, mounts: &[Mount], now_unix_ns: i64, f: &mut Forensics) {
    if let Some(m) = mounts::holding(mounts, "/var/log") {
        f.var_log_in_ram = Some(m.in_ram());
        f.var_log_fs = Some(m.fstype.clone());
        f.var_log_source = Some(m.source.clone());
    }
    let (logger, copy) = match logger(mounts) {
        Some((l, c)) => (Some(l), Some(c)),
        None => (None, None),
    };
    f.ram_logger = logger.map(str::to_string);
    f.disk_copy = copy.map(str::to_string);
    if let Some(copy) = copy {
        let mut budget = SYNC_WALK_BUDGET;
        if let Some(t) = newest_mtime(&root.path(copy), &mut budget) {
            f.log_disk_sync_age_s = Some((now_unix_ns / 1_000_000_000 - t).max(0));
        }
    }
    if logger == Some("log2ram") {
        f.log_disk_sync_interval_s = timer_period_s(root, LOG2RAM_TIMER);
    }
}

/// log2ram's sync timer (azlux/log2ram `log2ram-daily.timer`: `OnCalendar=daily`,
/// `*-*-* 23:55:00` in older releases). folder2ram has no periodic sync of its
/// own (bobafetthotmail/folder2ram: shutdown and `-syncall`) and Armbian's ramlog
/// syncs from cron scripts: no timer to read, so no interval, never a guess.
const LOG2RAM_TIMER: &str = "log2ram-daily.timer";

/// The period of a system timer unit, as systemd would load it: the unit file
/// from the first unit directory holding it, then its `NAME.d/*.conf` drop-ins
/// in file-name order. `None` when masked, unreadable, or not one certain period.
fn timer_period_s(root: &Root, unit: &str) -> Option<u64> {
    let files = systemd_conf_files(root, &format!("system/{unit}"));
    let unit_file = files.first().filter(|p| !p.contains(".d/"))?;
    if journald::CONF_DIRS
        .iter()
        .map(|d| format!("{d}/system/{unit}"))
        .find(|p| read::exists(&root.path(p)) || masked(root, p))
        .is_some_and(|p| masked(root, &p) || &p != unit_file)
    {
        return None; // masked, or hidden by an entry that is not a file
    }
    let mut all = Vec::new();
    for path in &files {
        if masked(root, path) {
            continue;
        }
        all.extend(journald::assignments(
            &read::read_text(&root.path(path)).ok()?,
        ));
    }
    calendar_period_s(&all)
}

/// The single `OnCalendar=` left after resets (an empty value clears the list)
/// to its period; none when several remain or a monotonic trigger also runs it.
pub fn calendar_period_s(assignments: &[Assignment]) -> Option<u64> {
    let mut calendars: Vec<&str> = Vec::new();
    let mut monotonic = false;
    for a in assignments
        .iter()
        .filter(|a| a.section.as_deref() == Some("Timer"))
    {
        match a.key.as_str() {
            "OnCalendar" if a.value.is_empty() => calendars.clear(),
            "OnCalendar" => calendars.push(&a.value),
            "OnActiveSec" | "OnUnitActiveSec" | "OnUnitInactiveSec" => {
                monotonic = !a.value.is_empty()
            }
            _ => {}
        }
    }
    match calendars.as_slice() {
        [one] if !monotonic => oncalendar::period_s(one),
        _ => None,
    }
}

/// The RAM logger and the on-disk copy it syncs to, by the mounts it makes.
pub fn logger(mounts: &[Mount]) -> Option<(&'static str, &'static str)> {
    let var_log = mounts::at(mounts, "/var/log");
    if var_log.is_some_and(|m| m.source == "log2ram")
        || (var_log.is_some_and(Mount::in_ram) && mounts::at(mounts, "/var/hdd.log").is_some())
    {
        Some(("log2ram", "/var/hdd.log"))
    } else if var_log.is_some_and(|m| m.source == "folder2ram")
        || mounts::at(mounts, "/var/folder2ram/var/log").is_some()
    {
        Some(("folder2ram", "/var/folder2ram/var/log"))
    } else if var_log.is_some_and(Mount::in_ram) && mounts::at(mounts, "/var/log.hdd").is_some() {
        Some(("ramlog", "/var/log.hdd"))
    } else {
        None
    }
}

/// Newest modification time (Unix seconds) of any file under `dir`, bounded walk.
fn newest_mtime(dir: &Path, budget: &mut u32) -> Option<i64> {
    let mut newest: Option<i64> = None;
    for name in read::list_dir(dir).ok()? {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let p = dir.join(&name);
        let Ok(md) = read::meta(&p) else {
            continue;
        };
        let t = if md.dir {
            newest_mtime(&p, budget)
        } else {
            Some(md.mtime)
        };
        newest = newest.max(t);
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::calendar_period_s;
    use crate::forensics::journald::assignments;

    #[test]
    fn drop_ins_reset_and_replace_the_calendar() {
        let upstream = "[Unit]\nDescription=Daily Log2Ram writing activities\n\n[Timer]\nOnCalendar=*-*-* 23:55:00\nPersistent=true\n";
        assert_eq!(calendar_period_s(&assignments(upstream)), Some(86_400));
        let hourly = format!("{upstream}[Timer]\nOnCalendar=\nOnCalendar=hourly\n");
        assert_eq!(calendar_period_s(&assignments(&hourly)), Some(3600));
        // Without the reset both run: no single period.
        let both = format!("{upstream}[Timer]\nOnCalendar=hourly\n");
        assert_eq!(calendar_period_s(&assignments(&both)), None);
        let monotonic = format!("{upstream}[Timer]\nOnUnitActiveSec=1h\n");
        assert_eq!(calendar_period_s(&assignments(&monotonic)), None);
        assert_eq!(
            calendar_period_s(&assignments("[Timer]\nPersistent=true\n")),
            None
        );
        // OnCalendar outside [Timer] is not the timer's.
        assert_eq!(
            calendar_period_s(&assignments("[Unit]\nOnCalendar=daily\n")),
            None
        );
    }
}
