//! A long-running process keeps what cannot change between collections
//! (lib/src/pci/memory.rs). Whatever changes between two triggers must show
//! in the next batch: after each change below, the batch of one execd
//! process equals a cold `--once` of the same tree, and differs from the
//! batch before it (the change is visible at all).

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::*;

const COLLECTORS: &str =
    "pcie_device,pcie_link,pcie_aer,pcie_aer_status,pcie_aspm,iommu_group,vfio_device,vigil";
const DEV: &str = "sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0";
const BUS: &str = "sys/bus/pci/devices";

struct Execd {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Execd {
    /// With `descriptors`, under that descriptor limit (soft and hard).
    fn start(root: &Path, descriptors: Option<u32>) -> Execd {
        let mut cmd = match descriptors {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = spawn_piped(
            cmd.args([
                "--refresh",
                "0",
                "--fake-time",
                FAKE_TIME,
                "--collectors",
                COLLECTORS,
            ])
            .arg("--root")
            .arg(root),
        );
        let rx = stdout_lines(child.stdout.take().expect("stdout"));
        Execd { child, lines: rx }
    }

    /// One trigger's batch: it ends with one `vigil_collector` line per collector.
    fn batch(&mut self) -> Vec<String> {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
        let (mut out, mut seen) = (Vec::new(), 0);
        while seen < COLLECTORS.split(',').count() {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a whole batch within 10 s");
            seen += usize::from(l.starts_with("vigil_collector,"));
            out.push(l);
        }
        out
    }
}

impl Drop for Execd {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn cold(root: &Path) -> Vec<String> {
    let out = run_once(root, &["--collectors", COLLECTORS]);
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write(path: PathBuf, text: &str) {
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn relink(link: PathBuf, target: &str) {
    std::fs::remove_file(&link).expect("remove link");
    symlink(target, &link).expect("symlink");
}

/// The config space file, read, edited by `edit` and written back.
fn edit_config(config: PathBuf, edit: impl FnOnce(&mut [u8])) {
    let mut b = std::fs::read(&config).expect("config");
    edit(&mut b);
    std::fs::write(&config, b).expect("write config");
}

/// Set the config space's Link Status width (PCI Express capability + 0x12).
fn set_link_width(config: PathBuf, lanes: u16) {
    edit_config(config, |b| {
        let mut at = usize::from(b[0x34]);
        while at != 0 && b[at] != 0x10 {
            at = usize::from(b[at + 1]);
        }
        assert_ne!(at, 0, "a PCI Express capability");
        let sta = at + 0x12;
        let v = u16::from_le_bytes([b[sta], b[sta + 1]]);
        let v = (v & !0x03f0) | (lanes << 4);
        b[sta..sta + 2].copy_from_slice(&v.to_le_bytes());
    });
}

/// The device directory replaced by a copy (a new inode, as sysfs gives a
/// device added again), with `edit` applied to the copy first. The bus link
/// is left as it was: in a replay tree only the directory tells.
fn replace_dir(root: &Path, edit: impl FnOnce(&Path)) {
    let dir = root.join(DEV);
    let new = root.join(format!("{DEV}.new"));
    let st = Command::new("cp").arg("-a").arg(&dir).arg(&new).status();
    assert!(st.expect("cp").success());
    edit(&new);
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::rename(&new, &dir).expect("rename");
}

/// A device removed and added again as sysfs does it: a new directory and a
/// new bus link.
fn readd(root: &Path, edit: impl FnOnce(&Path)) {
    let link = root.join(BUS).join("0000:02:00.0");
    let target = std::fs::read_link(&link).expect("link");
    std::fs::remove_file(&link).expect("rm link");
    replace_dir(root, edit);
    symlink(target, &link).expect("ln");
}

type Change = (&'static str, Box<dyn Fn(&Path)>);

/// The change that writes `text` to the device's `file`.
fn set(what: &'static str, file: &'static str, text: &'static str) -> Change {
    (what, Box::new(move |r| write(r.join(DEV).join(file), text)))
}

fn changes() -> Vec<Change> {
    let dev = |root: &Path, f: &str| root.join(DEV).join(f);
    vec![
        set("ASPM state", "link/l1_aspm", "1\n"),
        set(
            "d3cold_allowed written by the admin",
            "d3cold_allowed",
            "0\n",
        ),
        (
            "AER counter",
            Box::new(move |r| {
                let p = dev(r, "aer_dev_correctable");
                let t = std::fs::read_to_string(&p).expect("aer");
                write(
                    p,
                    &t.replacen("RxErr 0", "RxErr 7", 1).replacen(
                        "TOTAL_ERR_COR 0",
                        "TOTAL_ERR_COR 7",
                        1,
                    ),
                );
            }),
        ),
        (
            "current link width in config space",
            Box::new(move |r| set_link_width(dev(r, "config"), 2)),
        ),
        (
            "AER status in a capability past the first config read (headers kept)",
            Box::new(move |r| {
                edit_config(dev(r, "config"), |b| {
                    let aer = 0x420;
                    assert_eq!(&b[aer..aer + 2], [1, 0], "AER where this test expects it");
                    // Uncorrectable status: Completion Timeout.
                    b[aer + 4] |= 0x40;
                })
            }),
        ),
        (
            "rebound to another driver",
            Box::new(move |r| relink(dev(r, "driver"), "../../../../bus/pci/drivers/vfio-pci")),
        ),
        set(
            "reset_method written by the admin (read through the kept directory)",
            "reset_method",
            "bus\n",
        ),
        set("reset_method changed", "reset_method", "flr bus\n"),
        (
            "IOMMU group",
            Box::new(move |r| relink(dev(r, "iommu_group"), "../../../../kernel/iommu_groups/11")),
        ),
        set("driver_override written", "driver_override", "vfio-pci\n"),
        set("runtime-suspended", "power/runtime_status", "suspended\n"),
        set("runtime-resumed", "power/runtime_status", "active\n"),
        set("power state D3hot", "power_state", "D3hot\n"),
        set("power state D0", "power_state", "D0\n"),
        (
            "replaced at the same address (same IDs, another class and node)",
            Box::new(|r| {
                replace_dir(r, |d| {
                    write(d.join("class"), "0x030000\n");
                    write(d.join("numa_node"), "1\n");
                })
            }),
        ),
        (
            "removed and added again, bus link and all (another class)",
            Box::new(|r| readd(r, |d| write(d.join("class"), "0x030200\n"))),
        ),
        (
            "replaced in place by another model, its capability chain other past the first range",
            Box::new(move |r| {
                write(dev(r, "device"), "0x2204\n");
                edit_config(dev(r, "config"), |b| {
                    b[2..4].copy_from_slice(&0x2204u16.to_le_bytes());
                    // L1 PM Substates' header (0x258) now leads past AER
                    // (0x128, then 0x420) to 0x600: a kept chain would still find AER.
                    let at = 0x258;
                    let hdr = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                    assert_eq!(hdr >> 20, 0x128, "the chain this test expects");
                    let hdr = (hdr & 0x000f_ffff) | (0x600 << 20);
                    b[at..at + 4].copy_from_slice(&hdr.to_le_bytes());
                });
            }),
        ),
        (
            "replaced in place, another vendor in sysfs and the config header",
            Box::new(move |r| {
                write(dev(r, "vendor"), "0x1002\n");
                edit_config(dev(r, "config"), |b| {
                    b[0..2].copy_from_slice(&0x1002u16.to_le_bytes())
                });
            }),
        ),
        (
            "removed from the bus",
            Box::new(|r| std::fs::remove_file(r.join(BUS).join("0000:02:00.0")).expect("rm")),
        ),
        (
            "added back",
            Box::new(|r| {
                symlink(
                    "../../..//devices/pci0000:00/0000:00:1c.0/0000:02:00.0",
                    r.join(BUS).join("0000:02:00.0"),
                )
                .expect("ln")
            }),
        ),
        (
            "a new function added",
            Box::new(|r| {
                let new = r.join("sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.1");
                let st = Command::new("cp")
                    .arg("-a")
                    .arg(r.join(DEV))
                    .arg(&new)
                    .status();
                assert!(st.expect("cp").success());
                write(new.join("class"), "0x040300\n");
                symlink(
                    "../../..//devices/pci0000:00/0000:00:1c.0/0000:02:00.1",
                    r.join(BUS).join("0000:02:00.1"),
                )
                .expect("ln");
            }),
        ),
    ]
}

#[test]
fn every_change_between_two_triggers_shows_in_the_next_batch() {
    every_change_shows(None);
}

/// Past the budget of directories kept open (lib/src/pci/memory.rs: here
/// one of five), the others are opened each collection; nothing else differs.
#[test]
fn every_change_shows_with_few_descriptors_to_keep_directories() {
    every_change_shows(Some(514));
}

fn every_change_shows(descriptors: Option<u32>) {
    let (_tmp, root) = scratch_fixture("gpu-d3cold");
    let mut p = Execd::start(&root, descriptors);
    let mut before = p.batch();
    assert_eq!(before, cold(&root), "first batch = --once");
    assert_eq!(p.batch(), before, "nothing changed, nothing differs");
    for (what, change) in changes() {
        change(&root);
        let cold = cold(&root);
        let now = without_backfill(p.batch(), &cold);
        assert_ne!(now, before, "{what}: the change is visible at all");
        assert_eq!(now, cold, "{what}: the warm batch equals a cold read");
        before = now;
    }
}

/// A counter that appears is also written as 0 at the previous collection's
/// time (plugin/src/thin.rs), a line a cold read has no reason to write.
fn without_backfill(batch: Vec<String>, cold: &[String]) -> Vec<String> {
    let zero = |l: &str| {
        l.starts_with("pcie_aer,")
            && l.split(' ')
                .nth(1)
                .is_some_and(|f| f.split(',').all(|kv| kv.ends_with("=0i")))
    };
    batch
        .into_iter()
        .filter(|l| cold.contains(l) || !zero(l))
        .collect()
}

const FF_PORT: &str = "sys/devices/pci0000:00/0000:00:01.1";

/// Where AER counters are not counting (firmware-first: no `aer` port
/// service), a warm collection leaves known devices' counter files unread
/// (lib/src/pci/memory.rs): their counts would be dropped. When the OS takes
/// AER over, the next batch says the counts were not read, and the one after
/// has them.
#[test]
fn aer_counts_are_left_unread_while_not_counting_and_come_back() {
    let (_tmp, root) = scratch_fixture("edac-firmware-first");
    let mut p = Execd::start(&root, None);
    let first = p.batch();
    assert_eq!(first, cold(&root), "first batch = --once");
    let aer = |l: &String| l.starts_with("vigil_collector,collector=pcie_aer ");
    let status = first.iter().find(|l| aer(l)).expect("pcie_aer status");
    assert!(
        status.contains("unavailable=\"aer_not_native\""),
        "{status}"
    );

    // Garbage in a counter file: a read would count a parse error.
    let file = root.join(FF_PORT).join("aer_dev_correctable");
    let counts = std::fs::read_to_string(&file).expect("aer");
    write(file.clone(), "garbage\n");
    assert_ne!(cold(&root), first, "a cold read sees the garbage");
    assert_eq!(p.batch(), first, "not read: nothing differs");

    // The OS takes AER over (an `aer` service bound), counts bumped.
    write(file, &counts.replacen("RxErr 0", "RxErr 7", 1));
    let service = root.join(FF_PORT).join("0000:00:01.1:pcie002");
    std::fs::create_dir(&service).expect("service dir");
    std::fs::create_dir(root.join("sys/bus/pci_express/drivers/aer")).expect("aer driver");
    symlink(
        "../../../../bus/pci_express/drivers/aer",
        service.join("driver"),
    )
    .expect("ln");
    symlink(
        "../../../devices/pci0000:00/0000:00:01.1/0000:00:01.1:pcie002",
        root.join("sys/bus/pci_express/devices/0000:00:01.1:pcie002"),
    )
    .expect("ln");
    let cold = cold(&root);
    assert!(cold.iter().any(|l| l.contains("rx_err=7i")), "counted now");
    let once_unread = p.batch();
    let status = once_unread
        .iter()
        .find(|l| aer(l))
        .expect("pcie_aer status");
    assert!(
        status.contains("unavailable=\"not_counting_before\""),
        "{status}"
    );
    assert!(
        !once_unread.iter().any(|l| l.starts_with("pcie_aer,")),
        "no counts this once"
    );
    assert_eq!(
        without_backfill(p.batch(), &cold),
        cold,
        "then read, as a cold read"
    );
}

/// The threads of a long-running process's collection are kept for the
/// next (lib/src/jobs.rs): a warm trigger starts none, the same threads run
/// every batch.
#[test]
fn warm_triggers_start_no_thread() {
    let (_tmp, root) = scratch_fixture("gpu-d3cold");
    let mut p = Execd::start(&root, None);
    // Each thread by id, with its name.
    let tasks = |p: &Execd| -> std::collections::BTreeSet<(String, String)> {
        let dir = format!("/proc/{}/task", p.child.id());
        std::fs::read_dir(&dir)
            .expect("task list")
            .filter_map(|e| {
                let tid = e.ok()?.file_name().to_string_lossy().into_owned();
                let comm = std::fs::read_to_string(format!("{dir}/{tid}/comm")).ok()?;
                Some((tid, comm.trim().to_string()))
            })
            .collect()
    };
    p.batch();
    p.batch();
    let warm = tasks(&p);
    for worker in ["vigil-pci", "vigil-observer", "vigil-vfio"] {
        assert!(
            warm.iter().any(|(_, name)| name == worker),
            "{worker} kept between batches: {warm:?}"
        );
    }
    for _ in 0..5 {
        p.batch();
    }
    assert_eq!(tasks(&p), warm, "no thread started or ended");
}
