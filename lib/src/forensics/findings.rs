//! Readiness findings: what this node would lose if it froze now, why it
//! matters, and the exact fix. Shared by the `crash_forensics` line
//! (`readiness_score`, `findings`) and `vigil doctor`.
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
    pub title: String,
    /// What was seen: (where, value).
    pub seen: Vec<(String, String)>,
    pub why: &'static str,
    pub fix: Vec<String>,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "unknown".to_string(), ToString::to_string)
}

fn age(s: i64) -> String {
    if s >= 86_400 {
        format!("{:.1} days", s as f64 / 86_400.0)
    } else if s >= 3600 {
        format!("{:.1} hours", s as f64 / 3600.0)
    } else {
        format!("{} minutes", s / 60)
    }
}

pub fn findings(f: &Forensics, p: &PlatformFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let in_ram = f.ram_logger.is_some() || f.var_log_in_ram == Some(true);
    if in_ram {
        let mut seen = vec![(
            "/proc/self/mountinfo".to_string(),
            format!(
                "/var/log on {} ({})",
                opt(&f.var_log_fs),
                opt(&f.var_log_source)
            ),
        )];
        if let (Some(copy), Some(a)) = (&f.disk_copy, f.log_disk_sync_age_s) {
            seen.push((copy.clone(), format!("newest file is {} old", age(a))));
        }
        let title = match (&f.ram_logger, f.log_disk_sync_age_s) {
            (Some(l), Some(a)) => format!(
                "Logs live in RAM ({l}): a freeze now loses the last {}",
                age(a)
            ),
            (Some(l), None) => format!("Logs live in RAM ({l})"),
            (None, _) => "/var/log is in RAM".to_string(),
        };
        let fix = match f.ram_logger.as_deref() {
            Some("log2ram") => vec![
                "systemctl disable --now log2ram    # logs back on disk".into(),
                "or sync hourly: systemctl edit log2ram-daily.timer".into(),
                "  [Timer]".into(),
                "  OnCalendar=hourly".into(),
            ],
            Some("folder2ram") => vec![
                "folder2ram -umountall".into(),
                "systemctl disable folder2ram_startup folder2ram_shutdown".into(),
            ],
            Some(_) => vec!["armbian-config: System > ramlog off, then reboot".into()],
            None => vec!["remove the tmpfs mount of /var/log from /etc/fstab, reboot".into()],
        };
        out.push(Finding { id: "ram_logs", weight: 15, title, seen, why: "Logs in RAM vanish with a freeze or power loss; the incident lost 9 days of logs this way.", fix });
    }
    if f.journal_persistent == Some(false) {
        let where_ = f
            .journal_storage_from
            .clone()
            .unwrap_or_else(|| "journald default".into());
        let mut seen = vec![(where_, format!("Storage={}", f.journal_storage))];
        if f.journal_storage == "auto" && !f.journal_dir_exists {
            seen.push((
                "/var/log/journal".into(),
                "does not exist (auto means volatile)".into(),
            ));
        }
        if let (Some(fs), Some(src)) = (&f.journal_fs, &f.journal_source) {
            seen.push((
                "/proc/self/mountinfo".into(),
                format!("/var/log/journal on {fs} ({src})"),
            ));
        }
        out.push(Finding {
            id: "journal_not_persistent",
            weight: 15,
            title: "The journal does not reach a disk".into(),
            seen,
            why: "A journal in /run or on a RAM filesystem is gone after the reset that ends a freeze.",
            fix: vec![
                "create /etc/systemd/journald.conf.d/50-persistent.conf:".into(),
                "  [Journal]".into(),
                "  Storage=persistent".into(),
                "  SyncIntervalSec=30s".into(),
                "systemctl restart systemd-journald; journalctl --flush".into(),
            ],
        });
    }
    if f.remote_logging.is_empty() {
        out.push(Finding {
            id: "no_remote_logging",
            weight: 15,
            title: "No log leaves this node".into(),
            seen: vec![("/etc/rsyslog.conf, /etc/syslog-ng, journal-upload, netconsole".into(), "no forwarding found".into())],
            why: "Only what is already off the node survives a freeze that takes the disk's last writes with it.",
            fix: vec![
                "echo '*.* @@LOGHOST:514' > /etc/rsyslog.d/90-remote.conf".into(),
                "systemctl restart rsyslog".into(),
                "kernel's last words too: modprobe netconsole \\".into(),
                "  netconsole=@/,6666@LOGHOST/".into(),
            ],
        });
    }
    if f.kdump_loaded == Some(false) {
        out.push(Finding {
            id: "no_kdump",
            weight: 10,
            title: "No crash kernel is loaded (kdump)".into(),
            seen: vec![
                ("/sys/kernel/kexec_crash_loaded".into(), "0".into()),
                ("/sys/kernel/kexec_crash_size".into(), opt(&f.crashkernel_bytes)),
            ],
            why: "Without kdump a panic leaves no memory dump and no dmesg to read after the reboot.",
            fix: vec![
                "apt install kdump-tools    # reserves crashkernel= memory".into(),
                "reboot, then check: kdump-config show".into(),
            ],
        });
    }
    if f.hw_watchdog == Some(false) {
        out.push(Finding {
            id: "no_watchdog",
            weight: 10,
            title: "No active hardware or software watchdog".into(),
            seen: vec![("/sys/class/watchdog".into(), "no watchdog in state active".into())],
            why: "A hard freeze with no watchdog waits for a human; a watchdog resets the node and leaves a trace.",
            fix: vec![
                "in /etc/systemd/system.conf: RuntimeWatchdogSec=30s".into(),
                "systemctl daemon-reexec".into(),
                "no hardware timer? echo softdog >> /etc/modules; modprobe softdog".into(),
            ],
        });
    }
    if p.aer_cmdline_disabled == Some(true) {
        out.push(Finding {
            id: "aer_disabled",
            weight: 10,
            title: "PCIe error reporting is disabled (pci=noaer)".into(),
            seen: vec![("/proc/cmdline".into(), "pci=noaer".into())],
            why: "With pci=noaer the kernel neither logs nor recovers PCIe errors: a dying link is invisible until it stalls the bus.",
            fix: vec![
                "remove pci=noaer from GRUB_CMDLINE_LINUX_DEFAULT".into(),
                "  in /etc/default/grub (or /etc/kernel/cmdline)".into(),
                "update-grub (or proxmox-boot-tool refresh); reboot".into(),
            ],
        });
    } else if p.aer_native == Some(false) {
        out.push(Finding {
            id: "aer_not_native",
            weight: 5,
            title: "The OS does not handle AER itself".into(),
            seen: vec![("/sys/bus/pci_express/devices/*:pcie002".into(), "no AER service bound".into())],
            why: "Firmware-first or missing AER means errors reach the log only if the firmware reports them.",
            fix: vec![
                "dmesg | grep _OSC    # does the OS control AER?".into(),
                "if firmware keeps it: boot with pcie_ports=native".into(),
                "pcie_aspm=off also costs native AER on ACPI: drop it".into(),
            ],
        });
    }
    if p.aspm_cmdline.as_deref() == Some("off") && !p.hw_aspm_enabled.is_empty() {
        out.push(Finding {
            id: "aspm_off_but_enabled",
            weight: 5,
            title: format!("pcie_aspm=off, yet {} device(s) still have ASPM enabled", p.hw_aspm_enabled.len()),
            seen: vec![
                ("/proc/cmdline".into(), "pcie_aspm=off".into()),
                ("config space Link Control".into(), p.hw_aspm_enabled.join(", ")),
            ],
            why: "pcie_aspm=off leaves firmware's ASPM untouched: the links you meant to keep awake may still enter L0s/L1.",
            fix: vec![
                "turn ASPM off in the firmware setup, or boot with".into(),
                "  pcie_aspm.policy=performance instead of pcie_aspm=off".into(),
            ],
        });
    }
    if f.hardlockup_panic == Some(false) {
        out.push(Finding {
            id: "hardlockup_panic_off",
            weight: 5,
            title: "A hard lockup hangs forever instead of panicking".into(),
            seen: vec![("/proc/sys/kernel/hardlockup_panic".into(), "0".into())],
            why: "A hard lockup then freezes the node silently; with hardlockup_panic=1 it panics, which kdump/pstore can record.",
            fix: vec![
                "echo kernel.hardlockup_panic=1 > /etc/sysctl.d/90-lockup.conf".into(),
                "sysctl --system".into(),
            ],
        });
    }
    if f.pstore_backend.as_deref() == Some("none") {
        out.push(Finding {
            id: "no_pstore",
            weight: 5,
            title: "No pstore backend: the last kernel words are not kept".into(),
            seen: vec![("/sys/module/pstore/parameters/backend".into(), "none registered".into())],
            why: "pstore (EFI variables, ERST, ramoops) keeps the panic log across the reset when the disk cannot.",
            fix: vec![
                "UEFI: modprobe efi_pstore; echo efi_pstore >> /etc/modules".into(),
                "else: ramoops.mem_address=... ramoops.mem_size=... at boot".into(),
            ],
        });
    }
    if f.panic_reboot_s == Some(0) {
        out.push(Finding {
            id: "panic_no_reboot",
            weight: 5,
            title: "After a panic the node waits forever (kernel.panic=0)".into(),
            seen: vec![("/proc/sys/kernel/panic".into(), "0".into())],
            why: "A panicked node stays down until someone power-cycles it; with kernel.panic=10 it reboots and reports back.",
            fix: vec![
                "echo kernel.panic=10 > /etc/sysctl.d/90-panic.conf".into(),
                "sysctl --system".into(),
            ],
        });
    }
    out
}

pub fn score(findings: &[Finding]) -> u32 {
    100u32.saturating_sub(findings.iter().map(|f| f.weight).sum())
}
