//! The volume budget: at most 1 KB of line protocol per PCI function per
//! collection by default, on the pciutils captures and on a generated
//! 460-function tree, with nothing a query needs left out (issue 15).
//!
//! A long-running process (Telegraf's execd) writes everything in its first
//! collection, then state every collection and facts on change and at the
//! refresh (5 min, each series on its own phase). Per collection, at a 10 s
//! interval: one steady collection plus a thirtieth of the facts.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

use crate::util::*;

#[allow(dead_code)]
#[path = "../../tools/genroot.rs"]
mod genroot;

const BUDGET_PER_FUNCTION: usize = 1000;
/// Collections per refresh at Telegraf's default 10 s interval and `--refresh 5m`.
const PER_REFRESH: usize = 30;
/// Everything but kernel events, which stream on their own.
const COLLECTORS: &str = "pcie_device,pcie_link,pcie_aer,pcie_aer_status,pcie_aspm,pcie_platform,iommu_group,vfio_device,crash_forensics,vigil";

/// The first and the second collection of one execd process, as text.
fn two_collections(root: &Path, extra: &[&str]) -> (String, String) {
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["--collectors", COLLECTORS, "--root"])
            .arg(root)
            .args(extra),
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    // A collection ends with its vigil_collector lines, the last measurement.
    let mut read_one = |stdin: &mut std::process::ChildStdin| {
        stdin.write_all(b"\n").expect("trigger");
        stdin.flush().expect("flush");
        let mut text = String::new();
        let mut collectors = 0;
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).expect("read") > 0, "EOF mid-batch");
            text.push_str(&line);
            if line.starts_with("vigil_collector,") {
                collectors += 1;
                if collectors == COLLECTORS.split(',').count() {
                    return text;
                }
            }
        }
    };
    let first = read_one(&mut stdin);
    let second = read_one(&mut stdin);
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    (first, second)
}

fn functions(ps: &[Point]) -> usize {
    points(ps, "pcie_device").count()
}

/// The series of a measurement, by tags.
fn series(ps: &[Point], name: &str) -> BTreeSet<Vec<(String, String)>> {
    points(ps, name)
        .map(|p| p.tags.clone().into_iter().collect())
        .collect()
}

fn check_budget(label: &str, root: &Path, want_functions: usize) {
    let once = run_once(root, &["--collectors", COLLECTORS]);
    assert!(once.status.success());
    let once = String::from_utf8(once.stdout).expect("utf-8");
    let (first, second) = two_collections(root, &["--fake-time", FAKE_TIME]);
    let (p1, p2) = (parse_lp(&first), parse_lp(&second));
    let n = functions(&p1);
    assert_eq!(n, want_functions, "{label}");
    let per_collection = second.len() + first.len() / PER_REFRESH;
    eprintln!(
        "{label}: {n} functions; bytes per function: --once {}, first collection {}, steady {}, steady + refresh share {}",
        once.len() / n,
        first.len() / n,
        second.len() / n,
        per_collection / n
    );
    assert!(
        per_collection <= BUDGET_PER_FUNCTION * n,
        "{label}: {} bytes per function per collection",
        per_collection / n
    );
    // Nothing a query needs is missing from a steady collection: every
    // series is there, with the fields alerts and rate panels read.
    for m in [
        "pcie_device",
        "pcie_link",
        "pcie_aer",
        "vigil",
        "crash_forensics",
    ] {
        assert_eq!(series(&p1, m), series(&p2, m), "{label}: {m} series");
    }
    for (m, f) in [
        ("pcie_aer", "total"),
        ("pcie_link", "width_downgraded"),
        ("pcie_link", "link_up"),
        ("pcie_device", "d_state"),
        ("vigil", "uptime_s"),
        ("crash_forensics", "readiness_score"),
    ] {
        let had = points(&p1, m).filter(|p| p.fields.contains_key(f)).count();
        let has = points(&p2, m).filter(|p| p.fields.contains_key(f)).count();
        assert_eq!(had, has, "{label}: {m}.{f} in every collection");
    }
    // The first collection is the whole picture, as --once.
    assert_eq!(p1.len(), parse_lp(&once).len(), "{label}");
}

#[test]
fn budget_on_the_pciutils_captures() {
    check_budget("pciutils-captures", &fixture("pciutils-captures"), 23);
}

#[test]
fn budget_on_a_generated_460_function_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    genroot::generate(&repo(), &root, 460).expect("genroot");
    check_budget("genroot 460", &root, 460);
}

/// An AER counter's first increase is visible to a derivative: the
/// collection in which it appears writes its 0 at the previous collection's time.
#[test]
fn a_counter_that_appears_is_zero_one_collection_earlier() {
    let (_tmp, root) = scratch_fixture("pciutils-captures");
    let file = root.join("sys/devices/pci0005:00/0005:00:1c.0/aer_dev_correctable");
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["--collectors", "pcie_aer", "--root"])
            .arg(&root),
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut batch = |stdin: &mut std::process::ChildStdin| -> Vec<Point> {
        stdin.write_all(b"\n").expect("trigger");
        stdin.flush().expect("flush");
        let mut text = String::new();
        while !text.ends_with('\n')
            || !text
                .lines()
                .last()
                .unwrap_or("")
                .starts_with("vigil_collector,")
        {
            assert!(out.read_line(&mut text).expect("read") > 0);
        }
        parse_lp(&text)
    };
    let cor = |ps: &[Point]| -> Vec<Point> {
        points(ps, "pcie_aer")
            .filter(|p| p.tags["address"] == "0005:00:1c.0" && p.tags["severity"] == "correctable")
            .cloned()
            .collect()
    };
    let b1 = batch(&mut stdin);
    let before = cor(&b1);
    assert_eq!(before.len(), 1);
    assert_eq!(int(&before[0], "total"), Some(0));
    assert_eq!(int(&before[0], "rx_err"), None, "zeros are left off");
    let t1 = before[0].ts;
    let text = std::fs::read_to_string(&file).expect("read");
    let text = text
        .replace("RxErr 0", "RxErr 2")
        .replace("TOTAL_ERR_COR 0", "TOTAL_ERR_COR 1");
    std::fs::write(&file, text).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let after = cor(&batch(&mut stdin));
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    assert_eq!(after.len(), 2, "{after:?}");
    let (zero, now) = (&after[0], &after[1]);
    assert_eq!(
        zero.ts, t1,
        "the zero lands on the previous collection's point"
    );
    assert_eq!(int(zero, "rx_err"), Some(0));
    assert!(now.ts > t1);
    assert_eq!((int(now, "rx_err"), int(now, "total")), (Some(2), Some(1)));
}

#[test]
fn aer_detail_choices() {
    let root = fixture("old-kernel-formats");
    let lines = |detail: &str| {
        let out = run_once(&root, &["--aer-detail", detail, "--collectors", "pcie_aer"]);
        parse_lp(&String::from_utf8(out.stdout).expect("utf-8"))
    };
    let fields = |ps: &[Point]| -> usize { points(ps, "pcie_aer").map(|p| p.fields.len()).sum() };
    let (totals, nonzero, all) = (lines("totals"), lines("nonzero"), lines("all"));
    assert!(points(&totals, "pcie_aer").all(|p| p
        .fields
        .keys()
        .all(|k| k == "total" || k == "rootport_total")));
    assert!(fields(&totals) < fields(&nonzero) && fields(&nonzero) < fields(&all));
    // Every non-zero counter of `all` is in `nonzero`, with its value.
    for p in points(&all, "pcie_aer") {
        let q = points(&nonzero, "pcie_aer")
            .find(|q| q.tags == p.tags)
            .expect("same series");
        for (k, v) in &p.fields {
            if *v != Val::I(0) {
                assert_eq!(q.fields.get(k), Some(v), "{k}");
            }
        }
    }
}

#[test]
fn device_filters_select_by_address_class_and_vendor() {
    let root = fixture("pciutils-captures");
    let devices = |args: &[&str]| -> BTreeSet<(String, String, String)> {
        let out = run_once(&root, args);
        assert!(out.status.success());
        let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf-8"));
        let addrs: BTreeSet<String> = ps
            .iter()
            .filter_map(|p| p.tags.get("address").cloned())
            .collect();
        let devs: BTreeSet<(String, String, String)> = points(&ps, "pcie_device")
            .map(|p| {
                (
                    p.tags["address"].clone(),
                    p.tags.get("class_id").cloned().unwrap_or_default(),
                    p.tags.get("vendor_id").cloned().unwrap_or_default(),
                )
            })
            .collect();
        // No other measurement names a device left out.
        let kept: BTreeSet<String> = devs.iter().map(|d| d.0.clone()).collect();
        assert_eq!(addrs, kept, "{args:?}");
        devs
    };
    let all = devices(&[]);
    let bridges = devices(&["--class", "06"]);
    assert!(!bridges.is_empty() && bridges.iter().all(|d| d.1.starts_with("06")));
    let no_bridges = devices(&["--class", "!06"]);
    assert_eq!(bridges.len() + no_bridges.len(), all.len());
    let nvidia = devices(&["--vendor", "10de"]);
    assert!(!nvidia.is_empty() && nvidia.iter().all(|d| d.2 == "10de"));
    let one = all.iter().next().expect("a device").0.clone();
    assert_eq!(devices(&["--address", &one]).len(), 1);
    let both = devices(&["--class", "03,0108", "--vendor", "!8086"]);
    assert!(both
        .iter()
        .all(|d| (d.1.starts_with("03") || d.1 == "0108") && d.2 != "8086"));
}
