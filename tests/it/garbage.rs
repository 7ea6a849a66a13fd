//! Bad input is normal input: whatever the files hold, exit 0 and valid lines.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::util::*;

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// A root built at test time with what cannot be committed sensibly: a huge
/// attribute, files that vanish, empty files everywhere, looping links.
#[test]
fn hostile_tree_still_gives_exit_zero_and_valid_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = tmp.path();
    let dev = r.join("sys/devices/pci0000:00/0000:00:01.0");
    let bus = r.join("sys/bus/pci/devices");
    std::fs::create_dir_all(&bus).expect("bus");
    symlink(
        "../../../devices/pci0000:00/0000:00:01.0",
        bus.join("0000:00:01.0"),
    )
    .expect("link");
    write(&dev.join("vendor"), b"0x10de\n");
    write(&dev.join("device"), b"");
    write(&dev.join("class"), b"");
    write(&dev.join("current_link_speed"), &vec![b'8'; 3 << 20]); // 3 MiB
    write(&dev.join("current_link_width"), b"\n");
    write(&dev.join("max_link_speed"), b"\xc3\x28 GT/s");
    write(&dev.join("power_state"), b"");
    write(&dev.join("aer_dev_fatal"), &b"DLP 1\n".repeat(200_000));
    write(&dev.join("config"), &[0u8; 9000]);
    symlink("iommu_group", dev.join("iommu_group")).expect("loop");
    symlink("a", dev.join("b")).expect("dangling");
    std::fs::create_dir_all(dev.join("link")).expect("link dir");
    symlink("l1_aspm", dev.join("link/l1_aspm")).expect("loop");
    // A bus entry whose device vanished, and one looping onto itself.
    symlink(
        "../../../devices/pci0000:00/0000:00:09.0",
        bus.join("0000:00:09.0"),
    )
    .expect("gone");
    symlink("0000:00:0a.0", bus.join("0000:00:0a.0")).expect("self loop");
    write(&r.join("proc/cmdline"), b"");
    write(&r.join("proc/uptime"), b"");
    write(&r.join("proc/sys/kernel/random/boot_id"), b"");
    write(&r.join("sys/module/pcie_aspm/parameters/policy"), b"");

    for format in ["influx", "json"] {
        let out = run_once(r, &["--format", format]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_stderr_prefixed(&out.stderr);
        let text = String::from_utf8(out.stdout).expect("utf8");
        if format == "json" {
            for l in text.lines() {
                serde_json::from_str::<serde_json::Value>(l).expect("json line");
            }
            continue;
        }
        let ps = parse_lp(&text);
        let dev = one(&ps, "pcie_device", "0000:00:01.0");
        assert_eq!(
            dev.tags.get("device_id"),
            None,
            "empty device file: tag omitted"
        );
        let errors: i64 = points(&ps, "vigil_collector")
            .filter_map(|p| int(p, "errors"))
            .sum();
        assert!(errors >= 5, "bad values counted: {errors}");
        assert!(points(&ps, "vigil").next().is_some());
    }
}

#[test]
fn committed_corrupt_fixture_counts_every_bad_value() {
    let out = run_once(&fixture("corrupt-inputs"), &[]);
    assert_eq!(out.status.code(), Some(0));
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let errs = |c: &str| {
        points(&ps, "vigil_collector")
            .find(|p| p.tags["collector"] == c)
            .and_then(|p| int(p, "errors"))
            .expect("collector line")
    };
    // power_state (UTF-8), numa_node, class, enable, iommu_group, driver loop
    assert_eq!(errs("pcie_device"), 6);
    // No wake fails closed: 00:1c.0's power state is unreadable, so neither
    // its link files nor config, nor anything below it, are read.
    assert_eq!(errs("pcie_link"), 0);
    let link = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "pcie_link")
        .expect("pcie_link status");
    assert_eq!(
        string(link, "unavailable").as_deref(),
        Some("power_unknown")
    );
    for a in ["0000:00:1c.0", "0000:02:00.0"] {
        let d = one(&ps, "pcie_device", a);
        assert_eq!(int(d, "link_skipped"), Some(1), "{a}");
        assert_eq!(int(d, "reachable"), None, "{a}: config not read");
    }
    assert_eq!(errs("pcie_aer"), 2);
    assert_eq!(errs("vigil"), 2, "uptime NaN and a non-UUID boot_id");
    // The vanished device is skipped without an error; the empty one still reports.
    assert!(points(&ps, "pcie_device").all(|p| p.tags["address"] != "0000:03:00.0"));
    one(&ps, "pcie_device", "0000:04:00.0");
}

/// A copy of the ASUS P6T6 tree whose `config` at `rel` is a FIFO with no
/// writer: opened the usual way, reading it would block for good.
fn tree_with_fifo_config(tmp: &std::path::Path, rel: &str) -> std::path::PathBuf {
    let root = copy_fixture("asus-p6t6-switch", tmp);
    let cfg = root.join(rel);
    std::fs::remove_file(&cfg).expect("rm config");
    let st = Command::new("mkfifo").arg(&cfg).status().expect("mkfifo");
    assert!(st.success());
    root
}

/// A FIFO where a sysfs file belongs is refused at once (sysfs files are
/// regular): a bad value, counted; nothing waits on it. Blocking reads of
/// real files are bounded by the deadline (lib/tests/deadlines.rs).
#[test]
fn a_fifo_in_place_of_config_is_refused_without_waiting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tree_with_fifo_config(tmp.path(), "sys/devices/pci0000:00/0000:00:07.0/config");
    let started = std::time::Instant::now();
    let out = run_once(&root, &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    // Far below one deadline: nothing waited.
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let bridge = one(&ps, "pcie_device", "0000:00:07.0");
    assert_eq!(int(bridge, "reachable"), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    // The devices below it are awake and read.
    for below in ["0000:06:00.0", "0000:06:00.1"] {
        assert_eq!(int(one(&ps, "pcie_device", below), "reachable"), Some(1));
    }
}
