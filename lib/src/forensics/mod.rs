//! Crash-forensics readiness: if this node froze right now, would it leave
//! evidence? (kernel-abi.md §7-§9). Journal persistence as it really is (which
//! filesystem holds it), RAM logging and its unsynced age, off-node logging,
//! pstore, kdump, lockup detectors, panic settings and watchdogs.

pub mod findings;
pub mod journald;
pub mod mounts;
pub mod remote;
pub mod setup;

use serde::Serialize;
use std::path::Path;

use crate::platform::cmdline;
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::{Clock, Collector, Tally};

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

fn text(root: &Root, p: &str, tally: &mut Tally) -> Option<String> {
    match read::read_text(&root.path(p)) {
        Ok(t) => Some(t),
        Err(e) => {
            tally.read_failed(C, &e);
            None
        }
    }
}

fn sysctl_flag(root: &Root, name: &str, tally: &mut Tally) -> Option<bool> {
    sysctl_int(root, name, tally).map(|v| v > 0)
}

fn sysctl_int(root: &Root, name: &str, tally: &mut Tally) -> Option<i64> {
    let p = format!("/proc/sys/kernel/{name}");
    let t = text(root, &p, tally)?;
    match t.trim().parse::<i64>() {
        Ok(v) => Some(v),
        Err(_) => {
            tally.error(C, format!("{p}: {:?} is not a number", t.trim()));
            None
        }
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

/// Records are files; systemd-pstore archives them in per-boot directories.
fn count_files(dir: &Path, depth: u32) -> u64 {
    if depth > 3 {
        return 0;
    }
    read::list_dir(dir)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let p = dir.join(n);
            match read::meta(&p) {
                Ok(m) if m.dir => count_files(&p, depth + 1),
                Ok(_) => 1,
                Err(_) => 0,
            }
        })
        .sum()
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

/// The settings journald is running with, from its files in its precedence,
/// and the files that could not be read (then the settings are unknown).
fn journald_settings(root: &Root, tally: &mut Tally) -> (journald::Settings, Vec<String>) {
    let mut js = journald::Settings::default();
    let mut unreadable = Vec::new();
    for path in systemd_conf_files(root, "journald.conf") {
        if masked(root, &path) {
            continue;
        }
        match remote::read_config(root, &path) {
            Ok(t) => journald::apply(&mut js, &t, &path),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => {
                tally.read_failed(C, &e);
                unreadable.push(os_error(root, &e));
            }
        }
    }
    (js, unreadable)
}

/// journal-upload: enabled, with a `URL=` in its configuration.
fn journal_upload(root: &Root) -> remote::Verdict {
    let mut v = remote::Verdict::default();
    let enabled = read::exists(
        &root.path("/etc/systemd/system/multi-user.target.wants/systemd-journal-upload.service"),
    );
    if !enabled {
        return v;
    }
    let mut url = None;
    for path in systemd_conf_files(root, "journal-upload.conf") {
        if masked(root, &path) {
            continue;
        }
        match remote::read_config(root, &path) {
            Ok(t) => remote::journal_upload_url(&mut url, &t),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => v.unreadable.push(e),
        }
    }
    // An unreadable file could set or clear the URL: only a clean read is an answer.
    v.forwards = url.is_some() && v.unreadable.is_empty();
    v
}

/// netconsole: registered as a console, enabled in configfs, or on the command line.
fn netconsole(root: &Root, params: &[(String, Option<String>)]) -> remote::Verdict {
    let mut v = remote::Verdict::default();
    match read::read_text(&root.path("/proc/consoles")) {
        Ok(t) => v.forwards |= remote::netconsole_console(&t),
        Err(e) if e.kind == ErrorKind::Absent => {}
        Err(e) => v.unreadable.push(e),
    }
    let dir = "/sys/kernel/config/netconsole";
    match read::list_dir(&root.path(dir)) {
        Ok(targets) => {
            for t in targets {
                match read::read_attr(&root.path(&format!("{dir}/{t}/enabled"))) {
                    Ok(e) => v.forwards |= e.trim() == "1",
                    Err(e) if e.kind == ErrorKind::Absent => {}
                    Err(e) => v.unreadable.push(e),
                }
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => {}
        Err(e) => v.unreadable.push(e),
    }
    v.forwards |= cmdline::has_key(params, "netconsole");
    v
}

/// A daemon's program is there: a configuration left behind by `apt remove`
/// forwards nothing.
fn installed(root: &Root, program: &str) -> bool {
    read::is_file(&root.path(program))
}

/// Which ways off the node are in use; a way whose configuration could not be
/// read is unknown, reported in `unavailable` and never counted as "none".
fn off_node(root: &Root, cmdline_text: Option<&str>, f: &mut Forensics, tally: &mut Tally) {
    let params = cmdline_text.map(cmdline::parse).unwrap_or_default();
    let ways = [
        ("journal-upload", Some(journal_upload(root))),
        (
            "rsyslog",
            installed(root, "/usr/sbin/rsyslogd").then(|| {
                remote::follow(
                    root,
                    "/etc/rsyslog.conf",
                    remote::rsyslog_file,
                    remote::rsyslog_resolve,
                    remote::rsyslog_skip,
                )
            }),
        ),
        (
            "syslog-ng",
            installed(root, "/usr/sbin/syslog-ng").then(|| {
                remote::follow(
                    root,
                    "/etc/syslog-ng/syslog-ng.conf",
                    remote::syslog_ng_file,
                    remote::syslog_ng_resolve,
                    remote::syslog_ng_skip,
                )
            }),
        ),
        ("netconsole", Some(netconsole(root, &params))),
    ];
    for (name, v) in ways {
        let v = v.unwrap_or_default();
        match v.known() {
            Some(true) => f.remote_logging.push(name.into()),
            Some(false) => {}
            None => {
                for e in &v.unreadable {
                    tally.read_failed(C, e);
                    f.remote_logging_unknown
                        .push(format!("{name}: {}", os_error(root, e)));
                }
            }
        }
        if name == "netconsole" {
            f.netconsole = v.known();
        }
    }
}

pub fn collect(
    root: &Root,
    cmdline_text: Option<&str>,
    clock: Clock,
    tally: &mut Tally,
) -> Forensics {
    let mut f = Forensics::default();

    let (js, unreadable) = journald_settings(root, tally);
    f.journal_storage = js.storage.unwrap_or_else(|| "auto".into());
    f.journal_storage_from = js.storage_from;
    f.journal_sync_interval_s = js.sync_interval_s.unwrap_or(journald::DEFAULT_SYNC_S);
    f.journal_config_ignored = js.ignored;
    f.journal_config_unreadable = unreadable;
    f.journal_dir_exists = read::is_dir(&root.path("/var/log/journal"));

    // Which filesystems really hold /var/log and the journal.
    let mounts = text(root, "/proc/self/mountinfo", tally)
        .map(|t| mounts::parse(&t))
        .unwrap_or_default();
    if !mounts.is_empty() {
        if let Some(m) = mounts::holding(&mounts, "/var/log/journal") {
            f.journal_fs = Some(m.fstype.clone());
            f.journal_source = Some(m.source.clone());
        }
        if let Some(m) = mounts::holding(&mounts, "/var/log") {
            f.var_log_in_ram = Some(m.in_ram());
            f.var_log_fs = Some(m.fstype.clone());
            f.var_log_source = Some(m.source.clone());
        }
        let journal_in_ram =
            mounts::holding(&mounts, "/var/log/journal").is_some_and(mounts::Mount::in_ram);
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
        // RAM loggers, recognised by their mounts.
        let var_log = mounts::at(&mounts, "/var/log");
        let (logger, copy) = if var_log.is_some_and(|m| m.source == "log2ram")
            || (var_log.is_some_and(mounts::Mount::in_ram)
                && mounts::at(&mounts, "/var/hdd.log").is_some())
        {
            (Some("log2ram"), Some("/var/hdd.log"))
        } else if var_log.is_some_and(|m| m.source == "folder2ram")
            || mounts::at(&mounts, "/var/folder2ram/var/log").is_some()
        {
            (Some("folder2ram"), Some("/var/folder2ram/var/log"))
        } else if var_log.is_some_and(mounts::Mount::in_ram)
            && mounts::at(&mounts, "/var/log.hdd").is_some()
        {
            (Some("ramlog"), Some("/var/log.hdd"))
        } else {
            (None, None)
        };
        f.ram_logger = logger.map(str::to_string);
        f.disk_copy = copy.map(str::to_string);
        if let Some(copy) = copy {
            let mut budget = 20_000;
            if let Some(t) = newest_mtime(&root.path(copy), &mut budget) {
                f.log_disk_sync_age_s = Some((clock.now_unix_ns() / 1_000_000_000 - t).max(0));
            }
        }
    }

    off_node(root, cmdline_text, &mut f, tally);

    // Crash capture.
    f.pstore_backend = match read::read_attr(&root.path("/sys/module/pstore/parameters/backend")) {
        Ok(v) if v.trim().is_empty() || v.trim() == "(null)" => Some("none".into()),
        Ok(v) => Some(v.trim().to_string()),
        Err(e) if e.kind == ErrorKind::Absent => Some("none".into()),
        Err(e) => {
            tally.read_failed(C, &e);
            None
        }
    };
    let mut records = 0u64;
    let mut counted = true;
    for dir in ["/sys/fs/pstore", "/var/lib/systemd/pstore"] {
        match read::list_dir(&root.path(dir)) {
            Ok(_) => records += count_files(&root.path(dir), 0),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => {
                counted = false;
                tally.read_failed(C, &e);
            }
        }
    }
    f.pstore_records = counted.then_some(records);
    let first_ok = |paths: [&str; 2], tally: &mut Tally| -> Option<String> {
        for p in paths {
            match read::read_attr(&root.path(p)) {
                Ok(v) => return Some(v.trim().to_string()),
                Err(e) if e.kind == ErrorKind::Absent => continue,
                Err(e) => {
                    tally.read_failed(C, &e);
                    return None;
                }
            }
        }
        None
    };
    f.kdump_loaded = first_ok(
        [
            "/sys/kernel/kexec_crash_loaded",
            "/sys/kernel/kexec/crash_loaded",
        ],
        tally,
    )
    .map(|v| v == "1");
    f.crashkernel_bytes = first_ok(
        [
            "/sys/kernel/kexec_crash_size",
            "/sys/kernel/kexec/crash_size",
        ],
        tally,
    )
    .and_then(|v| v.parse().ok());

    // Lockup detectors and panic settings.
    f.nmi_watchdog = sysctl_flag(root, "nmi_watchdog", tally);
    f.soft_watchdog = sysctl_flag(root, "soft_watchdog", tally);
    f.hardlockup_panic = sysctl_flag(root, "hardlockup_panic", tally);
    f.softlockup_panic = sysctl_flag(root, "softlockup_panic", tally);
    f.hung_task_panic = sysctl_flag(root, "hung_task_panic", tally);
    f.panic_on_oops = sysctl_flag(root, "panic_on_oops", tally);
    f.panic_reboot_s = sysctl_int(root, "panic", tally);

    // Watchdog devices: attributes only, never /dev/watchdog (opening it arms it).
    match read::list_dir(&root.path("/sys/class/watchdog")) {
        Ok(wds) => {
            f.hw_watchdog = Some(false);
            for w in wds {
                let dir = format!("/sys/class/watchdog/{w}");
                let active = read::read_attr(&root.path(&format!("{dir}/state")))
                    .is_ok_and(|s| s.trim() == "active");
                if active && f.hw_watchdog != Some(true) {
                    f.hw_watchdog = Some(true);
                    f.hw_watchdog_timeout_s =
                        read::read_attr(&root.path(&format!("{dir}/timeout")))
                            .ok()
                            .and_then(|t| t.trim().parse().ok());
                    f.hw_watchdog_identity =
                        read::read_attr(&root.path(&format!("{dir}/identity")))
                            .ok()
                            .map(|s| s.trim().to_string());
                }
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => f.hw_watchdog = Some(false),
        Err(e) => tally.read_failed(C, &e),
    }
    f
}
