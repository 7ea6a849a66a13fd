//! Crash-forensics readiness and `vigil doctor`.

use std::process::Command;

use crate::goldenfile::Goldens;
use crate::util::*;

const DOCTOR_FIXTURES: [&str; 9] = [
    "forensics-auto-no-journal-dir",
    "forensics-folder2ram",
    "forensics-journald-syntax",
    "forensics-log2ram-zram",
    "forensics-rsyslog-includes",
    "forensics-unreadable-configs",
    "forensics-volatile-journal",
    "forensics-well-prepared",
    "passthrough-gpu-vfio",
];

fn doctor(name: &str, format: &str) -> String {
    doctor_at(&fixture(name), format)
}

fn doctor_at(root: &std::path::Path, format: &str) -> String {
    let out = Command::new(bin())
        .args([
            "doctor",
            "--fake-time",
            FAKE_TIME,
            "--format",
            format,
            "--root",
        ])
        .arg(root)
        .output()
        .expect("doctor");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn doctor_text_and_json_match_goldens() {
    let mut goldens = Goldens::default();
    let dir = repo().join("tests/golden/doctor");
    for name in DOCTOR_FIXTURES {
        goldens.check(dir.join(format!("{name}.txt")), &doctor(name, "text"));
        goldens.check(dir.join(format!("{name}.json")), &doctor(name, "json"));
    }
    goldens.finish();
}

#[test]
fn doctor_fits_80_columns_and_has_no_colour_in_a_pipe() {
    for name in fixtures() {
        let text = doctor(&name, "text");
        assert!(
            !text.contains('\x1b'),
            "{name}: colour escapes outside a TTY"
        );
        for l in text.lines() {
            assert!(
                l.chars().count() <= 80,
                "{name}: {} columns: {l}",
                l.chars().count()
            );
        }
    }
}

#[test]
fn doctor_uses_colour_on_a_tty() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: util-linux script not installed");
        return;
    }
    let cmd = format!(
        "{} doctor --root {}",
        bin(),
        fixture("passthrough-gpu-vfio").display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .expect("script");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\x1b[31m"),
        "a TTY gets colour"
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .output()
        .expect("script");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains('\x1b'),
        "NO_COLOR is honoured"
    );
}

fn forensics(name: &str) -> Point {
    let out = run_once(&fixture(name), &["--collectors", "crash_forensics"]);
    assert_eq!(out.status.code(), Some(0));
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let p = points(&ps, "crash_forensics")
        .next()
        .expect("crash_forensics line")
        .clone();
    p
}

#[test]
fn a_log2ram_node_would_lose_nine_days() {
    let f = forensics("passthrough-gpu-vfio");
    assert_eq!(
        (int(&f, "log2ram"), string(&f, "ram_logger").as_deref()),
        (Some(1), Some("log2ram"))
    );
    assert_eq!(int(&f, "log_disk_sync_age_s"), Some(9 * 86400 + 3 * 3600));
    assert_eq!(
        (
            int(&f, "journal_persistent"),
            string(&f, "journal_fs").as_deref()
        ),
        (Some(0), Some("tmpfs"))
    );
    assert_eq!(
        (
            int(&f, "kdump_loaded"),
            string(&f, "pstore_backend").as_deref(),
            int(&f, "hw_watchdog")
        ),
        (Some(0), Some("none"), Some(0))
    );
    assert_eq!(
        (int(&f, "hardlockup_panic"), int(&f, "panic_reboot_s")),
        (Some(0), Some(0))
    );
    assert_eq!(int(&f, "readiness_score"), Some(5));
    let ids = string(&f, "finding_ids").expect("ids");
    for id in [
        "ram_logs",
        "journal_not_persistent",
        "no_remote_logging",
        "aer_disabled",
        "aspm_off_but_enabled",
        "hardlockup_panic_off",
        "no_kdump",
        "no_pstore",
        "no_watchdog",
        "panic_no_reboot",
    ] {
        assert!(ids.split(',').any(|i| i == id), "{id} missing from {ids}");
    }
    let text = doctor("passthrough-gpu-vfio", "text");
    assert!(text.contains("loses the last 9.1 days"), "{text}");
    assert!(text.contains("/var/hdd.log: newest file is 9.1 days old"));
    assert!(
        text.contains("0000:06:00.1"),
        "names the device that still has ASPM on"
    );
}

#[test]
fn ram_logging_variants() {
    let z = forensics("forensics-log2ram-zram");
    assert_eq!(
        (
            int(&z, "var_log_in_ram"),
            int(&z, "log2ram"),
            int(&z, "log_disk_sync_age_s")
        ),
        (Some(1), Some(1), Some(26 * 3600))
    );
    assert_eq!(
        (
            string(&z, "journal_storage").as_deref(),
            int(&z, "journal_persistent")
        ),
        (Some("persistent"), Some(0)),
        "persistent on zram is RAM"
    );
    let f = forensics("forensics-folder2ram");
    assert_eq!(
        (
            string(&f, "ram_logger").as_deref(),
            int(&f, "log_disk_sync_age_s")
        ),
        (Some("folder2ram"), Some(41 * 86400))
    );
}

#[test]
fn journald_precedence() {
    let v = forensics("forensics-volatile-journal");
    assert_eq!(
        (
            string(&v, "journal_storage").as_deref(),
            int(&v, "journal_persistent")
        ),
        (Some("volatile"), Some(0))
    );
    let a = forensics("forensics-auto-no-journal-dir");
    assert_eq!(
        (
            string(&a, "journal_storage").as_deref(),
            int(&a, "journal_persistent")
        ),
        (Some("auto"), Some(0))
    );
    let text = doctor("forensics-auto-no-journal-dir", "text");
    assert!(text.contains("/var/log/journal: does not exist (auto means volatile)"));
}

/// journald's parser: `Storage=` is case-sensitive and an invalid or empty value
/// is ignored, the earlier setting staying in force (DEFINE_CONFIG_PARSE_ENUM).
#[test]
fn journald_ignores_what_journald_ignores() {
    let j = forensics("forensics-journald-syntax");
    assert_eq!(
        (
            string(&j, "journal_storage").as_deref(),
            int(&j, "journal_persistent"),
            int(&j, "journal_sync_interval_s")
        ),
        (Some("volatile"), Some(0), Some(300))
    );
    let text = doctor("forensics-journald-syntax", "text");
    assert!(
        text.contains("30-case.conf: Storage=Persistent (journald"),
        "{text}"
    );
    assert!(text.contains("/etc/systemd/journald.conf: Storage=volatile"));
}

/// Each rsyslog file is parsed on its own, through `$IncludeConfig`: a comment
/// without a final newline no longer hides the next file.
#[test]
fn rsyslog_files_are_read_one_by_one_through_includes() {
    let f = forensics("forensics-rsyslog-includes");
    assert_eq!(
        (
            int(&f, "remote_logging"),
            string(&f, "remote_logging_via").as_deref()
        ),
        (Some(1), Some("rsyslog"))
    );
    let ids = string(&f, "finding_ids").expect("ids");
    assert!(!ids.contains("no_remote_logging"), "{ids}");
    // rsyslog removed but not purged: its configuration forwards nothing.
    let (_tmp, root) = scratch_fixture("forensics-rsyslog-includes");
    std::fs::remove_file(root.join("usr/sbin/rsyslogd")).expect("rm");
    let out = run_once(&root, &["--collectors", "crash_forensics"]);
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let f = points(&ps, "crash_forensics").next().expect("line").clone();
    assert_eq!(int(&f, "remote_logging"), Some(0));
}

fn collector_status(ps: &[Point]) -> Point {
    points(ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "crash_forensics")
        .expect("status")
        .clone()
}

/// Unreadable forwarding configs are unknown, not "no": no finding, no
/// `remote_logging`/`netconsole` fields, the failure counted and named.
#[test]
fn unreadable_logging_configs_are_unknown_not_no() {
    let out = run_once(
        &fixture("forensics-unreadable-configs"),
        &["--collectors", "crash_forensics"],
    );
    assert_eq!(out.status.code(), Some(0));
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let f = points(&ps, "crash_forensics").next().expect("line").clone();
    let ids = string(&f, "finding_ids").expect("ids");
    assert!(!ids.contains("no_remote_logging"), "{ids}");
    assert_eq!(
        int(&f, "readiness_score"),
        Some(65),
        "only checked findings count"
    );
    assert_eq!(
        (int(&f, "remote_logging"), int(&f, "netconsole")),
        (None, None)
    );
    assert_eq!(
        string(&f, "unchecked_ids").as_deref(),
        Some("journal_not_persistent,no_remote_logging")
    );
    assert_eq!(
        (
            string(&f, "journal_storage"),
            int(&f, "journal_persistent"),
            int(&f, "journal_sync_interval_s")
        ),
        (None, None, None),
        "an unreadable journald drop-in could set anything"
    );
    assert_eq!(int(&collector_status(&ps), "errors"), Some(5));
    let j: serde_json::Value =
        serde_json::from_str(&doctor("forensics-unreadable-configs", "json")).expect("json");
    assert_eq!(j["unchecked"][1]["id"], "no_remote_logging");
    assert_eq!(j["unchecked"][1]["why"].as_array().map(Vec::len), Some(4));

    // Permission, as Telegraf's user meets it: `unavailable=permission`.
    let Some((_tmp, root)) = unprivileged_copy(
        "forensics-rsyslog-includes",
        "etc/rsyslog.d/90-remote.conf",
        0o600,
    ) else {
        return;
    };
    let out = as_nobody()
        .args([
            "--once",
            "--fake-time",
            FAKE_TIME,
            "--collectors",
            "crash_forensics",
            "--root",
        ])
        .arg(&root)
        .output()
        .expect("run as nobody");
    assert_eq!(out.status.code(), Some(0));
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let f = points(&ps, "crash_forensics").next().expect("line").clone();
    assert!(!string(&f, "finding_ids")
        .expect("ids")
        .contains("no_remote_logging"));
    assert_eq!(int(&f, "remote_logging"), None);
    assert_eq!(
        string(&collector_status(&ps), "unavailable").as_deref(),
        Some("permission")
    );
}

#[test]
fn fail_under_gives_scripts_an_exit_status() {
    let run = |name: &str, n: &str| {
        Command::new(bin())
            .args([
                "doctor",
                "--fake-time",
                FAKE_TIME,
                "--fail-under",
                n,
                "--root",
            ])
            .arg(fixture(name))
            .output()
            .expect("doctor")
            .status
            .code()
    };
    assert_eq!(run("forensics-well-prepared", "100"), Some(0));
    assert_eq!(run("passthrough-gpu-vfio", "6"), Some(1), "score 5 < 6");
    assert_eq!(run("passthrough-gpu-vfio", "5"), Some(0));
    assert_eq!(run("passthrough-gpu-vfio", "101"), Some(2), "usage error");
}

/// The fixes fit what this node has: Proxmox VE has no rsyslog by default.
#[test]
fn fixes_offer_what_is_installed() {
    let none = doctor("passthrough-gpu-vfio", "text");
    assert!(none.contains("apt install rsyslog"), "{none}");
    assert!(none.contains("/etc/modprobe.d/netconsole.conf"));
    assert!(
        none.contains("Storage=persistent alone changes nothing here"),
        "log2ram holds the journal: {none}"
    );
    assert!(!none.to_lowercase().contains("incident"));
    let has = doctor("forensics-journald-syntax", "text");
    assert!(has.contains("create /etc/systemd/journald.conf.d/50-persistent.conf"));
    assert!(!has.contains("changes nothing here"), "journal on ext4");
    assert!(
        has.contains("netconsole=@SRC_IP/eno1,6666@LOGHOST/"),
        "the default route's interface: {has}"
    );
}

/// Does vigil's own data leave the node: Telegraf running, the snippet in
/// place, /dev/kmsg readable by Telegraf's user under dmesg_restrict=1.
#[test]
fn doctor_checks_the_shipping_path() {
    let ok = doctor("forensics-well-prepared", "json");
    let j: serde_json::Value = serde_json::from_str(&ok).expect("json");
    assert_eq!(j["shipping"].as_array().map(Vec::len), Some(0), "{ok}");
    assert_eq!(j["setup"]["snippet"], "/etc/telegraf/telegraf.d/vigil.conf");
    let bare = doctor("forensics-folder2ram", "json");
    let j: serde_json::Value = serde_json::from_str(&bare).expect("json");
    let ids: Vec<&str> = j["shipping"]
        .as_array()
        .expect("shipping")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    // No /etc/telegraf at all: not installed, or a capture; its files are not judged.
    assert_eq!(ids, ["telegraf_not_running"]);
    let (_tmp, root) = scratch_fixture("forensics-well-prepared");
    // Telegraf installed and running, but no file of it runs vigil.
    std::fs::remove_file(root.join("etc/telegraf/telegraf.d/vigil.conf")).expect("rm");
    let j: serde_json::Value = serde_json::from_str(&doctor_at(&root, "json")).expect("json");
    assert_eq!(j["shipping"][0]["id"], "no_vigil_snippet");
    // Telegraf running without CAP_SYSLOG and no drop-in granting it.
    std::fs::remove_file(root.join("etc/systemd/system/telegraf.service.d/vigil.conf"))
        .expect("rm");
    let status = std::fs::read_to_string(root.join("proc/812/status")).expect("status");
    std::fs::write(
        root.join("proc/812/status"),
        status.replace("0000000400000000", "0000000000000000"),
    )
    .expect("write");
    let text = doctor_at(&root, "text");
    assert!(
        text.contains("Telegraf cannot read the kernel log"),
        "{text}"
    );
    assert!(text.contains("running telegraf has no CAP_SYSLOG"));
    // A capture keeps processes' directories but not their names: unknown, not "not running".
    std::fs::remove_file(root.join("proc/812/comm")).expect("rm");
    let j: serde_json::Value = serde_json::from_str(&doctor_at(&root, "json")).expect("json");
    assert_eq!(j["setup"]["telegraf_running"], serde_json::Value::Null);
    assert!(!j["shipping"].to_string().contains("telegraf_not_running"));
}

#[test]
fn a_well_prepared_node_scores_full() {
    let f = forensics("forensics-well-prepared");
    assert_eq!(
        (int(&f, "readiness_score"), int(&f, "findings")),
        (Some(100), Some(0))
    );
    assert_eq!(
        (
            int(&f, "journal_persistent"),
            int(&f, "journal_sync_interval_s")
        ),
        (Some(1), Some(30))
    );
    assert_eq!(
        (int(&f, "kdump_loaded"), int(&f, "crashkernel_bytes")),
        (Some(1), Some(536_870_912))
    );
    assert_eq!(
        (int(&f, "hw_watchdog"), int(&f, "hw_watchdog_timeout_s")),
        (Some(1), Some(10))
    );
    assert_eq!(
        (
            int(&f, "netconsole"),
            string(&f, "remote_logging_via").as_deref()
        ),
        (Some(1), Some("rsyslog,netconsole"))
    );
    assert_eq!(int(&f, "pstore_records"), Some(1));
    let j: serde_json::Value =
        serde_json::from_str(&doctor("forensics-well-prepared", "json")).expect("json");
    assert_eq!(j["readiness_score"], 100);
    assert_eq!(j["findings"].as_array().map(Vec::len), Some(0));
}

#[test]
fn doctor_json_agrees_with_the_metric() {
    for name in DOCTOR_FIXTURES {
        let j: serde_json::Value = serde_json::from_str(&doctor(name, "json")).expect("json");
        let f = forensics(name);
        assert_eq!(
            j["readiness_score"].as_i64(),
            int(&f, "readiness_score"),
            "{name}"
        );
        assert_eq!(
            j["findings"].as_array().map(|a| a.len() as i64),
            int(&f, "findings"),
            "{name}"
        );
        for finding in j["findings"].as_array().expect("array") {
            for k in ["id", "title", "why"] {
                assert!(
                    finding[k].as_str().is_some_and(|s| !s.is_empty()),
                    "{name}: {k}"
                );
            }
            assert!(!finding["seen"].as_array().expect("seen").is_empty());
            assert!(!finding["fix"].as_array().expect("fix").is_empty());
        }
    }
}
