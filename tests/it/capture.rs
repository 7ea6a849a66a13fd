//! `vigil capture`: this machine into one archive, replayed with --root.

use std::collections::BTreeMap;
use std::process::Command;

use crate::util::*;

/// Points keyed by measurement and tags, without the fields that change with time.
fn comparable(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let volatile = ["duration_us", "uptime_s", "log_disk_sync_age_s"];
    parse_lp(text)
        .into_iter()
        .filter(|p| p.name != "kernel_event") // the ring may grow between the two runs
        .map(|p| {
            let key = format!("{} {:?}", p.name, p.tags);
            let fields = p
                .fields
                .iter()
                .filter(|(k, _)| !volatile.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            (key, fields)
        })
        .collect()
}

#[test]
fn capture_replays_like_the_live_machine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("cap.tar.gz");
    let out = Command::new(bin())
        .arg("capture")
        .arg("--out")
        .arg(&archive)
        .output()
        .expect("capture");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("files") && summary.contains("bytes compressed"),
        "tells what it took: {summary}"
    );

    let live = Command::new(bin())
        .args(["--once", "--fake-time", FAKE_TIME])
        .output()
        .expect("live");
    let replay = Command::new(bin())
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(&archive)
        .output()
        .expect("replay");
    assert_eq!(replay.status.code(), Some(0));
    let (l, r) = (
        comparable(&String::from_utf8_lossy(&live.stdout)),
        comparable(&String::from_utf8_lossy(&replay.stdout)),
    );
    assert!(
        l.len() > 10,
        "live collection too small to compare: {}",
        l.len()
    );
    assert_eq!(l, r, "replayed archive differs from the live machine");

    // The unpacked folder replays the same.
    let dir = tmp.path().join("unpacked");
    std::fs::create_dir(&dir).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar");
    assert!(st.success());
    let folder = Command::new(bin())
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(&dir)
        .output()
        .expect("folder");
    assert_eq!(comparable(&String::from_utf8_lossy(&folder.stdout)), r);

    // Only what vigil reads: no log or journal contents, no other process's open files.
    let list = Command::new("tar")
        .arg("-tzvf")
        .arg(&archive)
        .output()
        .expect("list");
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (size, path) = (cols[2], cols[5]);
        if path.starts_with("var/log")
            || path.starts_with("var/hdd.log")
            || path.contains("/journal/")
        {
            assert_eq!(size, "0", "log content captured: {line}");
        }
        if path.contains("/fd/") && line.starts_with('l') {
            assert!(
                line.contains("-> /dev/vfio/"),
                "private fd link captured: {line}"
            );
        }
    }
}

#[test]
fn capture_of_a_fixture_reproduces_its_output() {
    // A capture of a replayed root is itself replayable: the fixture round-trips.
    round_trip("passthrough-gpu-vfio");
}

/// Five-digit VMD domains survive a capture: the replay lists the same devices.
#[test]
fn capture_keeps_intel_vmd_domains() {
    round_trip("intel-vmd");
}

/// The EDAC tree replays the same memory-controller lines.
#[test]
fn capture_keeps_edac_counts() {
    round_trip("edac-firmware-first");
}

fn round_trip(name: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("fx.tar.gz");
    let st = Command::new(bin())
        .args(["capture", "--root"])
        .arg(fixture(name))
        .arg("--out")
        .arg(&archive)
        .output()
        .expect("capture");
    assert_eq!(st.status.code(), Some(0));
    let a = run_once(&fixture(name), &[]);
    let b = run_once(&archive, &[]);
    assert_eq!(
        comparable(&String::from_utf8_lossy(&a.stdout)),
        comparable(&String::from_utf8_lossy(&b.stdout))
    );
    // Hardware events survive in the kmsg excerpt; unrelated lines do not.
    let events = |o: &std::process::Output| {
        parse_lp(&String::from_utf8_lossy(&o.stdout))
            .into_iter()
            .filter(|p| p.name == "kernel_event")
            .count()
    };
    assert_eq!(events(&a), events(&b));
    let records = |kmsg: &std::path::Path| {
        std::fs::read(kmsg).map_or(0, |b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with(' '))
                .count()
        })
    };
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("dir");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar");
    assert!(st.success());
    let hardware =
        vigil_collector::kmsg::hardware_records(&vigil_collector::Root::new(fixture(name)))
            .map_or(0, |r| r.len());
    let (kept, ring) = (
        records(&unpacked.join("dev/kmsg")),
        records(&fixture(name).join("dev/kmsg")),
    );
    assert_eq!(
        kept, hardware,
        "{name}: the excerpt holds the hardware records, no more"
    );
    assert!(kept <= ring, "{name}: {kept} records kept of {ring}");
}

/// The excerpt leaves out what is not a hardware record: the fixture's ring has
/// boot lines and userspace records, the archive only the events' records.
#[test]
fn capture_keeps_only_hardware_kernel_records() {
    let ring = std::fs::read(fixture("passthrough-gpu-vfio").join("dev/kmsg")).expect("kmsg");
    let ring = String::from_utf8_lossy(&ring);
    let hardware = vigil_collector::kmsg::hardware_records(&vigil_collector::Root::new(fixture(
        "passthrough-gpu-vfio",
    )))
    .expect("hardware records");
    let ring_records = ring.lines().filter(|l| !l.starts_with(' ')).count();
    assert!(
        !hardware.is_empty() && hardware.len() < ring_records,
        "{} hardware records of {ring_records}",
        hardware.len()
    );
}
