//! Nothing stalls the heartbeat: reads made to block (as a device in reset,
//! pmxcfs without quorum or a QEMU stuck on its mmap lock do) cost at most
//! the collection's deadline, are reported `timeout`, and do not pile
//! threads up over many collections.
//!
//! The blocking is real (the reading thread sleeps until released) and
//! comes from `read::testing`, which only tests arm. Tests here run one at a
//! time: they count this process's threads.
#![allow(
    clippy::disallowed_methods,
    reason = "a test builds its root and counts its threads; the library reads only through read.rs"
)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_collector::read::testing;
use vigil_collector::{collect, Clock, Collector, Root, Selection, Snapshot};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Generous for a loaded 2-core CI machine; the deadline itself is 1.8 s.
const WALL_BOUND: Duration = Duration::from_secs(5);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// A root with `n` awake endpoints on one bus (plain directories: no
/// topology), a command line, a heartbeat and a Proxmox VM config.
fn tree(n: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = tmp.path().join("root");
    for i in 0..n {
        let d = r.join(format!("sys/bus/pci/devices/0000:01:{i:02x}.0"));
        write(&d.join("vendor"), b"0x8086\n");
        write(&d.join("device"), b"0x1533\n");
        write(&d.join("class"), b"0x020000\n");
        write(&d.join("power_state"), b"D0\n");
        write(&d.join("power/runtime_status"), b"active\n");
        let mut cfg = vec![0u8; 64];
        cfg[..4].copy_from_slice(&[0x86, 0x80, 0x33, 0x15]);
        write(&d.join("config"), &cfg);
    }
    write(
        &r.join("proc/cmdline"),
        b"BOOT_IMAGE=/vmlinuz intel_iommu=on\n",
    );
    write(&r.join("proc/uptime"), b"100.00 50.00\n");
    write(
        &r.join("proc/sys/kernel/random/boot_id"),
        b"3b1f4a2c-8e0d-4c55-9b7a-2f6e1d0c9a88\n",
    );
    write(
        &r.join("etc/pve/qemu-server/100.conf"),
        b"hostpci0: 0000:01:00.0\n",
    );
    (tmp, r)
}

fn device(r: &Path, i: usize, file: &str) -> PathBuf {
    r.join(format!("sys/bus/pci/devices/0000:01:{i:02x}.0/{file}"))
}

fn timed(root: &Root) -> (Snapshot, Duration) {
    let t = Instant::now();
    let s = collect(root, &Selection::all(), Clock::System);
    (s, t.elapsed())
}

fn unavailable(s: &Snapshot, c: Collector) -> Vec<String> {
    s.status[&c].unavailable.iter().cloned().collect()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Releases the stalls when the test ends, even by a failed assertion, so
/// blocked threads finish.
struct Stalls(Vec<PathBuf>);

impl Stalls {
    fn on(paths: Vec<PathBuf>) -> Stalls {
        for p in &paths {
            testing::stall(p.clone());
        }
        Stalls(paths)
    }
}

impl Drop for Stalls {
    fn drop(&mut self) {
        for p in &self.0 {
            testing::release(p);
        }
    }
}

#[test]
fn ten_stuck_endpoints_cost_one_deadline_and_say_timeout() {
    let _g = serial();
    let (_tmp, r) = tree(12);
    let _stalls = Stalls::on((0..10).map(|i| device(&r, i, "config")).collect());
    let root = Root::new(&r);
    let (s, took) = timed(&root);
    assert!(took < WALL_BOUND, "took {took:?}");
    assert!(
        unavailable(&s, Collector::PcieDevice).contains(&"timeout".to_string()),
        "{:?}",
        s.status[&Collector::PcieDevice]
    );
    let hb = s.heartbeat.as_ref().expect("heartbeat always written");
    assert_eq!(hb.uptime_s, Some(100.0));
    // Every device still reports, the stuck ones with nothing that wakes read.
    let pci = s.pci.as_ref().expect("pci");
    assert_eq!(pci.devices.len(), 12);
    assert!(pci.devices["0000:01:00.0"].link_skipped);
    // Each collection learns which devices are stuck (one deadline's worth)
    // and never waits on them again: soon a collection waits on none.
    let mut quick = None;
    for n in 0..10 {
        let (s, took) = timed(&root);
        assert!(took < WALL_BOUND, "collection {n} took {took:?}");
        assert!(unavailable(&s, Collector::PcieDevice).contains(&"timeout".to_string()));
        if took < Duration::from_millis(500) {
            quick = Some(s);
            break;
        }
    }
    let s = quick.expect("stuck devices are remembered");
    let pci = s.pci.as_ref().expect("pci");
    assert!(
        pci.devices["0000:01:0b.0"].config.is_some(),
        "a healthy one is read"
    );
    assert!(
        pci.devices["0000:01:05.0"].config.is_none(),
        "a stuck one is not"
    );
}

#[test]
fn a_stuck_config_does_not_pile_threads_over_thirty_collections() {
    let _g = serial();
    let (_tmp, r) = tree(3);
    let _stalls = Stalls::on(vec![device(&r, 1, "config")]);
    let root = Root::new(&r);
    let (s, took) = timed(&root);
    assert!(took < WALL_BOUND, "took {took:?}");
    assert!(unavailable(&s, Collector::PcieDevice).contains(&"timeout".to_string()));
    let after_first = threads();
    for n in 0..30 {
        let (s, took) = timed(&root);
        assert!(took < WALL_BOUND, "collection {n} took {took:?}");
        assert!(s.heartbeat.is_some());
        assert!(unavailable(&s, Collector::PcieDevice).contains(&"timeout".to_string()));
    }
    // Worker threads of a finished collection may still be exiting: allow a
    // few, never one per collection.
    let end = threads();
    assert!(end <= after_first + 4, "threads {after_first} -> {end}");
}

#[test]
fn blocked_reads_outside_pci_are_reported_and_the_heartbeat_still_comes() {
    let _g = serial();
    let (_tmp, r) = tree(2);
    let stalled = vec![
        r.join("proc/cmdline"),
        r.join("etc/pve/qemu-server/100.conf"),
        r.join("proc/uptime"),
    ];
    let _stalls = Stalls::on(stalled);
    let root = Root::new(&r);
    let start = threads();
    for n in 0..5 {
        let (s, took) = timed(&root);
        assert!(took < WALL_BOUND, "collection {n} took {took:?}");
        let hb = s.heartbeat.as_ref().expect("heartbeat line always written");
        // The stuck uptime is omitted, not guessed; once it is known to be
        // stuck, it is refused at once and the boot id comes again.
        assert_eq!(hb.uptime_s, None);
        assert_eq!(hb.boot_id.is_some(), n > 0, "collection {n}");
        for c in [Collector::PciePlatform, Collector::Vigil] {
            assert!(
                unavailable(&s, c).contains(&"timeout".to_string()),
                "{c:?}: {:?}",
                s.status[&c]
            );
        }
        // The PCI tree does not depend on the stuck files.
        assert_eq!(s.pci.as_ref().map(|p| p.devices.len()), Some(2));
    }
    let end = threads();
    assert!(end <= start + 6, "threads {start} -> {end}");
}

/// One device in reset costs one config deadline; every other device is
/// still read in the same collection.
#[test]
fn one_stuck_device_does_not_cost_the_others() {
    let _g = serial();
    let (_tmp, r) = tree(12);
    let _stalls = Stalls::on(vec![device(&r, 0, "config")]);
    let (s, took) = timed(&Root::new(&r));
    assert!(took < WALL_BOUND, "took {took:?}");
    let pci = s.pci.as_ref().expect("pci");
    assert!(pci.devices["0000:01:00.0"].config.is_none());
    for i in 1..12 {
        let a = format!("0000:01:{i:02x}.0");
        assert!(pci.devices[&a].config.is_some(), "{a} read");
    }
    assert!(unavailable(&s, Collector::PcieDevice).contains(&"timeout".to_string()));
}

/// A stuck vfio walk is reported on every collector that needs it, the
/// IOMMU fields of `pcie_platform` included (collector table), and on no other.
#[test]
fn a_stuck_vfio_walk_is_reported_on_each_collector_that_needs_it() {
    let _g = serial();
    let (_tmp, r) = tree(2);
    let _stalls = Stalls::on(vec![r.join("etc/pve/qemu-server/100.conf")]);
    let (s, took) = timed(&Root::new(&r));
    assert!(took < WALL_BOUND, "took {took:?}");
    for c in Collector::ALL {
        let told = unavailable(&s, c).contains(&"timeout".to_string());
        assert_eq!(
            told,
            c.reads(vigil_collector::Source::Vfio),
            "{c:?}: {:?}",
            s.status[&c]
        );
    }
}
