//! `vigil --once` on the machine running the tests: facts, not exact values.

use std::process::Command;

use crate::util::*;

#[test]
fn once_on_this_host_reports_every_pci_function() {
    let out = Command::new(bin()).arg("--once").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_stderr_prefixed(&out.stderr);
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let mut want: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    want.sort();
    let got: Vec<String> = points(&ps, "pcie_device")
        .map(|p| p.tags["address"].clone())
        .collect();
    assert_eq!(got, want);
    assert_eq!(points(&ps, "pcie_platform").count(), 1);
    let hb: Vec<_> = points(&ps, "vigil").collect();
    assert_eq!(hb.len(), 1);
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id");
    assert_eq!(string(hb[0], "boot_id").as_deref(), Some(boot_id.trim()));
    assert_eq!(
        points(&ps, "vigil_collector").count(),
        vigil_collector::Collector::ALL.len()
    );
}
