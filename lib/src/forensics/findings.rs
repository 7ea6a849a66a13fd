//! Readiness findings: what this node would lose if it froze now, as ids,
//! weights and what was seen. Shared by the `crash_forensics` line
//! (`readiness_score`, `findings`) and `vigil doctor`, which owns the words
//! (title, why, fix).
//!
//! Score = 100 minus the weights of the findings present (never below 0).
//! Weights, by how much evidence each gap destroys on a frozen node:
//!
//! | finding | weight |
//! |---|---|
//! | `ram_logs` (log2ram/folder2ram/ramlog, or /var/log on tmpfs/zram) | 15 |
//! | `journal_not_persistent` (volatile, none, auto without /var/log/journal, or RAM-backed) | 15 |
//! | `no_remote_logging` | 15 |
//! | `no_kdump` | 10 |
//! | `no_watchdog` (no active hardware or software watchdog) | 10 |
//! | `aer_disabled` (`pci=noaer`) | 10 |
//! | `aer_not_native` (firmware-first or no AER service, without `pci=noaer`) | 5 |
//! | `aspm_off_but_enabled` (`pcie_aspm=off` while Link Control has ASPM on) | 5 |
//! | `hardlockup_panic_off` | 5 |
//! | `no_pstore` | 5 |
//! | `panic_no_reboot` (`kernel.panic=0`) | 5 |
//!
//! Unknown is not "no": a finding whose inputs could not be read (an
//! unreadable rsyslog or journald file) is not present, so it costs nothing; it
//! is listed by [`unchecked`] instead, and the collector's `unavailable` says
//! why. The score is then an upper bound: it counts only what could be checked.

use serde::Serialize;

use super::Forensics;

/// Facts from the PCI side that readiness depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlatformFacts {
    pub cmdline: Option<String>,
    pub aer_cmdline_disabled: Option<bool>,
    pub aer_native: Option<bool>,
    pub aspm_cmdline: Option<String>,
    /// Devices whose Link Control has ASPM enabled (config space, privileged).
    pub hw_aspm_enabled: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub weight: u32,
    /// What was seen: (where, value).
    pub seen: Vec<(String, String)>,
}

/// A finding that could not be decided: its inputs were unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    pub id: &'static str,
    /// The reads that failed (`PATH: permission denied`).
    pub why: Vec<String>,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "unknown".to_string(), ToString::to_string)
}

/// A duration for a person: minutes, hours or days.
pub fn age(s: i64) -> String {
    if s >= 86_400 {
        format!("{:.1} days", s as f64 / 86_400.0)
    } else if s >= 3600 {
        format!("{:.1} hours", s as f64 / 3600.0)
    } else {
        format!("{} minutes", s / 60)
    }
}

fn finding(id: &'static str, weight: u32, seen: Vec<(String, String)>) -> Finding {
    Finding { id, weight, seen }
}

fn seen(w: &str, v: impl Into<String>) -> (String, String) {
    (w.to_string(), v.into())
}

pub fn findings(f: &Forensics, p: &PlatformFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(ram_logs(f));
    out.extend(journal(f));
    if f.remote_logging.is_empty() && f.remote_logging_unknown.is_empty() {
        out.push(finding(
            "no_remote_logging",
            15,
            vec![seen(
                "/etc/rsyslog.conf, /etc/syslog-ng, journal-upload, netconsole",
                "no forwarding found",
            )],
        ));
    }
    if f.kdump_loaded == Some(false) {
        out.push(finding(
            "no_kdump",
            10,
            vec![
                seen("/sys/kernel/kexec_crash_loaded", "0"),
                seen("/sys/kernel/kexec_crash_size", opt(&f.crashkernel_bytes)),
            ],
        ));
    }
    if f.hw_watchdog == Some(false) {
        out.push(finding(
            "no_watchdog",
            10,
            vec![seen("/sys/class/watchdog", "no watchdog in state active")],
        ));
    }
    out.extend(platform(p));
    let sysctl = |v: Option<bool>, id, name: &str| {
        (v == Some(false))
            .then(|| finding(id, 5, vec![seen(&format!("/proc/sys/kernel/{name}"), "0")]))
    };
    out.extend(sysctl(
        f.hardlockup_panic,
        "hardlockup_panic_off",
        "hardlockup_panic",
    ));
    if f.pstore_backend.as_deref() == Some("none") {
        out.push(finding(
            "no_pstore",
            5,
            vec![seen(
                "/sys/module/pstore/parameters/backend",
                "none registered",
            )],
        ));
    }
    out.extend(sysctl(
        f.panic_reboot_s.map(|s| s != 0),
        "panic_no_reboot",
        "panic",
    ));
    out
}

fn ram_logs(f: &Forensics) -> Option<Finding> {
    if f.ram_logger.is_none() && f.var_log_in_ram != Some(true) {
        return None;
    }
    let mut s = vec![seen(
        "/proc/self/mountinfo",
        format!(
            "/var/log on {} ({})",
            opt(&f.var_log_fs),
            opt(&f.var_log_source)
        ),
    )];
    if let (Some(copy), Some(a)) = (&f.disk_copy, f.log_disk_sync_age_s) {
        s.push(seen(copy, format!("newest file is {} old", age(a))));
    }
    Some(finding("ram_logs", 15, s))
}

fn journal(f: &Forensics) -> Option<Finding> {
    if f.journal_persistent != Some(false) {
        return None;
    }
    let where_ = f
        .journal_storage_from
        .as_deref()
        .unwrap_or("journald default");
    let mut s = vec![seen(where_, format!("Storage={}", f.journal_storage))];
    for i in &f.journal_config_ignored {
        let (path, line) = i.split_once(": ").unwrap_or(("journald.conf", i));
        s.push(seen(path, format!("{line} (journald ignores it)")));
    }
    if f.journal_storage == "auto" && !f.journal_dir_exists {
        s.push(seen(
            "/var/log/journal",
            "does not exist (auto means volatile)",
        ));
    }
    if let (Some(fs), Some(src)) = (&f.journal_fs, &f.journal_source) {
        s.push(seen(
            "/proc/self/mountinfo",
            format!("/var/log/journal on {fs} ({src})"),
        ));
    }
    Some(finding("journal_not_persistent", 15, s))
}

fn platform(p: &PlatformFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    if p.aer_cmdline_disabled == Some(true) {
        out.push(finding(
            "aer_disabled",
            10,
            vec![seen("/proc/cmdline", "pci=noaer")],
        ));
    } else if p.aer_native == Some(false) {
        out.push(finding(
            "aer_not_native",
            5,
            vec![seen(
                "/sys/bus/pci_express/devices/*:pcie002",
                "no AER service bound",
            )],
        ));
    }
    if p.aspm_cmdline.as_deref() == Some("off") && !p.hw_aspm_enabled.is_empty() {
        out.push(finding(
            "aspm_off_but_enabled",
            5,
            vec![
                seen("/proc/cmdline", "pcie_aspm=off"),
                seen("config space Link Control", p.hw_aspm_enabled.join(", ")),
            ],
        ));
    }
    out
}

/// Findings that could not be decided because their inputs were unreadable.
pub fn unchecked(f: &Forensics) -> Vec<Unchecked> {
    let mut out = Vec::new();
    if f.journal_persistent.is_none() && !f.journal_config_unreadable.is_empty() {
        out.push(Unchecked {
            id: "journal_not_persistent",
            why: f.journal_config_unreadable.clone(),
        });
    }
    if f.remote_logging.is_empty() && !f.remote_logging_unknown.is_empty() {
        out.push(Unchecked {
            id: "no_remote_logging",
            why: f.remote_logging_unknown.clone(),
        });
    }
    out
}

pub fn score(findings: &[Finding]) -> u32 {
    100u32.saturating_sub(findings.iter().map(|f| f.weight).sum())
}
