//! `vigil doctor`: what this node would lose if it froze now, in plain words.
//! For each finding: what was seen (file and value), why it matters for a
//! frozen node, and the exact fix, written for Proxmox VE 8/9 (Debian 12/13).
//! The library decides the findings (ids, weights, what was seen); the words
//! are here. Text fits 80 columns; colour only on a TTY (and never with NO_COLOR).

use serde_json::{json, Value};
use vigil_collector::forensics::findings::{score, unchecked, Finding, Unchecked};
use vigil_collector::forensics::setup::{self, Setup};
use vigil_collector::forensics::Forensics;
use vigil_collector::Snapshot;

const WIDTH: usize = 80;

/// `--fail-under N`: the exit status when the score is below N (2 is a usage
/// error or an unusable `--root`, as everywhere in vigil).
pub const EXIT_BELOW: u8 = 1;

/// A finding in words.
pub struct Prose {
    pub title: String,
    pub why: &'static str,
    pub fix: Vec<String>,
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The words for one finding, fitted to what this node has installed.
///
/// Longer than most functions on purpose: it is a table, one arm per finding
/// id, read top to bottom; the arms that depend on the node call out to their
/// own functions.
pub fn prose(f: &Finding, fx: Option<&Forensics>, st: &Setup) -> Prose {
    let (title, why, fix): (String, &'static str, Vec<String>) = match f.id {
        "ram_logs" => ram_logs(fx),
        "journal_not_persistent" => (
            "The journal does not reach a disk".into(),
            "A journal in /run or on a RAM filesystem is gone after the reset that ends a freeze.",
            journal_fix(fx),
        ),
        "no_remote_logging" => (
            "No log leaves this node".into(),
            "Only what is already off the node survives a freeze that takes the disk's last writes with it.",
            remote_fix(st),
        ),
        "no_kdump" => (
            "No crash kernel is loaded (kdump)".into(),
            "Without kdump a panic leaves no memory dump and no dmesg to read after the reboot.",
            lines(&[
                "apt install kdump-tools    # reserves crashkernel= memory",
                "reboot, then check: kdump-config show",
            ]),
        ),
        "no_watchdog" => (
            "No active hardware or software watchdog".into(),
            "A hard freeze with no watchdog waits for a human; a watchdog resets the node and leaves a trace.",
            lines(&[
                "in /etc/systemd/system.conf: RuntimeWatchdogSec=30s",
                "systemctl daemon-reexec",
                "no hardware timer? echo softdog >> /etc/modules; modprobe softdog",
            ]),
        ),
        "aer_disabled" => (
            "PCIe error reporting is disabled (pci=noaer)".into(),
            "With pci=noaer the kernel neither logs nor recovers PCIe errors: a dying link is invisible until it stalls the bus.",
            lines(&[
                "remove pci=noaer from GRUB_CMDLINE_LINUX_DEFAULT",
                "  in /etc/default/grub (or /etc/kernel/cmdline)",
                "update-grub (or proxmox-boot-tool refresh); reboot",
            ]),
        ),
        "aer_not_native" => (
            "The OS does not handle AER itself".into(),
            "Firmware-first or missing AER means errors reach the log only if the firmware reports them.",
            lines(&[
                "dmesg | grep _OSC    # does the OS control AER?",
                "if firmware keeps it: boot with pcie_ports=native",
                "pcie_aspm=off also costs native AER on ACPI: drop it",
            ]),
        ),
        "aspm_off_but_enabled" => (
            format!(
                "pcie_aspm=off, yet {} device(s) still have ASPM enabled",
                f.seen.get(1).map_or(0, |(_, v)| v.split(", ").count())
            ),
            "pcie_aspm=off leaves firmware's ASPM untouched: the links you meant to keep awake may still enter L0s/L1.",
            lines(&[
                "turn ASPM off in the firmware setup, or boot with",
                "  pcie_aspm.policy=performance instead of pcie_aspm=off",
            ]),
        ),
        "hardlockup_panic_off" => (
            "A hard lockup hangs forever instead of panicking".into(),
            "A hard lockup then freezes the node silently; with hardlockup_panic=1 it panics, which kdump/pstore can record.",
            lines(&[
                "echo kernel.hardlockup_panic=1 > /etc/sysctl.d/90-lockup.conf",
                "sysctl --system",
            ]),
        ),
        "no_pstore" => (
            "No pstore backend: the last kernel words are not kept".into(),
            "pstore (EFI variables, ERST, ramoops) keeps the panic log across the reset when the disk cannot.",
            lines(&[
                "UEFI: modprobe efi_pstore; echo efi_pstore >> /etc/modules",
                "else: ramoops.mem_address=... ramoops.mem_size=... at boot",
            ]),
        ),
        "panic_no_reboot" => (
            "After a panic the node waits forever (kernel.panic=0)".into(),
            "A panicked node stays down until someone power-cycles it; with kernel.panic=10 it reboots and reports back.",
            lines(&[
                "echo kernel.panic=10 > /etc/sysctl.d/90-panic.conf",
                "sysctl --system",
            ]),
        ),
        _ => shipping_prose(f.id, st),
    };
    Prose { title, why, fix }
}

fn ram_logs(fx: Option<&Forensics>) -> (String, &'static str, Vec<String>) {
    let logger = fx.and_then(|f| f.ram_logger.as_deref());
    let age = fx.and_then(|f| f.log_disk_sync_age_s);
    let title = match (logger, age) {
        (Some(l), Some(a)) => format!(
            "Logs live in RAM ({l}): a freeze now loses the last {}",
            vigil_collector::forensics::findings::age(a)
        ),
        (Some(l), None) => format!("Logs live in RAM ({l})"),
        (None, _) => "/var/log is in RAM".to_string(),
    };
    let fix = match logger {
        Some("log2ram") => lines(&[
            "systemctl disable log2ram; reboot    # logs back on disk",
            "or sync hourly: systemctl edit log2ram-daily.timer",
            "  [Timer]",
            "  OnCalendar=",
            "  OnCalendar=hourly",
        ]),
        Some("folder2ram") => lines(&[
            "folder2ram -umountall    # writes the RAM copy back to disk",
            "systemctl disable folder2ram_startup folder2ram_shutdown",
        ]),
        Some(_) => lines(&["armbian-config: System > ramlog off, then reboot"]),
        None => lines(&["remove the tmpfs mount of /var/log from /etc/fstab, reboot"]),
    };
    (
        title,
        "Logs in RAM vanish with a freeze or power loss: everything since the last sync to disk is gone.",
        fix,
    )
}

/// With the journal on a RAM disk `Storage=persistent` changes nothing: the
/// fix is to get the journal's directory onto a disk.
fn journal_fix(fx: Option<&Forensics>) -> Vec<String> {
    let in_ram = fx.is_some_and(|f| {
        matches!(f.journal_fs.as_deref(), Some("tmpfs" | "ramfs"))
            || f.journal_source
                .as_deref()
                .is_some_and(|s| s.starts_with("/dev/zram"))
    });
    let logger = fx.and_then(|f| f.ram_logger.as_deref());
    let mut fix = Vec::new();
    if in_ram {
        fix.push("Storage=persistent alone changes nothing here: journald's".into());
        fix.push("/var/log/journal is on a RAM disk. Either:".into());
        match logger {
            Some("log2ram") => fix.extend(lines(&[
                "- systemctl disable log2ram; reboot    # the simplest",
                "- or keep log2ram, with the journal bound to its disk copy",
                "  before journald moves there (systemd-journal-flush):",
                "  systemctl edit --force --full var-log-journal.mount",
                "    [Unit]",
                "    DefaultDependencies=no",
                "    After=log2ram.service",
                "    Before=systemd-journal-flush.service",
                "    [Mount]",
                "    What=/var/hdd.log/journal",
                "    Where=/var/log/journal",
                "    Options=bind",
                "    [Install]",
                "    WantedBy=systemd-journal-flush.service",
                "  systemctl enable var-log-journal.mount; reboot",
                "  check: findmnt /var/log/journal    # not tmpfs",
                "- while it stays in RAM: SystemMaxUse= in journald.conf",
                "  below SIZE= in /etc/log2ram.conf, or log2ram runs out",
            ])),
            Some("folder2ram") => fix.extend(lines(&[
                "- drop /var/log from /etc/folder2ram/folder2ram.conf, then",
                "  folder2ram -umountall; folder2ram -mountall",
            ])),
            _ => fix.push("- stop mounting a RAM filesystem on /var/log, reboot".into()),
        }
        fix.push("then make sure journald writes to /var/log/journal:".into());
    }
    // Drop-ins apply in file-name order across directories: the new one must
    // sort after the file that set Storage= now.
    let after = fx
        .and_then(|f| f.journal_storage_from.as_deref())
        .filter(|p| p.contains("journald.conf.d/"))
        .and_then(|p| p.rsplit('/').next())
        .is_some_and(|n| n >= "50-persistent.conf");
    let name = if after {
        "zz-persistent.conf"
    } else {
        "50-persistent.conf"
    };
    fix.push(format!("create /etc/systemd/journald.conf.d/{name}:"));
    fix.extend(lines(&[
        "  [Journal]",
        "  Storage=persistent",
        "  SyncIntervalSec=30s",
        "systemctl restart systemd-journald; journalctl --flush",
    ]));
    fix
}

/// Off-node logging with what this node has: Proxmox VE installs neither
/// rsyslog (since 8.0) nor journal-upload.
fn remote_fix(st: &Setup) -> Vec<String> {
    let has = |n: &str| st.installed_shippers.iter().any(|s| s == n);
    let mut fix = Vec::new();
    if has("rsyslog") {
        fix.extend(lines(&[
            "echo '*.* @@LOGHOST:514' > /etc/rsyslog.d/90-remote.conf",
            "systemctl restart rsyslog",
        ]));
    } else if has("journal-upload") {
        fix.extend(lines(&[
            "create /etc/systemd/journal-upload.conf.d/90-remote.conf:",
            "  [Upload]",
            "  URL=http://LOGHOST:19532",
            "systemctl enable --now systemd-journal-upload",
        ]));
    } else {
        fix.extend(lines(&[
            "no log shipper is installed (Proxmox VE has only the journal):",
            "apt install rsyslog",
            "echo '*.* @@LOGHOST:514' > /etc/rsyslog.d/90-remote.conf",
            "systemctl restart rsyslog",
        ]));
    }
    fix.push("the kernel's last words too: netconsole needs this node's".into());
    let dev = match st.default_route_dev.as_deref() {
        Some(d) => {
            fix.push(format!(
                "interface ({d}, the default route's) and static IPv4 (SRC_IP):"
            ));
            d
        }
        None => {
            fix.push("interface (IFACE, the default route's: ip route show default;".into());
            fix.push("usually vmbr0 on Proxmox) and static IPv4 (SRC_IP):".into());
            "IFACE"
        }
    };
    fix.push(format!("  ip -4 -br addr show {dev}"));
    fix.push("  create /etc/modprobe.d/netconsole.conf:".into());
    fix.push(format!(
        "    options netconsole netconsole=@SRC_IP/{dev},6666@LOGHOST/"
    ));
    fix.push(format!(
        "load it once {dev} is up: in /etc/network/interfaces, under"
    ));
    fix.push(format!("  iface {dev}, add: post-up modprobe netconsole"));
    fix.push("  (modules-load.d loads it before a bridge exists)".into());
    fix.push("LOGHOST behind a router? append the gateway's MAC after".into());
    fix.push("  LOGHOST/ (ip neigh show to find it)".into());
    fix
}

fn shipping_prose(id: &str, st: &Setup) -> (String, &'static str, Vec<String>) {
    match id {
        "telegraf_not_running" => (
            "Telegraf is not running: nothing of vigil leaves this node".into(),
            "Without Telegraf no heartbeat, PCIe state or kernel event reaches the server, so a freeze leaves nothing to look at.",
            lines(&[
                "not installed? InfluxData's repository has it:",
                "  https://docs.influxdata.com/telegraf/v1/install/",
                "systemctl enable --now telegraf",
                "systemctl status telegraf    # check it stays up",
            ]),
        ),
        "no_vigil_snippet" => (
            "Telegraf does not run vigil".into(),
            "No Telegraf file under /etc/telegraf runs vigil, so none of its data is collected.",
            lines(&[
                "the vigil package ships /etc/telegraf/telegraf.d/vigil.conf;",
                "if it was deleted, get it back with:",
                "  apt install --reinstall \\",
                "    -o Dpkg::Options::=--force-confmiss vigil",
                "(from source: copy telegraf-snippets/vigil.conf there)",
                "systemctl restart telegraf",
            ]),
        ),
        "kmsg_unreadable" => {
            let mut fix = lines(&[
                "vigil runs as user telegraf; kernel.dmesg_restrict=1 keeps",
                "/dev/kmsg from it. Either let everyone read the kernel log:",
                "  echo kernel.dmesg_restrict=0 > /etc/sysctl.d/90-vigil.conf",
                "  sysctl --system",
                "or give Telegraf CAP_SYSLOG with the drop-in vigil ships:",
                "  cd /usr/share/doc/vigil/examples",
                "  install -D -m 0644 telegraf.service.d/vigil.conf \\",
                "    /etc/systemd/system/telegraf.service.d/vigil.conf",
                "  systemctl daemon-reload; systemctl restart telegraf",
            ]);
            if st.telegraf_running == Some(true) && st.unit_grants_cap_syslog {
                fix.push("(the unit grants it already: restart Telegraf)".into());
            }
            (
                "Telegraf cannot read the kernel log (/dev/kmsg)".into(),
                "The kernel's last messages before a freeze (AER, lockups, hung tasks) reach the server only if vigil can read them as they happen.",
                fix,
            )
        }
        other => (other.to_string(), "", Vec::new()),
    }
}

/// Greedy word wrap; a word longer than the width stands alone.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn block(out: &mut String, label: &str, lines: &[String]) {
    let indent = "         ";
    for (i, l) in lines.iter().enumerate() {
        let head = if i == 0 {
            format!("  {label:<6} ")
        } else {
            indent.to_string()
        };
        // A line that fits is kept verbatim: fixes carry meaningful indentation.
        let parts = if l.chars().count() <= WIDTH - indent.len() {
            vec![l.clone()]
        } else {
            wrap(l, WIDTH - indent.len())
        };
        for (j, part) in parts.iter().enumerate() {
            if j == 0 {
                out.push_str(&head);
            } else {
                out.push_str(indent);
                out.push_str("  ");
            }
            out.push_str(part);
            out.push('\n');
        }
    }
}

struct Colours {
    red: &'static str,
    yellow: &'static str,
    green: &'static str,
    bold: &'static str,
    reset: &'static str,
}

fn item(out: &mut String, c: &Colours, f: &Finding, p: &Prose) {
    out.push('\n');
    let mark = if f.weight >= 10 { c.red } else { c.yellow };
    let tag = if f.weight > 0 {
        format!(" [-{}]", f.weight)
    } else {
        String::new()
    };
    let (bold, reset) = (c.bold, c.reset);
    for (i, l) in wrap(&p.title, WIDTH - 4 - tag.len()).iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("{mark}{bold}[!] {l}{reset}{tag}\n"));
        } else {
            out.push_str(&format!("    {bold}{l}{reset}\n"));
        }
    }
    let seen: Vec<String> = f.seen.iter().map(|(w, v)| format!("{w}: {v}")).collect();
    block(out, "seen", &seen);
    block(out, "why", &[p.why.to_string()]);
    block(out, "fix", &p.fix);
}

/// What a finding's id is about, for the "could not check" list.
fn topic(id: &str) -> &'static str {
    match id {
        "journal_not_persistent" => "does the journal reach a disk?",
        "no_remote_logging" => "do logs leave this node?",
        _ => "a readiness check",
    }
}

pub fn text(s: &Snapshot, st: &Setup, color: bool) -> String {
    let c = if color {
        Colours {
            red: "\x1b[31m",
            yellow: "\x1b[33m",
            green: "\x1b[32m",
            bold: "\x1b[1m",
            reset: "\x1b[0m",
        }
    } else {
        Colours {
            red: "",
            yellow: "",
            green: "",
            bold: "",
            reset: "",
        }
    };
    let fx = s.forensics.as_ref();
    let findings = &s.findings;
    let unknown = fx.map(unchecked).unwrap_or_default();
    let shipping = setup::findings(st);
    let sc = score(findings);
    let mut out = String::new();
    out.push_str(&format!(
        "{}vigil doctor: what this node would lose if it froze now{}\n\n",
        c.bold, c.reset
    ));
    let colour = match sc {
        80.. => c.green,
        50..=79 => c.yellow,
        _ => c.red,
    };
    out.push_str(&format!(
        "Readiness {colour}{sc}/100{}{}, {} finding{}.\n",
        c.reset,
        if unknown.is_empty() { "" } else { " at most" },
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    ));
    if findings.is_empty() && unknown.is_empty() {
        out.push_str("\nThis node keeps its logs on disk and off the node, and would leave a crash\nrecord. Nothing to fix.\n");
    }
    for f in findings {
        item(&mut out, &c, f, &prose(f, fx, st));
    }
    unchecked_text(&mut out, &c, &unknown);
    if !shipping.is_empty() {
        out.push_str(&format!(
            "\n{}Does vigil's own data leave this node?{}\n",
            c.bold, c.reset
        ));
        for f in &shipping {
            item(&mut out, &c, f, &prose(f, fx, st));
        }
    }
    out
}

fn unchecked_text(out: &mut String, c: &Colours, unknown: &[Unchecked]) {
    for u in unknown {
        out.push_str(&format!(
            "\n{}{}[?] Not checked: {}{}\n",
            c.yellow,
            c.bold,
            topic(u.id),
            c.reset
        ));
        block(out, "seen", &u.why);
        block(
            out,
            "why",
            &["A file vigil cannot read could say anything: this is not counted in the score, which is therefore at most what it says.".to_string()],
        );
        block(
            out,
            "fix",
            &lines(&["run vigil doctor as root, or repair the files above"]),
        );
    }
}

pub fn json(s: &Snapshot, st: &Setup) -> String {
    let fx = s.forensics.as_ref();
    let findings: Vec<Value> = s
        .findings
        .iter()
        .map(|f| finding_json(f, &prose(f, fx, st)))
        .collect();
    let shipping: Vec<Value> = setup::findings(st)
        .iter()
        .map(|f| finding_json(f, &prose(f, fx, st)))
        .collect();
    let unknown: Vec<Value> = fx
        .map(unchecked)
        .unwrap_or_default()
        .iter()
        .map(|u| json!({"id": u.id, "why": u.why}))
        .collect();
    let v = json!({
        "readiness_score": score(&s.findings),
        "findings": findings,
        "unchecked": unknown,
        "shipping": shipping,
        "facts": s.forensics,
        "setup": st,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

fn finding_json(f: &Finding, p: &Prose) -> Value {
    json!({
        "id": f.id,
        "weight": f.weight,
        "title": p.title,
        "seen": f.seen.iter().map(|(w, v)| json!({"where": w, "value": v})).collect::<Vec<_>>(),
        "why": p.why,
        "fix": p.fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id the library can produce has words, and every fix fits 80 columns.
    #[test]
    fn every_finding_has_prose_that_fits() {
        let ids = [
            "ram_logs",
            "journal_not_persistent",
            "no_remote_logging",
            "no_kdump",
            "no_watchdog",
            "aer_disabled",
            "aer_not_native",
            "aspm_off_but_enabled",
            "hardlockup_panic_off",
            "no_pstore",
            "panic_no_reboot",
            "telegraf_not_running",
            "no_vigil_snippet",
            "kmsg_unreadable",
        ];
        let fx = Forensics {
            journal_fs: Some("tmpfs".into()),
            ram_logger: Some("log2ram".into()),
            ..Forensics::default()
        };
        for id in ids {
            let f = Finding {
                id,
                weight: 5,
                seen: vec![],
            };
            for st in [
                Setup::default(),
                Setup {
                    installed_shippers: vec!["rsyslog".into()],
                    ..Setup::default()
                },
            ] {
                let p = prose(&f, Some(&fx), &st);
                assert!(!p.why.is_empty() && !p.fix.is_empty(), "{id}");
                assert!(!p.title.contains("incident") && !p.why.contains("incident"));
                for l in &p.fix {
                    assert!(l.chars().count() <= WIDTH - 9, "{id}: {l}");
                }
            }
        }
    }
}
