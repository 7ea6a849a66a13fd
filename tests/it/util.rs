//! Shared helpers: run the binary, parse its output with an independent parser.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;

pub const FAKE_TIME: &str = "1700000000000000000";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture root, with the file ages of its `mtimes.tsv` applied (git keeps
/// no mtimes; readiness ages are measured against --fake-time).
pub fn fixture(name: &str) -> PathBuf {
    let dir = repo().join("fixtures").join(name);
    if let Ok(tsv) = std::fs::read_to_string(dir.join("mtimes.tsv")) {
        for line in tsv.lines() {
            let Some((rel, t)) = line.split_once('\t') else {
                continue;
            };
            let t: u64 = t.parse().expect("mtime");
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
            let f = std::fs::File::options()
                .write(true)
                .open(dir.join(rel))
                .expect("fixture file");
            f.set_modified(when).expect("set mtime");
        }
    }
    dir
}

pub fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("fixtures"))
        .expect("fixtures/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("README.md").exists())
        .map(|e| e.file_name().into_string().expect("utf-8 name"))
        .collect();
    v.sort();
    v
}

pub fn run_once(root: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(root)
        .args(extra)
        .output()
        .expect("run vigil")
}

/// Every stderr line carries a Telegraf level prefix.
pub fn assert_stderr_prefixed(stderr: &[u8]) {
    for line in String::from_utf8_lossy(stderr).lines() {
        assert!(
            ["E! ", "W! ", "I! ", "D! "]
                .iter()
                .any(|p| line.starts_with(p)),
            "stderr line without level prefix: {line:?}"
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I(i64),
    F(f64),
    S(String),
    B(bool),
    U(u64),
}

impl Val {
    pub fn kind(&self) -> &'static str {
        match self {
            Val::I(_) => "int",
            Val::F(_) => "float",
            Val::S(_) => "string",
            Val::B(_) => "bool",
            Val::U(_) => "uint",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Point {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub fields: BTreeMap<String, Val>,
    pub ts: Option<i64>,
}

/// Parse line protocol with the InfluxDB IOx parser, not ours.
pub fn parse_lp(text: &str) -> Vec<Point> {
    use influxdb_line_protocol::{parse_lines, FieldValue};
    let mut out = Vec::new();
    for (i, r) in parse_lines(text).enumerate() {
        let l = r.unwrap_or_else(|e| {
            panic!(
                "line {} does not parse: {e}\n{}",
                i + 1,
                text.lines().nth(i).unwrap_or("")
            )
        });
        let tags = l
            .series
            .tag_set
            .as_ref()
            .map(|ts| {
                ts.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let fields = l
            .field_set
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    FieldValue::I64(i) => Val::I(*i),
                    FieldValue::U64(u) => Val::U(*u),
                    FieldValue::F64(f) => Val::F(*f),
                    FieldValue::String(s) => Val::S(s.to_string()),
                    FieldValue::Boolean(b) => Val::B(*b),
                };
                (k.to_string(), v)
            })
            .collect();
        out.push(Point {
            name: l.series.measurement.to_string(),
            tags,
            fields,
            ts: l.timestamp,
        });
    }
    out
}

pub fn points<'a>(ps: &'a [Point], name: &str) -> impl Iterator<Item = &'a Point> {
    let name = name.to_string();
    ps.iter().filter(move |p| p.name == name)
}

pub fn one<'a>(ps: &'a [Point], name: &str, address: &str) -> &'a Point {
    let v: Vec<&Point> = points(ps, name)
        .filter(|p| p.tags.get("address").map(String::as_str) == Some(address))
        .collect();
    assert_eq!(v.len(), 1, "{name} {address}: {v:?}");
    v[0]
}

pub fn int(p: &Point, f: &str) -> Option<i64> {
    match p.fields.get(f) {
        Some(Val::I(i)) => Some(*i),
        None => None,
        other => panic!("{f} is not an int: {other:?}"),
    }
}

pub fn float(p: &Point, f: &str) -> Option<f64> {
    match p.fields.get(f) {
        Some(Val::F(v)) => Some(*v),
        None => None,
        other => panic!("{f} is not a float: {other:?}"),
    }
}

pub fn string(p: &Point, f: &str) -> Option<String> {
    match p.fields.get(f) {
        Some(Val::S(v)) => Some(v.clone()),
        None => None,
        other => panic!("{f} is not a string: {other:?}"),
    }
}

/// A scratch copy of fixture `name` that user `nobody` can read, with `restrict`
/// (relative to the root) set to `mode`, as the kernel has another user's file.
/// `None` where the test cannot drop privileges (not root, no setpriv).
pub fn unprivileged_copy(
    name: &str,
    restrict: &str,
    mode: u32,
) -> Option<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root || !has_setpriv {
        eprintln!("skipping the unprivileged part: needs root and setpriv to drop to nobody");
        return None;
    }
    let (tmp, root) = scratch_fixture(name);
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(root.join(restrict), std::fs::Permissions::from_mode(mode))
        .expect("chmod");
    Some((tmp, root))
}

/// vigil run as user `nobody` (uid 65534, no groups), as Telegraf runs it.
pub fn as_nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
    c
}

/// A writable copy of a fixture at `DIR/root` (`cp -a`: links and modes kept),
/// for tests that change a tree before or while vigil reads it.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let root = dir.join("root");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture(name))
        .arg(&root)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {name}");
    root
}

/// The same in a new temporary directory, removed when the guard is dropped.
pub fn scratch_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = copy_fixture(name, tmp.path());
    (tmp, root)
}

/// A long-running vigil's stdout, line by line, on a channel (a thread reads
/// it, so a test can wait for a batch with a timeout).
pub fn stdout_lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// `cmd` started as Telegraf's execd starts vigil: triggers on stdin, the
/// batches on stdout; stderr is not wanted.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}
