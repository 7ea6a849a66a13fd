//! Crash-forensics readiness: if this node froze right now, would it leave
//! evidence? (kernel-abi.md §7-§9). Journal persistence as it really is (which
//! filesystem holds it), RAM logging and its unsynced age, off-node logging,
//! pstore, kdump, lockup detectors, panic settings and watchdogs.
//!
//! One file per signal, each a small `collect` that fills its own fields of
//! [`Forensics`] beside the pure parsers it needs: `journald` (settings and
//! persistence), `ramlog` (RAM loggers, /var/log in RAM), `remote` (ways off
//! the node), `pstore`, `kdump`, `sysctls` (lockup and panic settings),
//! `watchdog`; `mounts` parses mountinfo for the first two. `findings` turns
//! the result into readiness findings; `setup` is what `vigil doctor` reads.

pub mod findings;
pub mod journald;
pub mod kdump;
pub mod mounts;
pub mod oncalendar;
pub mod pstore;
pub mod ramlog;
pub mod remote;
pub mod setup;
pub mod sysctls;
pub mod watchdog;

use serde::Serialize;
use std::path::Path;

use crate::collector::Collector;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Forensics {
    /// Effective `Storage=` (`auto` when nothing sets it).
    pub journal_storage: String,
    /// The file that set it, if any.
    pub journal_storage_from: Option<String>,
    /// Assignments journald ignores (`PATH: Storage=Persistent`).
    pub journal_config_ignored: Vec<String>,
    /// journald configuration files that could not be read: settings unknown.
    pub journal_config_unreadable: Vec<String>,
    pub journal_dir_exists: bool,
    pub journal_persistent: Option<bool>,
    pub journal_fs: Option<String>,
    pub journal_source: Option<String>,
    pub var_log_in_ram: Option<bool>,
    pub var_log_fs: Option<String>,
    pub var_log_source: Option<String>,
    /// log2ram, folder2ram or Armbian ramlog.
    pub ram_logger: Option<String>,
    /// The on-disk copy the RAM logger syncs to.
    pub disk_copy: Option<String>,
    pub log_disk_sync_age_s: Option<i64>,
    /// The period of the RAM logger's sync timer, when it is certain.
    pub log_disk_sync_interval_s: Option<u64>,
    pub journal_sync_interval_s: u64,
    /// What sends logs off the node: `journal-upload`, `rsyslog`, `syslog-ng`, `netconsole`.
    pub remote_logging: Vec<String>,
    /// Ways off the node that could not be checked (`rsyslog: PATH: permission denied`).
    pub remote_logging_unknown: Vec<String>,
    /// `None`: a netconsole source could not be read and none showed it enabled.
    pub netconsole: Option<bool>,
    pub pstore_backend: Option<String>,
    pub pstore_records: Option<u64>,
    pub kdump_loaded: Option<bool>,
    pub crashkernel_bytes: Option<u64>,
    pub nmi_watchdog: Option<bool>,
    pub soft_watchdog: Option<bool>,
    pub hardlockup_panic: Option<bool>,
    pub softlockup_panic: Option<bool>,
    pub hung_task_panic: Option<bool>,
    pub panic_on_oops: Option<bool>,
    pub panic_reboot_s: Option<i64>,
    pub hw_watchdog: Option<bool>,
    pub hw_watchdog_timeout_s: Option<u64>,
    pub hw_watchdog_identity: Option<String>,
}

const C: Collector = Collector::CrashForensics;

fn read_or_tally(root: &Root, p: &str, tally: &mut Tally) -> Option<String> {
    match read::read_text(&root.path(p)) {
        Ok(t) => Some(t),
        Err(e) => {
            tally.read_failed(C, &e);
            None
        }
    }
}

/// systemd's configuration files for `name` (`journald.conf`): the first main
/// file found, then the drop-ins of all directories sorted by file name, a name
/// in a higher-precedence directory hiding the same name below it
/// (conf_files_list in systemd's src/basic/conf-files.c). Masks (links to
/// /dev/null, empty files) are kept: they hide their namesakes and set nothing.
fn systemd_conf_files(root: &Root, name: &str) -> Vec<String> {
    let mut out: Vec<String> = journald::CONF_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| read::is_file(&root.path(p)))
        .into_iter()
        .collect();
    let mut dropins = std::collections::BTreeMap::new();
    for dir in journald::CONF_DIRS {
        let dir = format!("{dir}/{name}.d");
        for n in read::list_dir(&root.path(&dir)).unwrap_or_default() {
            if n.ends_with(".conf") {
                dropins
                    .entry(n.clone())
                    .or_insert_with(|| format!("{dir}/{n}"));
            }
        }
    }
    out.extend(dropins.into_values());
    out
}

/// A read error as a person on the node would see it: the path without `--root`.
fn os_error(root: &Root, e: &read::ReadError) -> String {
    let rel = e.path.strip_prefix(root.base()).unwrap_or(&e.path);
    read::ReadError {
        path: Path::new("/").join(rel),
        kind: e.kind.clone(),
    }
    .to_string()
}

/// A link to /dev/null: journald reads it as empty.
fn masked(root: &Root, path: &str) -> bool {
    read::read_link(&root.path(path)).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// Each signal fills its own fields (one file per signal; see the module list).
/// `now_unix_ns` is the collection's own time (the snapshot's timestamp), so
/// an age is measured against the time the line carries, not a second clock.
pub fn collect(
    root: &Root,
    cmdline_text: Option<&str>,
    now_unix_ns: i64,
    tally: &mut Tally,
) -> Forensics {
    let mut f = Forensics::default();
    journald::collect(root, &mut f, tally);
    // Which filesystems really hold /var/log and the journal.
    let mounts = mounts::read(root, tally);
    if !mounts.is_empty() {
        journald::judge_persistence(&mounts, &mut f);
        ramlog::collect(root, &mounts, now_unix_ns, &mut f);
    }
    remote::collect(root, cmdline_text, &mut f, tally);
    pstore::collect(root, &mut f, tally);
    kdump::collect(root, &mut f, tally);
    sysctls::collect(root, &mut f, tally);
    watchdog::collect(root, &mut f, tally);
    f
}
