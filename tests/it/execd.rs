//! The binary driven as Telegraf's inputs.execd drives it: newline -> batch,
//! signals -> batch, stdin EOF -> exit 0, SIGTERM -> exit 0, --interval.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::*;

// No dev/kmsg here: events would stream between batches (tests/it/kmsg.rs covers that).
const FIXTURE: &str = "asus-p6t6-switch";

fn golden_lines() -> Vec<String> {
    std::fs::read_to_string(repo().join("tests/golden").join(format!("{FIXTURE}.lp")))
        .expect("golden")
        .lines()
        .map(str::to_string)
        .collect()
}

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// `--refresh 0`: every batch whole, equal to the golden (tests/it/budget.rs
/// covers what a long-running process leaves out).
fn spawn(extra: &[&str]) -> Proc {
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["--refresh", "0", "--fake-time", FAKE_TIME, "--root"])
            .arg(fixture(FIXTURE))
            .args(extra),
    );
    let rx = stdout_lines(child.stdout.take().expect("stdout"));
    Proc { child, lines: rx }
}

impl Proc {
    fn batch(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("no line {i} of a {n}-line batch within 10 s"))
            })
            .collect()
    }
    fn nothing_more(&self, wait: Duration) {
        if let Ok(l) = self.lines.recv_timeout(wait) {
            panic!("unexpected output: {l}");
        }
    }
    fn newline(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }
    fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        let rc = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(rc.success());
    }
    fn wait_exit(mut self) -> std::process::ExitStatus {
        for _ in 0..100 {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("vigil did not exit within 5 s");
    }
}

#[test]
fn each_stdin_line_is_one_batch_and_eof_exits_zero() {
    let want = golden_lines();
    let mut p = spawn(&[]);
    p.nothing_more(Duration::from_millis(300)); // no trigger, no output
    p.newline();
    assert_eq!(p.batch(want.len()), want);
    p.nothing_more(Duration::from_millis(200));
    p.newline();
    assert_eq!(p.batch(want.len()), want, "the loop repeats");
    drop(p.child.stdin.take()); // Telegraf closing stdin
    let st = p.wait_exit();
    assert_eq!(st.code(), Some(0));
}

#[test]
fn signals_trigger_batches_and_sigterm_exits_zero() {
    let want = golden_lines();
    let mut p = spawn(&[]);
    p.newline(); // by the first batch the handlers are installed
    assert_eq!(p.batch(want.len()).len(), want.len());
    for sig in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP] {
        p.signal(sig);
        assert_eq!(p.batch(want.len()), want, "signal {sig}");
    }
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit().code(), Some(0));
}

#[test]
fn triggers_during_a_batch_collapse() {
    let want = golden_lines().len();
    let mut p = spawn(&[]);
    {
        let stdin = p.child.stdin.as_mut().expect("stdin");
        stdin.write_all(&[b'\n'; 50]).expect("write");
    }
    drop(p.child.stdin.take());
    let mut lines = 0;
    while let Ok(l) = p.lines.recv_timeout(Duration::from_secs(2)) {
        // The stop mark on EOF is not part of a batch (tests/it/stopmark.rs).
        lines += usize::from(!l.contains("stopping=1i"));
    }
    assert_eq!(lines % want, 0, "whole batches only");
    let batches = lines / want;
    assert!(
        (1..50).contains(&batches),
        "{batches} batches for 50 queued triggers"
    );
    assert_eq!(p.wait_exit().code(), Some(0));
}

#[test]
fn interval_mode_collects_on_its_own() {
    let want = golden_lines();
    let mut p = spawn(&["--interval", "100ms"]);
    for _ in 0..3 {
        assert_eq!(p.batch(want.len()), want);
    }
    drop(p.child.stdin.take());
    assert_eq!(p.wait_exit().code(), Some(0));
}

#[test]
fn closed_stdout_exits_zero() {
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["--interval", "20ms", "--root"])
            .arg(fixture(FIXTURE)),
    );
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("a line");
    drop(out); // reader gone: next write is EPIPE
    for _ in 0..100 {
        if let Some(st) = child.try_wait().expect("wait") {
            assert_eq!(st.code(), Some(0));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("vigil kept running with nobody reading");
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(bin()).arg("--help").output().expect("help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--once",
        "--interval",
        "--root",
        "--format",
        "--collectors",
        "--no-names",
        "--fake-time",
        "SIGUSR1",
        "STDIN",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn collectors_flag_selects_measurements() {
    let out = run_once(&fixture(FIXTURE), &["--collectors", "pcie_link,vigil"]);
    assert!(out.status.success());
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let names: std::collections::BTreeSet<&str> = ps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["pcie_link", "vigil", "vigil_collector"]
            .into_iter()
            .collect()
    );
    let bad = Command::new(bin())
        .args(["--once", "--collectors", "nope"])
        .output()
        .expect("run");
    assert!(
        !bad.status.success(),
        "an unknown collector is a usage error"
    );
}
