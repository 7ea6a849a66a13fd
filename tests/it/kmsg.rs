//! Kernel hardware events followed live from /dev/kmsg (a capture file here).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::*;

struct Vigil {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

fn spawn(root: &std::path::Path) -> Vigil {
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["--fake-time", FAKE_TIME, "--root"])
            .arg(root),
    );
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), l)).is_err() {
                return;
            }
        }
    });
    Vigil { child, lines: rx }
}

impl Vigil {
    fn drain(&self, wait: Duration) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok((_, l)) = self.lines.recv_timeout(wait) {
            v.push(l);
        }
        v
    }
    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn append(root: &std::path::Path, rec: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("dev/kmsg"))
        .expect("kmsg");
    f.write_all(rec.as_bytes()).expect("append");
}

#[test]
fn events_stream_without_a_trigger_and_new_ones_arrive_within_a_second() {
    let (_tmp, root) = scratch_fixture("device-fell-off-bus");
    let mut v = spawn(&root);
    // The ring replays at start: 7 hardware events (not the enumeration line, not the
    // filesystem), nothing else, no stdin needed.
    let replay = v.drain(Duration::from_millis(800));
    assert_eq!(replay.len(), 7, "{replay:?}");
    assert!(replay.iter().all(|l| l.starts_with("kernel_event,")));
    let sent = Instant::now();
    append(
        &root,
        "0,3000,86400000000,-;watchdog: Watchdog detected hard LOCKUP on cpu 5\n",
    );
    let (at, line) = v
        .lines
        .recv_timeout(Duration::from_secs(2))
        .expect("the new event");
    assert!(
        at.duration_since(sent) < Duration::from_secs(1),
        "took {:?}",
        at.duration_since(sent)
    );
    assert!(line.starts_with("kernel_event,category=lockup "), "{line}");
    // Kernel time: btime 1699913600 + usec 86400 s + seq 3000 mod 1000 ns.
    assert!(line.ends_with(" 1700000000000000000"), "{line}");
    assert!(line.contains("seq=3000i"), "{line}");
    // A batch is whole: its lines come together, and old events are not repeated.
    v.child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"\n")
        .expect("trigger");
    let batch = v.drain(Duration::from_millis(800));
    assert!(!batch.is_empty());
    assert!(
        batch.iter().all(|l| !l.starts_with("kernel_event,")),
        "no replay within a process"
    );
    let ps = parse_lp(&batch.join("\n"));
    let st = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "kernel_event")
        .expect("status");
    assert_eq!(int(st, "success"), Some(1));
    v.stop();
}

#[test]
fn a_storm_is_rate_limited_and_counted() {
    let (_tmp, root) = scratch_fixture("device-fell-off-bus");
    let mut v = spawn(&root);
    let replay = v.drain(Duration::from_millis(600));
    let is_aer = |l: &&String| l.starts_with("kernel_event,") && l.contains("category=aer ");
    let replayed_aer = replay.iter().filter(is_aer).count();
    assert_eq!(replayed_aer, 4, "the ring's fatal AER report, whole");
    let mut storm = String::new();
    for i in 0..100 {
        storm.push_str(&format!("4,{},{},-;pcieport 0000:00:1c.0: AER: Correctable error message received from 0000:02:00.0\n", 5000 + i, 86_400_000_000u64 + i));
    }
    append(&root, &storm);
    let got = v.drain(Duration::from_millis(800));
    let aer = got.iter().filter(is_aer).count();
    assert_eq!(
        aer, 20,
        "burst of 20 per category and device per 10 s of kernel time; the replay spent none of it"
    );
    v.child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"\n")
        .expect("trigger");
    let batch = v.drain(Duration::from_millis(800));
    let ps = parse_lp(&batch.join("\n"));
    let sup = points(&ps, "kernel_event")
        .find(|p| p.fields.contains_key("suppressed"))
        .expect("suppressed summary");
    assert_eq!(
        (sup.tags["category"].as_str(), int(sup, "suppressed")),
        ("aer", Some(80))
    );
    assert_eq!(
        sup.tags.get("address").map(String::as_str),
        Some("0000:00:1c.0")
    );
    // At the kernel time of the last event held back (seq 5099, 86400000099 us).
    assert_eq!(
        sup.ts,
        Some(1_699_913_600_000_000_000 + 86_400_000_099_000 + 99)
    );
    v.stop();
}

#[test]
fn once_prints_the_ring_and_unprivileged_gets_a_reason() {
    let out = run_once(
        &fixture("device-fell-off-bus"),
        &["--collectors", "kernel_event"],
    );
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    assert_eq!(points(&ps, "kernel_event").count(), 7);
    let xid = points(&ps, "kernel_event")
        .find(|p| p.tags["category"] == "gpu_xid")
        .expect("xid");
    assert_eq!(
        xid.tags.get("address").map(String::as_str),
        Some("0000:02:00.0")
    );
    // kernel time: btime + usec (86391 s after boot) + seq 2007 mod 1000 in ns
    assert_eq!(
        xid.ts,
        Some(1_699_913_600_000_000_000 + 86_391_000_000_000 + 7)
    );

    let Some((_tmp, root)) = unprivileged_copy("device-fell-off-bus", "dev/kmsg", 0o600) else {
        return;
    };
    let out = as_nobody()
        .args(["--fake-time", FAKE_TIME, "--root"])
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.as_mut().map(|s| s.write_all(b"\n"));
            std::thread::sleep(Duration::from_millis(500));
            drop(c.stdin.take());
            c.wait_with_output()
        })
        .expect("run as nobody");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("permission denied"))
            .count(),
        1,
        "one warning: {err}"
    );
    assert!(err
        .lines()
        .all(|l| l.starts_with("W! ") || l.starts_with("I! ")));
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let st = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "kernel_event")
        .expect("status");
    assert_eq!(string(st, "unavailable").as_deref(), Some("permission"));
    assert!(points(&ps, "pcie_device").count() > 0, "metrics go on");
    // --once reads the ring itself: the same single warning and reason.
    let once = as_nobody()
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(&root)
        .output()
        .expect("once as nobody");
    assert_eq!(once.status.code(), Some(0));
    let err = String::from_utf8_lossy(&once.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("W! ") && l.contains("permission denied"))
            .count(),
        1,
        "{err}"
    );
    let ps = parse_lp(&String::from_utf8(once.stdout).expect("utf8"));
    let st = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "kernel_event")
        .expect("status");
    assert_eq!(string(st, "unavailable").as_deref(), Some("permission"));
}

// ---------------------------------------------------------------------------
// The classifier judged on real kernel formats and real boots (tests/data/kmsg).

/// A root holding only `proc/stat` (btime) and `dev/kmsg` with these raw records.
fn ring_root(records: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(tmp.path().join("proc")).expect("proc");
    std::fs::create_dir_all(tmp.path().join("dev")).expect("dev");
    std::fs::write(
        tmp.path().join("proc/stat"),
        "cpu 1 2 3\nbtime 1699913600\n",
    )
    .expect("stat");
    std::fs::write(tmp.path().join("dev/kmsg"), records).expect("kmsg");
    tmp
}

fn once_events(root: &std::path::Path) -> (Vec<Point>, Output) {
    let out = run_once(root, &["--collectors", "kernel_event"]);
    let ps = parse_lp(&String::from_utf8_lossy(&out.stdout));
    (ps, out)
}

fn kmsg_data(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/data/kmsg").join(name)).expect("data")
}

/// `[ 12.345678] text` lines of a boot log as kmsg records at `level`.
fn boot_records(text: &str, level: u8, first_seq: u64) -> (String, usize) {
    let mut out = String::new();
    let mut n = 0;
    for l in text.lines().filter(|l| l.starts_with('[')) {
        let Some((ts, msg)) = l[1..].split_once("] ") else {
            continue;
        };
        let usec = (ts.trim().parse::<f64>().unwrap_or(0.0) * 1e6) as u64;
        let msg = msg.replace('\\', "\\x5c");
        out.push_str(&format!(
            "{level},{},{usec},-;{msg}\n",
            first_seq + n as u64
        ));
        n += 1;
    }
    (out, n)
}

struct Figures {
    lines: usize,
    events: usize,
    specific: Vec<String>,
}

fn judge_boots(level: u8) -> Figures {
    let mut f = Figures {
        lines: 0,
        events: 0,
        specific: Vec::new(),
    };
    let files = [
        "boot-vmd-laptop.txt",
        "boot-nvidia-desktop.txt",
        "boot-proxmox-passthrough.txt",
        "boot-init-lines.txt",
    ];
    for name in files {
        let (recs, n) = boot_records(&kmsg_data(name), level, 1);
        let tmp = ring_root(&recs);
        let (ps, out) = once_events(tmp.path());
        assert_eq!(out.status.code(), Some(0));
        f.lines += n;
        for p in points(&ps, "kernel_event") {
            f.events += 1;
            if p.tags["category"] != "other" {
                f.specific
                    .push(format!("{name}: {:?}", string(p, "message")));
            }
        }
    }
    f
}

#[test]
fn ordinary_boots_stay_silent() {
    let info = judge_boots(6);
    let warn = judge_boots(4);
    eprintln!(
        "FIGURES boots: {} lines; at their likely level (info): {} events = {:.2} per 100 lines; \
         all read as warnings (worst case): {} events = {:.2} per 100",
        info.lines,
        info.events,
        100.0 * info.events as f64 / info.lines as f64,
        warn.events,
        100.0 * warn.events as f64 / warn.lines as f64,
    );
    assert!(info.events * 100 <= info.lines, "{} events", info.events);
    assert!(info.specific.is_empty(), "{:?}", info.specific);
    assert!(warn.specific.is_empty(), "{:?}", warn.specific);
}

#[test]
fn every_listed_error_shape_is_filed_with_its_device() {
    let data = kmsg_data("positive.tsv");
    let mut recs = String::new();
    let mut expected = std::collections::BTreeMap::new();
    // One second apart: the storm limit never hides one of them.
    for (i, l) in data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .enumerate()
    {
        let f: Vec<&str> = l.split('\t').collect();
        let seq = i as u64 + 1;
        recs.push_str(&format!("{},{seq},{},-;{}\n", f[0], seq * 1_000_000, f[3]));
        if let Some(dev) = f.get(4) {
            recs.push_str(&format!(" SUBSYSTEM=pci\n DEVICE={dev}\n"));
        }
        let addr = (f[2] != "-").then(|| f[2].to_string());
        expected.insert(seq as i64, (f[1].to_string(), addr, f[3].to_string()));
    }
    let tmp = ring_root(&recs);
    let (ps, _) = once_events(tmp.path());
    let mut right = (0, 0);
    let mut wrong = Vec::new();
    for (seq, (cat, addr, msg)) in &expected {
        let got = points(&ps, "kernel_event").find(|p| int(p, "seq") == Some(*seq));
        let got_cat = got.map(|p| p.tags["category"].clone());
        let got_addr = got.and_then(|p| p.tags.get("address").cloned());
        let cat_ok = got_cat.as_deref() == Some(cat.as_str());
        if cat_ok {
            right.0 += 1;
        }
        if cat_ok && got_addr == *addr {
            right.1 += 1;
        } else {
            wrong.push(format!(
                "{msg}: got {got_cat:?} {got_addr:?}, want {cat} {addr:?}"
            ));
        }
    }
    let n = expected.len();
    eprintln!(
        "FIGURES positives: {n} records; category right {} ({:.1}%); category and address right {} ({:.1}%)",
        right.0,
        100.0 * right.0 as f64 / n as f64,
        right.1,
        100.0 * right.1 as f64 / n as f64
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    let times: std::collections::BTreeSet<_> = points(&ps, "kernel_event").map(|p| p.ts).collect();
    assert_eq!(
        times.len(),
        points(&ps, "kernel_event").count(),
        "one point per event"
    );
}

#[test]
fn records_in_one_microsecond_get_distinct_points_and_a_replay_the_same_ones() {
    let mut recs = String::new();
    for (i, line) in [
        "pcieport 0000:00:1c.0: AER: Uncorrectable (Fatal) error message received from 0000:02:00.0",
        "nvidia 0000:02:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Requester ID)",
        "nvidia 0000:02:00.0:   device [10de:1d10] error status/mask=00004000/00000000",
        "nvidia 0000:02:00.0:    [14] CmpltTO                (First)",
    ]
    .iter()
    .enumerate()
    {
        recs.push_str(&format!("3,{},5000000,-;{line}\n", 880 + i));
    }
    let tmp = ring_root(&recs);
    let (a, _) = once_events(tmp.path());
    let (b, _) = once_events(tmp.path());
    let ts = |ps: &[Point]| points(ps, "kernel_event").map(|p| p.ts).collect::<Vec<_>>();
    let t = ts(&a);
    assert_eq!(t.len(), 4);
    let unique: std::collections::BTreeSet<_> = t.iter().collect();
    assert_eq!(unique.len(), 4, "{t:?}");
    assert_eq!(t, ts(&b), "a replay writes the same points");
    // btime + usec, plus the sequence number modulo 1000 in nanoseconds.
    assert!(t.contains(&Some(1_699_913_605_000_000_880)), "{t:?}");
}

#[test]
fn out_of_range_times_and_garbage_are_counted_not_written() {
    let recs =
        "0,1,18446744073709551615,-;watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [x:1]\n\
                garbage without a header\n\
                0,2,1000000,-;watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [x:1]\n";
    let tmp = ring_root(recs);
    let (ps, _) = once_events(tmp.path());
    assert_eq!(points(&ps, "kernel_event").count(), 1);
    let st = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "kernel_event")
        .expect("status");
    assert_eq!(
        int(st, "errors"),
        Some(2),
        "the huge usec and the garbage line"
    );
}

#[test]
fn without_btime_events_are_unavailable_not_1970() {
    let tmp = ring_root("0,1,1000000,-;watchdog: Watchdog detected hard LOCKUP on cpu 5\n");
    std::fs::remove_file(tmp.path().join("proc/stat")).expect("rm");
    let (ps, _) = once_events(tmp.path());
    assert_eq!(points(&ps, "kernel_event").count(), 0);
    let st = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "kernel_event")
        .expect("status");
    assert_eq!(string(st, "unavailable").as_deref(), Some("boot_time"));
}

#[test]
fn userspace_records_are_never_events() {
    // facility 3 (daemon), warning: what systemd-udevd writes to /dev/kmsg.
    let tmp = ring_root("28,1,1000000,-;systemd-udevd[412]: 0000:03:00.0: Worker [415] processing SEQNUM=2345 is taking a long time\n");
    let (ps, _) = once_events(tmp.path());
    assert_eq!(points(&ps, "kernel_event").count(), 0);
}

#[test]
fn a_fatal_error_after_a_storm_of_another_device_is_written() {
    let mut recs = String::new();
    for i in 0..25u64 {
        recs.push_str(&format!(
            "4,{},{},-;pcieport 0000:00:1c.5: AER: Corrected error received: 0000:00:1c.5\n",
            100 + i,
            1_000_000 + i
        ));
    }
    recs.push_str("3,200,1000100,-;pcieport 0000:40:01.2: AER: Uncorrectable (Fatal) error message received from 0000:41:00.0\n");
    recs.push_str("3,201,1000101,-;nvme 0000:41:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Requester ID)\n");
    recs.push_str("3,202,1000102,-;nvme 0000:41:00.0:   device [144d:a808] error status/mask=00004000/00000000\n");
    recs.push_str("3,203,1000103,-;nvme 0000:41:00.0:    [14] CmpltTO                (First)\n");
    // The same device's own fatal error after its corrected storm passes too.
    recs.push_str("3,204,1000200,-;nvme 0000:00:1c.5: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Requester ID)\n");
    let tmp = ring_root(&recs);
    let (ps, _) = once_events(tmp.path());
    let seqs: Vec<i64> = points(&ps, "kernel_event")
        .filter_map(|p| int(p, "seq"))
        .collect();
    for s in 200..=204 {
        assert!(seqs.contains(&s), "seq {s} missing: {seqs:?}");
    }
    let sup = points(&ps, "kernel_event")
        .find(|p| p.fields.contains_key("suppressed"))
        .expect("summary");
    assert_eq!(int(sup, "suppressed"), Some(5));
    assert_eq!(
        sup.tags.get("address").map(String::as_str),
        Some("0000:00:1c.5")
    );
    // The summary stands at the kernel time of the last one held back.
    assert_eq!(
        sup.ts,
        Some(1_699_913_600_000_000_000 + 1_000_024_000 + 124)
    );
}

#[test]
fn device_fields_are_resolved_through_sysfs() {
    let recs = "3,1,1000000,-;xhci_hcd: xHCI host controller not responding, assume dead\n SUBSYSTEM=usb\n DEVICE=c189:1\n\
                3,2,2000000,-;igb: PCIe link lost\n SUBSYSTEM=net\n DEVICE=n2\n\
                6,3,3000000,-;i915: [drm] GPU HANG: ecode 9:1:85dffffb, in Xorg [1021]\n SUBSYSTEM=drm\n DEVICE=+drm:card0\n";
    let tmp = ring_root(recs);
    let r = tmp.path();
    let link = |at: &str, to: &str| {
        let p = r.join(at);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(to, p).expect("symlink");
    };
    link(
        "sys/dev/char/189:1",
        "../../devices/pci0000:00/0000:00:14.0/usb1/1-1",
    );
    link(
        "sys/class/net/eno1",
        "../../devices/pci0000:00/0000:00:1c.0/0000:06:00.0/net/eno1",
    );
    std::fs::create_dir_all(r.join("sys/devices/pci0000:00/0000:00:1c.0/0000:06:00.0/net/eno1"))
        .expect("dir");
    std::fs::write(
        r.join("sys/devices/pci0000:00/0000:00:1c.0/0000:06:00.0/net/eno1/ifindex"),
        "2\n",
    )
    .expect("ifindex");
    link(
        "sys/class/drm/card0",
        "../../devices/pci0000:00/0000:00:02.0/drm/card0",
    );
    let (ps, _) = once_events(r);
    let by_seq = |s: i64| {
        points(&ps, "kernel_event")
            .find(|p| int(p, "seq") == Some(s))
            .map(|p| (p.tags["category"].clone(), p.tags.get("address").cloned()))
    };
    assert_eq!(
        by_seq(1),
        Some(("other".into(), Some("0000:00:14.0".into())))
    );
    assert_eq!(
        by_seq(2),
        Some(("pcie_link".into(), Some("0000:06:00.0".into())))
    );
    assert_eq!(
        by_seq(3),
        Some(("other".into(), Some("0000:00:02.0".into())))
    );
}

#[test]
fn hostile_kmsg_files_are_read_within_bounds() {
    // A sparse 1 GiB file of zeros, and /dev/zero itself: both end in bounded time and memory.
    let tmp = ring_root("");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("dev/kmsg"))
        .expect("kmsg");
    f.set_len(1 << 30).expect("sparse");
    drop(f);
    for root in [tmp.path().to_path_buf(), {
        let z = tmp.path().join("zero");
        std::fs::create_dir_all(z.join("dev")).expect("dev");
        std::os::unix::fs::symlink("/dev/zero", z.join("dev/kmsg")).expect("link");
        z
    }] {
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(bin())
            .args([
                "--once",
                "--fake-time",
                FAKE_TIME,
                "--collectors",
                "kernel_event",
                "--root",
            ])
            .arg(&root)
            .output();
        let Ok(out) = out else { return }; // no GNU time here
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(0));
        let rss_kib: u64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        eprintln!(
            "FIGURES hostile kmsg {}: {took:?}, max RSS {rss_kib} KiB",
            root.display()
        );
        // Not a timing test (those flake): a guard against reading the whole giant.
        assert!(took < Duration::from_secs(20), "{took:?}");
        assert!(rss_kib < 16 * 1024, "{rss_kib} KiB");
        let ps = parse_lp(&String::from_utf8_lossy(&out.stdout));
        let st = points(&ps, "vigil_collector")
            .find(|p| p.tags["collector"] == "kernel_event")
            .expect("status");
        if root.ends_with("zero") {
            // Replay is confined to its root, as under chroot: the link names
            // the root's own (absent) dev/zero, never the host's.
            assert_eq!(points(&ps, "kernel_event").count(), 0);
            continue;
        }
        assert!(int(st, "errors").unwrap_or(0) > 0, "garbage is counted");
        assert!(string(st, "unavailable").is_some_and(|u| u.contains("truncated")));
    }
}

#[test]
fn a_clock_step_after_start_does_not_shift_later_events() {
    let tmp = ring_root("0,1,1000000,-;watchdog: Watchdog detected hard LOCKUP on cpu 5\n");
    let root = tmp.path();
    let v = spawn(root);
    let replay = v.drain(Duration::from_millis(600));
    assert_eq!(
        parse_lp(&replay.join("\n"))[0].ts,
        Some(1_699_913_601_000_000_001)
    );
    // NTP steps the clock 1 hour forward: the kernel's btime moves with it.
    std::fs::write(root.join("proc/stat"), "cpu 1 2 3\nbtime 1699917200\n").expect("stat");
    std::thread::sleep(Duration::from_millis(1100));
    append(
        root,
        "0,2,2000000,-;watchdog: Watchdog detected hard LOCKUP on cpu 6\n",
    );
    let (_, line) = v.lines.recv_timeout(Duration::from_secs(3)).expect("event");
    assert_eq!(
        parse_lp(&line)[0].ts,
        Some(1_699_917_202_000_000_002),
        "{line}"
    );
    v.stop();
}
