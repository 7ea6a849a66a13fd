//! RAM logging: `/var/log` in RAM (tmpfs, zram), and the RAM loggers that put
//! it there (log2ram, folder2ram, Armbian ramlog), recognised by their mounts,
//! with the age of their on-disk copy: what a freeze would lose.

use std::path::Path;

use super::mounts::{self, Mount};
use super::Forensics;
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
