//! The system-call floor for tools/perf-compare.sh: replay, in one thread,
//! the file system calls one traced `vigil --once` made (each open relative
//! to the same directory, with the same flags and `openat2` resolve flags;
//! reads and `pread`s of the same sizes; the listings, link reads, `fstat`s
//! and closes) and nothing else. The I/O floor (iofloor) reads only the
//! regular files; this one also pays for the links, listings and directory
//! opens that say what a file cannot (the driver, the IOMMU group, the
//! topology, which ASPM files exist). What is left above it is vigil's own
//! work: parsing, deciding, writing, and its threads.
//!
//! The ops file is written by tools/perf_compare.py from `strace -ff -ttt -y`.
//! Prints the CPU time of the replay loop alone: reading the ops file, and
//! opening what the trace used before it opened it (a long-running
//! process's kept directories), are not part of it. IOREPLAY_PER=1 also
//! times each kind of call, to stderr.

use std::collections::HashMap;
use std::io::BufRead;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self, Mode, OFlags, ResolveFlags, CWD};

/// One traced call; paths are indexes into [`Ops::paths`].
enum Op {
    Open {
        at: usize,
        name: String,
        flags: OFlags,
        resolve: Option<ResolveFlags>,
        result: Option<usize>,
    },
    Read(usize, usize),
    Pread(usize, usize, u64),
    List(usize),
    Link(usize, String),
    Stat(usize),
    Close(usize),
}

impl Op {
    const KINDS: [&'static str; 8] = [
        "open dir",
        "openat",
        "openat2",
        "read",
        "pread",
        "getdents",
        "readlink",
        "stat/close",
    ];

    /// The descriptor the call works on (an open's directory).
    fn fd_path(&self) -> usize {
        match self {
            Op::Open { at, .. } => *at,
            Op::Read(p, _) | Op::Pread(p, _, _) | Op::List(p) | Op::Link(p, _) => *p,
            Op::Stat(p) | Op::Close(p) => *p,
        }
    }

    fn kind(&self) -> usize {
        match self {
            Op::Open {
                resolve: None,
                flags,
                ..
            } if flags.contains(OFlags::DIRECTORY) => 0,
            Op::Open { resolve: None, .. } => 1,
            Op::Open { .. } => 2,
            Op::Read(..) => 3,
            Op::Pread(..) => 4,
            Op::List(..) => 5,
            Op::Link(..) => 6,
            Op::Stat(..) | Op::Close(..) => 7,
        }
    }
}

struct Ops {
    ops: Vec<Op>,
    paths: Vec<String>,
}

fn oflags(s: &str) -> OFlags {
    s.split('|').fold(OFlags::empty(), |f, w| {
        f | match w {
            "O_NOCTTY" => OFlags::NOCTTY,
            "O_NONBLOCK" => OFlags::NONBLOCK,
            "O_NOFOLLOW" => OFlags::NOFOLLOW,
            "O_CLOEXEC" => OFlags::CLOEXEC,
            "O_DIRECTORY" => OFlags::DIRECTORY,
            "O_PATH" => OFlags::PATH,
            _ => OFlags::empty(),
        }
    })
}

fn resolve(s: &str) -> Option<ResolveFlags> {
    (s != "-").then(|| {
        s.split('|').fold(ResolveFlags::empty(), |f, w| {
            f | match w {
                "RESOLVE_NO_MAGICLINKS" => ResolveFlags::NO_MAGICLINKS,
                "RESOLVE_BENEATH" => ResolveFlags::BENEATH,
                "RESOLVE_IN_ROOT" => ResolveFlags::IN_ROOT,
                "RESOLVE_NO_SYMLINKS" => ResolveFlags::NO_SYMLINKS,
                _ => ResolveFlags::empty(),
            }
        })
    })
}

fn read_ops(list: &str) -> Ops {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut id = |p: &str| {
        let n = ids.len();
        *ids.entry(p.to_string()).or_insert(n)
    };
    let mut ops = Vec::new();
    let file = std::fs::File::open(list).expect("ops file");
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f[i].parse::<usize>().expect("number");
        ops.push(match f[0] {
            "open" => Op::Open {
                at: id(f[1]),
                name: f[2].to_string(),
                flags: oflags(f[3]),
                resolve: resolve(f[4]),
                result: (f[5] != "-").then(|| id(f[5])),
            },
            "read" => Op::Read(id(f[1]), num(2)),
            "pread" => Op::Pread(id(f[1]), num(2), num(3) as u64),
            "getdents" => Op::List(id(f[1])),
            "readlink" => Op::Link(id(f[1]), f[2].to_string()),
            "stat" => Op::Stat(id(f[1])),
            "close" => Op::Close(id(f[1])),
            other => panic!("unknown op {other}"),
        });
    }
    let mut paths = vec![String::new(); ids.len()];
    for (p, i) in ids {
        paths[i] = p;
    }
    Ops { ops, paths }
}

/// Descriptors open in the replay by path (a path can be open twice) and
/// the buffers the calls fill.
struct Replay<'a> {
    paths: &'a [String],
    open: Vec<Vec<OwnedFd>>,
    buf: Vec<u8>,
    dents: Vec<u8>,
    link: Vec<u8>,
    /// Opened by path before the loop: used before any traced call opened
    /// them (the cwd; in a long-running process, the kept device
    /// directories and `config` files).
    by_path: usize,
}

impl Replay<'_> {
    /// Open, outside the timed loop, what the ops use before they open it.
    fn open_kept(&mut self, ops: &[Op]) {
        let mut opened = vec![false; self.paths.len()];
        for op in ops {
            let used = op.fd_path();
            if !opened[used] && self.open[used].is_empty() {
                let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
                if let Ok(fd) = fs::openat(CWD, &self.paths[used], flags, Mode::empty()) {
                    self.open[used].push(fd);
                    self.by_path += 1;
                }
            }
            opened[used] = true;
            if let Op::Open {
                result: Some(r), ..
            } = op
            {
                opened[*r] = true;
            }
        }
    }

    /// Make the call; `false` where the trace's descriptor is not open here.
    fn run(&mut self, op: &Op) -> bool {
        let Some(fd) = self.open[op.fd_path()].last() else {
            return false;
        };
        let n = |n: &usize| *n.min(&(64 * 1024));
        match op {
            Op::Open {
                name,
                flags,
                resolve,
                result,
                ..
            } => {
                let new = match resolve {
                    Some(r) => fs::openat2(fd, name, *flags, Mode::empty(), *r),
                    None => fs::openat(fd, name, *flags, Mode::empty()),
                };
                if let (Ok(new), Some(r)) = (new, result) {
                    self.open[*r].push(new);
                }
            }
            Op::Read(_, len) => {
                let _ = rustix::io::read(fd, &mut self.buf[..n(len)]);
            }
            Op::Pread(_, len, off) => {
                let _ = rustix::io::pread(fd, &mut self.buf[..n(len)], *off);
            }
            Op::List(_) => {
                // One getdents64, as traced: the entries of one fill.
                let mut d = fs::RawDir::new(fd.as_fd(), self.dents.spare_capacity_mut());
                if let Some(Ok(_)) = d.next() {
                    while !d.is_buffer_empty() && d.next().is_some() {}
                }
            }
            Op::Link(_, name) => {
                let _ = fs::readlinkat_raw(fd, name.as_str(), self.link.spare_capacity_mut());
            }
            Op::Stat(_) => {
                let _ = fs::fstat(fd);
            }
            Op::Close(p) => {
                self.open[*p].pop();
            }
        }
        true
    }
}

fn main() {
    let list = std::env::args().nth(1).expect("usage: ioreplay OPS");
    let Ops { ops, paths } = read_ops(&list);
    let mut replay = Replay {
        paths: &paths,
        open: (0..paths.len()).map(|_| Vec::new()).collect(),
        buf: vec![0u8; 64 * 1024],
        dents: Vec::with_capacity(32 * 1024),
        link: Vec::with_capacity(256),
        by_path: 0,
    };
    // The clock reads of IOREPLAY_PER cost a little: only when asked.
    let per_kind = std::env::var_os("IOREPLAY_PER").is_some();
    let mut per = [(0u64, 0u128); Op::KINDS.len()];
    let mut skipped = 0usize;
    replay.open_kept(&ops);
    let start = cpu_ns();
    for op in &ops {
        let t0 = per_kind.then(std::time::Instant::now);
        skipped += usize::from(!replay.run(op));
        if let Some(t0) = t0 {
            per[op.kind()].0 += 1;
            per[op.kind()].1 += t0.elapsed().as_nanos();
        }
    }
    let spent = cpu_ns() - start;
    for (k, (n, ns)) in Op::KINDS.iter().zip(per).filter(|_| per_kind) {
        let avg = ns as f64 / 1e3 / n.max(1) as f64;
        eprintln!("{k:12} {n:6} {:8.3} ms {avg:6.2} us", ns as f64 / 1e6);
    }
    println!(
        "{} calls; {} opened beforehand; {skipped} skipped; replay CPU {:.3} ms",
        ops.len(),
        replay.by_path,
        spent as f64 / 1e6
    );
}

/// This process's CPU time (user and system, all threads), in nanoseconds.
fn cpu_ns() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}
