//! What each fixture is about, asserted directly (the goldens hold the rest).

use std::collections::BTreeMap;

use crate::util::*;

fn collect(name: &str) -> Vec<Point> {
    let out = run_once(&fixture(name), &[]);
    assert_eq!(out.status.code(), Some(0));
    parse_lp(&String::from_utf8(out.stdout).expect("utf8"))
}

fn total_errors(ps: &[Point]) -> i64 {
    points(ps, "vigil")
        .find_map(|p| int(p, "errors"))
        .expect("vigil line")
}

#[test]
fn sleeping_devices_are_observed_without_being_woken() {
    let ps = collect("gpu-d3cold");
    // The sleeping devices' link files and config are directories in this fixture:
    // opening any of them would be counted. Zero errors = never opened.
    assert_eq!(total_errors(&ps), 0);
    for addr in ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"] {
        let d = one(&ps, "pcie_device", addr);
        assert_eq!(int(d, "link_skipped"), Some(1), "{addr}");
        assert_eq!(int(d, "reachable"), None, "{addr}: config not read");
        assert!(
            points(&ps, "pcie_link").all(|p| p.tags["address"] != addr),
            "{addr}: no link line"
        );
    }
    assert_eq!(
        string(one(&ps, "pcie_device", "0000:01:00.0"), "power_state").as_deref(),
        Some("D3cold")
    );
    assert_eq!(
        int(one(&ps, "pcie_device", "0000:01:00.0"), "d_state"),
        Some(4)
    );
    // Cached attributes are still read: ASPM from link/, AER counters.
    assert!(points(&ps, "pcie_aspm").any(|p| p.tags["address"] == "0000:01:00.0"));
    assert_eq!(
        points(&ps, "pcie_aer")
            .filter(|p| p.tags["address"] == "0000:01:00.0")
            .count(),
        3
    );
    // The awake GPU next to it is fully read.
    let awake = one(&ps, "pcie_link", "0000:02:00.0");
    assert_eq!(int(awake, "link_up"), Some(1));
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(int(plat, "suspended_devices"), Some(3));
}

#[test]
fn a_device_that_fell_off_the_bus_is_unreachable_and_its_link_down() {
    let ps = collect("device-fell-off-bus");
    let gpu = one(&ps, "pcie_device", "0000:02:00.0");
    assert_eq!(int(gpu, "reachable"), Some(0));
    assert_eq!(
        string(gpu, "power_state").as_deref(),
        Some("D0"),
        "the kernel still believes it is on"
    );
    let gl = one(&ps, "pcie_link", "0000:02:00.0");
    assert_eq!(
        (int(gl, "link_up"), int(gl, "width"), float(gl, "speed_gts")),
        (Some(0), None, None)
    );
    let rp = one(&ps, "pcie_link", "0000:00:1c.0");
    assert_eq!(
        (int(rp, "link_up"), int(rp, "dll_link_active")),
        (Some(0), Some(0))
    );
    assert_eq!(
        int(rp, "width_downgraded"),
        None,
        "no downgrade verdict on a dead link"
    );
    let st = one(&ps, "pcie_aer_status", "0000:00:1c.0");
    assert_eq!(int(st, "dpc_triggered"), Some(1));
}

#[test]
fn downgraded_links_are_judged_against_the_partner() {
    let ps = collect("links-downgraded");
    let f = |addr: &str| {
        let p = one(&ps, "pcie_link", addr);
        (
            int(p, "width_downgraded"),
            int(p, "speed_downgraded"),
            int(p, "expected_width"),
            float(p, "expected_speed_gts"),
        )
    };
    // x16 GPU trained at x8 in an x16 slot: both ends report the width drop.
    assert_eq!(f("0000:41:00.0"), (Some(1), Some(0), Some(16), Some(16.0)));
    assert_eq!(f("0000:00:02.0"), (Some(1), Some(0), Some(16), Some(16.0)));
    // Gen5 NVMe at Gen4 under a Gen5 port.
    assert_eq!(f("0000:2e:00.0"), (Some(0), Some(1), Some(4), Some(32.0)));
    // eGPU: x16-capable card behind an x4 Thunderbolt bridge is not width-downgraded.
    assert_eq!(f("0000:07:00.0"), (Some(0), Some(1), Some(4), Some(8.0)));
    // Gen5 port above a Gen4 NVMe in D3hot: the partner's maximum is unknown, so
    // nothing is expected and nothing is called downgraded (was 32 GT/s, downgraded=1).
    assert_eq!(f("0000:00:1b.0"), (None, None, None, None));
    assert_eq!(
        int(one(&ps, "pcie_device", "0000:03:00.0"), "link_skipped"),
        Some(1)
    );
    assert_eq!(
        total_errors(&ps),
        0,
        "the sleeping NVMe's traps were not opened"
    );
    // Unprivileged view: no config-space fields, and it says why.
    assert_eq!(points(&ps, "pcie_aer_status").count(), 0);
    let c = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "pcie_aer_status")
        .expect("status");
    assert_eq!(string(c, "unavailable").as_deref(), Some("permission"));
    assert_eq!(
        int(points(&ps, "vigil").next().expect("vigil"), "privileged"),
        Some(0)
    );
    let nvme = points(&ps, "pcie_aspm")
        .find(|p| p.tags["address"] == "0000:2e:00.0")
        .expect("aspm");
    assert_eq!(
        (int(nvme, "l1_2"), string(nvme, "source").as_deref()),
        (Some(1), Some("sysfs"))
    );
}

#[test]
fn passthrough_node_with_aspm_off_still_shows_hardware_aspm() {
    let ps = collect("passthrough-gpu-vfio");
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(string(plat, "aspm_cmdline").as_deref(), Some("off"));
    assert_eq!(int(plat, "aer_cmdline_disabled"), Some(1));
    assert_eq!(int(plat, "aer_native"), Some(0));
    // pcie_aspm=off hides link/ everywhere; Link Control shows firmware left L0s+L1 on.
    let audio = points(&ps, "pcie_aspm")
        .find(|p| p.tags["address"] == "0000:06:00.1")
        .expect("aspm");
    assert_eq!(int(audio, "l1"), None);
    assert_eq!(
        (
            int(audio, "lnkctl_l1"),
            int(audio, "enabled"),
            string(audio, "source").as_deref()
        ),
        (Some(1), Some(1), Some("config"))
    );
    for addr in ["0000:06:00.0", "0000:06:00.1"] {
        let d = one(&ps, "pcie_device", addr);
        assert_eq!(string(d, "driver").as_deref(), Some("vfio-pci"));
        assert_eq!(int(d, "iommu_group"), Some(8));
    }
    assert_eq!(
        int(points(&ps, "vigil").next().expect("vigil"), "privileged"),
        Some(1)
    );
}

/// Under `pci=noaer` the kernel keeps the `aer_dev_*` files but never counts:
/// their zeros are not emitted as healthy counts, `vigil_collector` says why,
/// and what still works (Device Status, AER and DPC registers) is reported.
#[test]
fn aer_counters_under_noaer_are_not_measurements() {
    let ps = collect("passthrough-gpu-vfio");
    assert_eq!(points(&ps, "pcie_aer").count(), 0, "was 3 lines of zeros");
    let c = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "pcie_aer")
        .expect("status");
    assert_eq!(string(c, "unavailable").as_deref(), Some("noaer"));
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(int(plat, "aer_devices"), Some(1), "the files exist");
    assert!(int(
        one(&ps, "pcie_aer_status", "0000:06:00.0"),
        "devsta_corr_err"
    )
    .is_some());
    assert!(int(one(&ps, "pcie_aer_status", "0000:00:07.0"), "cor_status").is_some());
}

#[test]
fn old_kernel_strings_are_understood() {
    let ps = collect("old-kernel-formats");
    assert_eq!(total_errors(&ps), 0, "every historical format parses");
    let gpu = one(&ps, "pcie_link", "0000:02:00.0");
    assert_eq!(
        (float(gpu, "speed_gts"), float(gpu, "max_speed_gts")),
        (Some(5.0), Some(8.0))
    );
    let unk = one(&ps, "pcie_link", "0000:00:1d.0");
    assert_eq!(
        float(unk, "speed_gts"),
        None,
        "`Unknown speed` is absent, not zero"
    );
    let d = one(&ps, "pcie_device", "0000:02:00.0");
    assert_eq!(
        string(d, "power_state"),
        None,
        "no power_state file before 5.11"
    );
    let cor = points(&ps, "pcie_aer")
        .find(|p| p.tags["address"] == "0000:00:1c.0" && p.tags["severity"] == "correctable")
        .expect("legacy AER");
    assert_eq!(
        (
            int(cor, "receiver_error"),
            int(cor, "bad_tlp"),
            int(cor, "total"),
            int(cor, "rootport_total")
        ),
        (Some(2), Some(1), Some(3), Some(5))
    );
    let fatal = points(&ps, "pcie_aer")
        .find(|p| p.tags["address"] == "0000:02:00.0" && p.tags["severity"] == "fatal")
        .expect("bit line");
    assert_eq!(int(fatal, "bit_27"), Some(2));
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(string(plat, "aspm_policy").as_deref(), Some("default"));
    assert_eq!(int(plat, "aer_native"), Some(1));
}

#[test]
fn switch_topology_partners() {
    let ps = collect("asus-p6t6-switch");
    // NF200 upstream port 02:00.0 partners the root port above; its downstream
    // port 03:00.0 partners the SAS HBA below (x8).
    let up = one(&ps, "pcie_link", "0000:02:00.0");
    assert_eq!(int(up, "expected_width"), Some(16));
    let down = one(&ps, "pcie_link", "0000:03:00.0");
    assert_eq!(
        (int(down, "expected_width"), int(down, "width_downgraded")),
        (Some(8), Some(0))
    );
    // Empty slot below 03:02.0 and root port 00:01.0: link down, no downgrade verdict.
    for addr in ["0000:03:02.0", "0000:00:01.0"] {
        let p = one(&ps, "pcie_link", addr);
        assert_eq!(
            (int(p, "link_up"), int(p, "width_downgraded")),
            (Some(0), None),
            "{addr}"
        );
    }
}

/// Intel VMD numbers its domains from 0x10000: `10000:e1:00.0` is listed, placed
/// below its root port, judged against it and put in its IOMMU group (such
/// devices used to vanish without an error).
#[test]
fn intel_vmd_domains_are_listed_and_placed() {
    let ps = collect("intel-vmd");
    assert_eq!(total_errors(&ps), 0);
    let nvme = one(&ps, "pcie_device", "10000:e1:00.0");
    assert_eq!(
        string(nvme, "upstream_port").as_deref(),
        Some("10000:e0:06.0")
    );
    // The VMD endpoint is the root port's sysfs parent, not its bridge.
    assert_eq!(
        string(one(&ps, "pcie_device", "10000:e0:06.0"), "upstream_port"),
        None
    );
    let rp = one(&ps, "pcie_link", "10000:e0:06.0");
    assert_eq!(
        (float(rp, "expected_speed_gts"), int(rp, "speed_downgraded")),
        (Some(16.0), Some(0))
    );
    assert_eq!(
        points(&ps, "pcie_aer")
            .filter(|p| p.tags["address"] == "10000:e1:00.0")
            .count(),
        3
    );
    let g = points(&ps, "iommu_group")
        .find(|p| p.tags["group"] == "9")
        .expect("group 9");
    assert_eq!(
        string(g, "members").as_deref(),
        Some("0000:00:0e.0,10000:e0:06.0,10000:e1:00.0")
    );
    assert_eq!(
        int(points(&ps, "vigil").next().expect("vigil"), "devices"),
        Some(5)
    );
}

/// A field whose source this selection did not read is left off: it depends on
/// `--collectors`, not on the host (was `aer_devices=0i`, `privileged=0i`).
#[test]
fn fields_do_not_depend_on_the_collector_selection() {
    let run = |sel: &str| {
        let out = run_once(&fixture("passthrough-gpu-vfio"), &["--collectors", sel]);
        assert_eq!(out.status.code(), Some(0));
        parse_lp(&String::from_utf8(out.stdout).expect("utf8"))
    };
    let ps = run("pcie_platform");
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(int(plat, "aer_devices"), None);
    assert_eq!(int(plat, "devices"), Some(3));
    let ps = run("pcie_platform,pcie_aer");
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(int(plat, "aer_devices"), Some(1));
    let ps = run("vigil,pcie_aer");
    let hb = points(&ps, "vigil").next().expect("vigil");
    assert_eq!(int(hb, "privileged"), None);
    assert_eq!(int(hb, "devices"), Some(3));
    let ps = run("vigil,pcie_device");
    let hb = points(&ps, "vigil").next().expect("vigil");
    assert_eq!(int(hb, "privileged"), Some(1));
}

/// EDAC counts per memory controller and per rank, as amd64_edac lays them out;
/// the legacy csrow directory repeating the same counts is not added in.
#[test]
fn memory_errors_per_controller_and_rank() {
    let ps = collect("edac-firmware-first");
    assert_eq!(total_errors(&ps), 0);
    let mc = points(&ps, "edac_mc").next().expect("edac_mc");
    assert_eq!(mc.tags["controller"], "mc0");
    assert_eq!(
        (
            int(mc, "ce_count"),
            int(mc, "ue_count"),
            int(mc, "dimms"),
            string(mc, "mc_name").as_deref()
        ),
        (Some(12), Some(0), Some(4), Some("F17h"))
    );
    let ranks: Vec<&Point> = points(&ps, "edac_dimm").collect();
    assert_eq!(ranks.len(), 4, "ranks 4-7, not csrow2");
    let r5 = ranks
        .iter()
        .find(|p| p.tags["dimm"] == "rank5")
        .expect("rank5");
    assert_eq!(int(r5, "ce_count"), Some(12));
    assert_eq!(string(r5, "location").as_deref(), Some("csrow 2 channel 1"));
    assert_eq!(int(r5, "size_mb"), Some(8192));
    // Nothing counts memory errors on a node without an EDAC driver: say so.
    let ps = collect("passthrough-gpu-vfio");
    assert_eq!(points(&ps, "edac_mc").count(), 0);
    let c = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "edac")
        .expect("edac status");
    assert_eq!(string(c, "unavailable").as_deref(), Some("no_controller"));
}

/// Firmware-first AER: the port bus has services but none is AER, so the
/// counter files are never incremented and their zeros are not emitted.
#[test]
fn aer_counters_without_os_native_aer_are_not_measurements() {
    let ps = collect("edac-firmware-first");
    assert_eq!(points(&ps, "pcie_aer").count(), 0, "was 6 lines of zeros");
    let c = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "pcie_aer")
        .expect("status");
    assert_eq!(string(c, "unavailable").as_deref(), Some("aer_not_native"));
    let plat = points(&ps, "pcie_platform").next().expect("platform");
    assert_eq!(
        (int(plat, "aer_native"), int(plat, "aer_devices")),
        (Some(0), Some(2))
    );
}

/// Every field a collector emits, selected alone with `vigil` and
/// `pcie_platform` (which summarise the others' sources), has the value the
/// full selection gives it, on every fixture: what vigil reports depends on the host, never on
/// `--collectors`. Durations, and `vigil errors` (the sum over the selected
/// collectors, by definition), are the exceptions.
#[test]
fn every_collector_alone_agrees_with_the_full_selection() {
    type Key = (String, Vec<(String, String)>, String);
    let values = |root: &std::path::Path, extra: &[&str]| -> BTreeMap<Key, String> {
        let out = run_once(root, extra);
        assert_eq!(out.status.code(), Some(0));
        let mut m = BTreeMap::new();
        for p in parse_lp(&String::from_utf8(out.stdout).expect("utf8")) {
            for (f, v) in p.fields {
                let tags: Vec<(String, String)> = p.tags.clone().into_iter().collect();
                m.insert((p.name.clone(), tags, f), format!("{v:?}"));
            }
        }
        m
    };
    for name in fixtures() {
        let root = fixture(&name);
        let all = values(&root, &[]);
        for c in vigil_collector::Collector::ALL {
            // With the two collectors that summarise the others' sources.
            let sel = format!("{},vigil,pcie_platform", c.name());
            for ((m, tags, f), v) in values(&root, &["--collectors", &sel]) {
                if f == "duration_us" || (m == "vigil" && f == "errors") {
                    continue;
                }
                let want = all.get(&(m.clone(), tags.clone(), f.clone()));
                assert_eq!(
                    Some(&v),
                    want,
                    "{name}: --collectors {sel} gives {m} {tags:?} {f}"
                );
            }
        }
    }
}
