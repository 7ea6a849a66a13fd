//! Kernel hardware events followed live from /dev/kmsg (a capture file here).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::*;

fn scratch_copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture(name))
        .arg(tmp.path().join("root"))
        .status()
        .expect("cp");
    assert!(st.success());
    tmp
}

struct Vigil {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

fn spawn(root: &std::path::Path) -> Vigil {
    let mut child = Command::new(bin())
        .args(["--fake-time", FAKE_TIME, "--root"])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
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
    let tmp = scratch_copy("device-fell-off-bus");
    let root = tmp.path().join("root");
    let mut v = spawn(&root);
    // The ring replays at start: 8 hardware events, nothing else, no stdin needed.
    let replay = v.drain(Duration::from_millis(800));
    assert_eq!(replay.len(), 8, "{replay:?}");
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
    assert!(
        line.ends_with(" 1699913600000000000") || line.contains("seq=3000i"),
        "{line}"
    );
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
    let tmp = scratch_copy("device-fell-off-bus");
    let root = tmp.path().join("root");
    let mut v = spawn(&root);
    let replay = v.drain(Duration::from_millis(600));
    let is_aer = |l: &&String| l.starts_with("kernel_event,") && l.contains("category=aer ");
    let replayed_aer = replay.iter().filter(is_aer).count();
    assert_eq!(
        replayed_aer, 4,
        "the ring's own AER records count towards the window"
    );
    let mut storm = String::new();
    for i in 0..100 {
        storm.push_str(&format!("4,{},{},-;pcieport 0000:00:1c.0: AER: Correctable error message received from 0000:02:00.0\n", 5000 + i, 86_400_000_000u64 + i));
    }
    append(&root, &storm);
    let got = v.drain(Duration::from_millis(800));
    let aer = got.iter().filter(is_aer).count();
    assert_eq!(
        aer + replayed_aer,
        20,
        "burst of 20 per category per window"
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
        ("aer", Some(84))
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
    assert_eq!(points(&ps, "kernel_event").count(), 8);
    let xid = points(&ps, "kernel_event")
        .find(|p| p.tags["category"] == "gpu_xid")
        .expect("xid");
    assert_eq!(
        xid.tags.get("address").map(String::as_str),
        Some("0000:02:00.0")
    );
    // kernel time: btime + usec (86391 s after boot)
    assert_eq!(xid.ts, Some(1_699_913_600_000_000_000 + 86_391_000_000_000));

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
