//! An independent decoder as oracle: `lspci -A linux-sysfs -vvv` (Debian's
//! pciutils) on the same fixture tree must agree with vigil's config-space
//! decode on link speed and width, LnkCap/LnkCtl ASPM, Link Status bits, DevSta
//! and the AER status registers.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use vigil::names::{bit_names, COR_NAMES, UNCOR_NAMES};
use vigil_collector::pci::config_space::{decode, ConfigSpace, Express};

use crate::util::*;

fn lspci_available() -> bool {
    Command::new("lspci")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn speed(s: &str) -> Option<f64> {
    s.trim().strip_suffix("GT/s").and_then(|n| n.parse().ok())
}

/// `Name+ Name- ...` -> names set with `+`.
fn plus_names(s: &str) -> BTreeSet<String> {
    s.split_whitespace()
        .filter_map(|t| t.strip_suffix('+'))
        .map(str::to_string)
        .collect()
}
fn minus_or_plus(s: &str) -> BTreeSet<String> {
    s.split_whitespace()
        .filter_map(|t| t.strip_suffix('+').or_else(|| t.strip_suffix('-')))
        .map(str::to_string)
        .collect()
}

#[derive(Default, Debug)]
struct Lspci {
    lnkcap: Option<String>,
    lnkcap2_max: Option<f64>,
    lnkctl: Option<String>,
    lnksta: Option<String>,
    lnksta_bits: Option<String>,
    devsta: Option<String>,
    uesta: Option<String>,
    cesta: Option<String>,
    l1subcap: Option<String>,
    l1subctl1: Option<String>,
}

fn parse_lspci(text: &str) -> BTreeMap<String, Lspci> {
    let mut out: BTreeMap<String, Lspci> = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut prev_key = String::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            cur = line.split_whitespace().next().map(str::to_string);
            continue;
        }
        let Some(addr) = &cur else { continue };
        let e = out.entry(addr.clone()).or_default();
        let t = line.trim();
        let (key, rest) = match t.split_once(':') {
            Some((k, r)) if !k.contains(' ') => (k.to_string(), r.trim().to_string()),
            _ => (String::new(), t.to_string()),
        };
        match key.as_str() {
            "LnkCap" => e.lnkcap = Some(rest),
            "LnkCap2" => {
                // "Supported Link Speeds: 2.5-8GT/s, Crosslink- ..."
                e.lnkcap2_max = rest
                    .strip_prefix("Supported Link Speeds:")
                    .and_then(|r| r.split(',').next())
                    .and_then(|r| r.trim().rsplit('-').next())
                    .and_then(speed);
            }
            "LnkCtl" => e.lnkctl = Some(rest),
            "LnkSta" => e.lnksta = Some(rest),
            "DevSta" => e.devsta = Some(rest),
            "UESta" => e.uesta = Some(rest),
            "CESta" => e.cesta = Some(rest),
            "L1SubCap" => e.l1subcap = Some(rest),
            "L1SubCtl1" => e.l1subctl1 = Some(rest),
            "" if prev_key == "LnkSta" && e.lnksta_bits.is_none() => e.lnksta_bits = Some(rest),
            _ => {}
        }
        if !key.is_empty() {
            prev_key = key;
        }
    }
    out
}

#[test]
fn config_decode_agrees_with_lspci() {
    if !lspci_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pciutils (lspci)"
        );
        eprintln!("skipping: lspci not installed (apt-get install pciutils)");
        return;
    }
    let root = fixture("pciutils-captures");
    let out = Command::new("lspci")
        .args(["-A", "linux-sysfs", "-O"])
        .arg(format!("sysfs.path={}", root.join("sys/bus/pci").display()))
        .arg("-vvv")
        .output()
        .expect("lspci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lspci = parse_lspci(&String::from_utf8_lossy(&out.stdout));

    // vigil's own output on the same tree, for the fields that come from config.
    let vout = run_once(&root, &[]);
    assert!(vout.status.success());
    let ps = parse_lp(&String::from_utf8(vout.stdout).expect("utf8"));

    let mut compared = 0;
    for (addr, l) in &lspci {
        let cfg = std::fs::read(root.join("sys/bus/pci/devices").join(addr).join("config"))
            .expect("config");
        let cs = decode(&cfg);
        let Some(e) = cs.express.as_ref() else {
            continue;
        };
        let ctx = format!("{addr} ({})", source_of(&root, addr));
        link_cap_agrees(l, e, &ctx);
        link_ctl_agrees(l, e, &ps, addr, &ctx);
        link_sta_agrees(l, e, &ctx);
        devsta_agrees(l, e, &ps, addr, &ctx);
        aer_status_agrees(l, &cs, &ps, addr, &ctx);
        l1_substates_agree(l, &cs, &ps, addr, &ctx);
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} devices compared");
}

/// LnkCap (speed, width, ASPM support) against the decode.
fn link_cap_agrees(l: &Lspci, e: &Express, ctx: &str) {
    // LnkCap: "Port #1, Speed 8GT/s, Width x1, ASPM L1, Exit Latency ..."
    if let Some(cap) = &l.lnkcap {
        let parts: Vec<&str> = cap.split(", ").collect();
        let cap_speed = parts
            .iter()
            .find_map(|p| p.strip_prefix("Speed "))
            .and_then(speed);
        // lspci's LnkCap shows LNKCAP.SLS; the kernel's max_link_speed and vigil
        // use the LNKCAP2 vector, which lspci prints as LnkCap2's upper bound.
        let want = l.lnkcap2_max.or(cap_speed);
        assert_eq!(e.max_speed_gts(), want, "{ctx}: max speed");
        let w = parts
            .iter()
            .find_map(|p| p.strip_prefix("Width x"))
            .and_then(|w| w.parse::<u8>().ok());
        assert_eq!(Some(e.max_width()), w, "{ctx}: max width");
        let aspm = parts
            .iter()
            .find_map(|p| p.strip_prefix("ASPM "))
            .unwrap_or("");
        let (l0s, l1) = match aspm {
            "not supported" => (false, false),
            "L0s" => (true, false),
            "L1" => (false, true),
            "L0s L1" => (true, true),
            other => panic!("{ctx}: unknown LnkCap ASPM {other:?}"),
        };
        assert_eq!(
            (e.lnkcap_l0s(), e.lnkcap_l1()),
            (l0s, l1),
            "{ctx}: LnkCap ASPM"
        );
    }
}

/// LnkCtl ASPM against the decode and the `pcie_aspm` fields.
fn link_ctl_agrees(l: &Lspci, e: &Express, ps: &[Point], addr: &str, ctx: &str) {
    // LnkCtl: "ASPM L1 Enabled; ..." / "ASPM Disabled; ..."
    if let Some(ctl) = &l.lnkctl {
        let aspm = ctl.split(';').next().unwrap_or("");
        let want = match aspm {
            "ASPM Disabled" => (false, false),
            "ASPM L0s Enabled" => (true, false),
            "ASPM L1 Enabled" => (false, true),
            "ASPM L0s L1 Enabled" => (true, true),
            other => panic!("{ctx}: unknown LnkCtl {other:?}"),
        };
        assert_eq!((e.lnkctl_l0s(), e.lnkctl_l1()), want, "{ctx}: LnkCtl ASPM");
        if let Some(p) = points(ps, "pcie_aspm").find(|p| p.tags["address"] == *addr) {
            assert_eq!(
                int(p, "lnkctl_l1"),
                Some(i64::from(want.1)),
                "{ctx}: output lnkctl_l1"
            );
            assert_eq!(
                int(p, "lnkctl_l0s"),
                Some(i64::from(want.0)),
                "{ctx}: output lnkctl_l0s"
            );
            assert_eq!(string(p, "source").as_deref(), Some("config"));
        }
    }
}

/// LnkSta (speed, width, status bits) against the decode.
fn link_sta_agrees(l: &Lspci, e: &Express, ctx: &str) {
    // LnkSta: "Speed 5GT/s (downgraded), Width x1 (ok)"
    if let Some(sta) = &l.lnksta {
        let parts: Vec<&str> = sta.split(", ").collect();
        let sp = parts[0]
            .strip_prefix("Speed ")
            .map(|s| s.split(' ').next().unwrap_or(""));
        assert_eq!(e.speed_gts(), sp.and_then(speed), "{ctx}: current speed");
        let w = parts
            .iter()
            .find_map(|p| p.strip_prefix("Width x"))
            .and_then(|w| w.split(' ').next())
            .and_then(|w| w.parse::<u8>().ok());
        assert_eq!(Some(e.width()), w, "{ctx}: current width");
    }
    if let Some(bits) = &l.lnksta_bits {
        let on = plus_names(bits);
        assert_eq!(e.link_training(), on.contains("Train"), "{ctx}: LT");
        assert_eq!(e.dll_link_active(), on.contains("DLActive"), "{ctx}: DLLLA");
        assert_eq!(e.bw_mgmt_status(), on.contains("BWMgmt"), "{ctx}: LBMS");
        assert_eq!(
            e.autonomous_bw_status(),
            on.contains("ABWMgmt"),
            "{ctx}: LABS"
        );
    }
}

/// DevSta error bits against the decode and the `pcie_aer_status` fields.
fn devsta_agrees(l: &Lspci, e: &Express, ps: &[Point], addr: &str, ctx: &str) {
    if let Some(ds) = &l.devsta {
        let on = plus_names(ds);
        let got = [
            ("CorrErr", e.devsta_corr_err()),
            ("NonFatalErr", e.devsta_nonfatal_err()),
            ("FatalErr", e.devsta_fatal_err()),
            ("UnsupReq", e.devsta_unsupp_req()),
        ];
        for (n, v) in got {
            assert_eq!(v, on.contains(n), "{ctx}: DevSta {n}");
        }
        let p = one(ps, "pcie_aer_status", addr);
        assert_eq!(
            int(p, "devsta_corr_err"),
            Some(i64::from(on.contains("CorrErr"))),
            "{ctx}"
        );
        assert_eq!(
            int(p, "devsta_unsupp_req"),
            Some(i64::from(on.contains("UnsupReq"))),
            "{ctx}"
        );
    }
}

/// UESta/CESta against the decoded AER registers and `cor_status_names`.
fn aer_status_agrees(l: &Lspci, cs: &ConfigSpace, ps: &[Point], addr: &str, ctx: &str) {
    if let (Some(ue), Some(aer)) = (&l.uesta, &cs.aer) {
        // lspci names only the bits it knows; compare on those.
        let known = minus_or_plus(ue);
        let ours: BTreeSet<String> = bit_names(aer.uncor_status, &UNCOR_NAMES)
            .split(',')
            .filter(|n| known.contains(*n))
            .map(str::to_string)
            .collect();
        assert_eq!(ours, plus_names(ue), "{ctx}: UESta");
    }
    if let (Some(ce), Some(aer)) = (&l.cesta, &cs.aer) {
        let known = minus_or_plus(ce);
        let ours: BTreeSet<String> = bit_names(aer.cor_status, &COR_NAMES)
            .split(',')
            .filter(|n| known.contains(*n))
            .map(str::to_string)
            .collect();
        assert_eq!(ours, plus_names(ce), "{ctx}: CESta");
        let p = one(ps, "pcie_aer_status", addr);
        let out_names: BTreeSet<String> = string(p, "cor_status_names")
            .unwrap_or_default()
            .split(',')
            .filter(|n| known.contains(*n))
            .map(str::to_string)
            .collect();
        assert_eq!(out_names, plus_names(ce), "{ctx}: output cor_status_names");
    }
}

/// `L1SubCap: PCI-PM_L1.2+ PCI-PM_L1.1+ ASPM_L1.2+ ASPM_L1.1+ ...` and
/// `L1SubCtl1: ...` against the decode and the `pcie_aspm` fields.
fn l1_substates_agree(l: &Lspci, cs: &ConfigSpace, ps: &[Point], addr: &str, ctx: &str) {
    let (Some(cap), Some(ctl)) = (&l.l1subcap, &l.l1subctl1) else {
        assert!(cs.l1ss.is_none(), "{ctx}: L1SS decoded, lspci shows none");
        return;
    };
    let ss = cs.l1ss.as_ref().expect("lspci shows L1SS");
    let (cap, ctl) = (plus_names(cap), plus_names(ctl));
    let p = points(ps, "pcie_aspm")
        .find(|p| p.tags["address"] == addr)
        .expect("pcie_aspm line");
    for (lspci_name, field, decoded_cap, decoded_ctl) in [
        (
            "ASPM_L1.1",
            "aspm_l1_1",
            ss.cap_aspm_l1_1(),
            ss.ctl_aspm_l1_1(),
        ),
        (
            "ASPM_L1.2",
            "aspm_l1_2",
            ss.cap_aspm_l1_2(),
            ss.ctl_aspm_l1_2(),
        ),
        (
            "PCI-PM_L1.1",
            "pcipm_l1_1",
            ss.cap_pcipm_l1_1(),
            ss.ctl_pcipm_l1_1(),
        ),
        (
            "PCI-PM_L1.2",
            "pcipm_l1_2",
            ss.cap_pcipm_l1_2(),
            ss.ctl_pcipm_l1_2(),
        ),
    ] {
        assert_eq!(
            decoded_cap,
            cap.contains(lspci_name),
            "{ctx}: L1SubCap {lspci_name}"
        );
        assert_eq!(
            decoded_ctl,
            ctl.contains(lspci_name),
            "{ctx}: L1SubCtl1 {lspci_name}"
        );
        let want = |on: bool| Some(i64::from(on));
        assert_eq!(
            int(p, &format!("l1sscap_{field}")),
            want(decoded_cap),
            "{ctx}"
        );
        assert_eq!(
            int(p, &format!("l1ssctl_{field}")),
            want(decoded_ctl),
            "{ctx}"
        );
    }
}

fn source_of(root: &std::path::Path, addr: &str) -> String {
    std::fs::read_to_string(root.join("pciutils-sources.tsv"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(addr))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or("?")
        .to_string()
}

#[test]
fn dpc_status_agrees_with_lspci() {
    if !lspci_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pciutils (lspci)"
        );
        return;
    }
    let root = fixture("device-fell-off-bus");
    let out = Command::new("lspci")
        .args(["-A", "linux-sysfs", "-O"])
        .arg(format!("sysfs.path={}", root.join("sys/bus/pci").display()))
        .args(["-vvv", "-s", "00:1c.0"])
        .output()
        .expect("lspci");
    let text = String::from_utf8_lossy(&out.stdout);
    let sta = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("DpcSta:"))
        .expect("lspci decodes DPC");
    let on = plus_names(sta);
    let reason = sta
        .split_whitespace()
        .find_map(|t| t.strip_prefix("Reason:"))
        .and_then(|r| u16::from_str_radix(r, 16).ok())
        .expect("reason");
    let cfg = std::fs::read(root.join("sys/bus/pci/devices/0000:00:1c.0/config")).expect("config");
    let dpc = decode(&cfg).dpc.expect("vigil decodes DPC");
    assert_eq!(dpc.triggered(), on.contains("Trigger"));
    assert_eq!(dpc.trigger_reason(), reason);
    let ps = parse_lp(&String::from_utf8(run_once(&root, &[]).stdout).expect("utf8"));
    let p = one(&ps, "pcie_aer_status", "0000:00:1c.0");
    assert_eq!(int(p, "dpc_triggered"), Some(1));
    assert_eq!(int(p, "dpc_trigger_reason"), Some(i64::from(reason)));
}

/// lspci lists the functions of an Intel VMD domain (`10000:e1:00.0`) too:
/// vigil reports the same set of addresses.
#[test]
fn vmd_domains_listed_like_lspci() {
    if !lspci_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pciutils (lspci)"
        );
        return;
    }
    let root = fixture("intel-vmd");
    let out = Command::new("lspci")
        .args(["-A", "linux-sysfs", "-O"])
        .arg(format!("sysfs.path={}", root.join("sys/bus/pci").display()))
        .arg("-D")
        .output()
        .expect("lspci");
    let want: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(want.contains("10000:e1:00.0"), "{want:?}");
    let vout = run_once(&root, &[]);
    let got: BTreeSet<String> = parse_lp(&String::from_utf8(vout.stdout).expect("utf8"))
        .iter()
        .filter(|p| p.name == "pcie_device")
        .map(|p| p.tags["address"].clone())
        .collect();
    assert_eq!(got, want);
}
