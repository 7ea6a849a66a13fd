//! The stop mark: stopped by Telegraf (stdin EOF or SIGTERM), vigil repeats
//! its heartbeat once with `stopping=1i`, so `vigil postmortem` can tell an
//! orderly shutdown from a reset. `--once` never writes it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::util::*;

const FIXTURE: &str = "asus-p6t6-switch";

/// Runs vigil in execd mode for one batch, stops it with `stop`, returns stdout lines.
fn run_and_stop(stop: impl FnOnce(&mut std::process::Child)) -> Vec<String> {
    let mut child = Command::new(bin())
        .args([
            "--fake-time",
            FAKE_TIME,
            "--collectors",
            "vigil,pcie_platform",
            "--root",
        ])
        .arg(fixture(FIXTURE))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"\n")
        .expect("trigger");
    let mut lines = Vec::new();
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    lines.push(first.trim_end().to_string());
    stop(&mut child);
    lines.extend(out.lines().map_while(Result::ok));
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    lines
}

fn check_mark(lines: &[String]) {
    let heartbeat = lines
        .iter()
        .find(|l| l.starts_with("vigil ") && !l.contains("stopping"))
        .expect("a heartbeat");
    let mark = lines.last().expect("lines");
    assert!(
        mark.starts_with("vigil ") && mark.contains(",stopping=1i"),
        "last line is the mark: {mark}"
    );
    assert_eq!(lines.iter().filter(|l| l.contains("stopping=")).count(), 1);
    // The mark repeats the heartbeat's fields, so a query of the newest point sees the same shape.
    let fields = |l: &str| -> Vec<String> {
        l.split(' ')
            .nth(1)
            .unwrap_or("")
            .split(',')
            .map(|f| f.split('=').next().unwrap_or("").to_string())
            .filter(|f| f != "stopping")
            .collect()
    };
    assert_eq!(fields(mark), fields(heartbeat));
}

#[test]
fn stdin_eof_writes_the_stop_mark_last() {
    let lines = run_and_stop(|c| drop(c.stdin.take()));
    check_mark(&lines);
}

#[test]
fn sigterm_writes_the_stop_mark_last() {
    let lines = run_and_stop(|c| {
        // Wait for the whole batch before the signal: the mark must follow it.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let rc = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("kill");
        assert!(rc.success());
    });
    check_mark(&lines);
}

#[test]
fn once_writes_no_stop_mark() {
    let out = Command::new(bin())
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(fixture(FIXTURE))
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("stopping"));
}
