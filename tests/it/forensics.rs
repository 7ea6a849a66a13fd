//! Crash-forensics readiness and `vigil doctor`.

use std::process::Command;

use crate::goldenfile::Goldens;
use crate::util::*;

const DOCTOR_FIXTURES: [&str; 6] = [
    "forensics-auto-no-journal-dir",
    "forensics-folder2ram",
    "forensics-log2ram-zram",
    "forensics-volatile-journal",
    "forensics-well-prepared",
    "passthrough-gpu-vfio",
];

fn doctor(name: &str, format: &str) -> String {
    let out = Command::new(bin())
        .args([
            "doctor",
            "--fake-time",
            FAKE_TIME,
            "--format",
            format,
            "--root",
        ])
        .arg(fixture(name))
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
fn the_incident_node_would_lose_nine_days() {
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
