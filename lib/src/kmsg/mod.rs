//! Kernel hardware events from `/dev/kmsg`: AER, DPC, link changes, IOMMU
//! faults, vfio resets, NVIDIA Xid, lockups, hung tasks, RCU stalls, MCE, panics.
//!
//! Reading needs `dmesg_restrict=0` or CAP_SYSLOG (kernel-abi.md §7.6); without
//! it the open fails and the collector reports `unavailable=permission`.
//! Every event's time is the kernel's own (`btime` + the record's microseconds)
//! plus its sequence number modulo 1000 in nanoseconds: no two records share a
//! point, and a restart replaying the ring writes the same points again.
//! Whatever the file is (a ring, a capture, `/dev/zero`, a sparse giant), what
//! one call reads is bounded in bytes and records.

pub mod classify;
pub mod limit;
pub mod record;

use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use classify::Category;
pub use limit::{Limiter, Suppressed};

use crate::read::{self, ReadError};
use crate::root::Root;

/// Longest message kept; kernel lines are far shorter, garbage may not be.
pub const MAX_MESSAGE: usize = 1024;
/// One `read()`: larger than any record the kernel returns (8 KiB with its
/// continuation lines), so a record is never cut.
const CHUNK: usize = 16 * 1024;
/// A byte stream's unfinished record is dropped (and counted) beyond this.
const MAX_PENDING: usize = 64 * 1024;
/// GHES lines held at most before their section (a block's header is 3-4 lines).
const MAX_HELD: usize = 16;
/// Latest time InfluxDB accepts (its maximum, 2^63-2 ns).
const MAX_TIME_NS: i64 = i64::MAX - 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub category: Category,
    pub address: Option<String>,
    /// Never rate-limited (uncorrectable/fatal AER, DPC, lockups, panics, Xid...).
    pub critical: bool,
    pub level: u8,
    pub seq: u64,
    /// Kernel time of the record, microseconds since boot.
    pub usec: u64,
    pub time_unix_ns: i64,
    pub message: String,
}

/// How much one call may read. A real ring is at most a few MiB.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub bytes: u64,
    pub records: u64,
}

/// `--once`: the whole ring of any real kernel, and no more.
pub const ONCE_BUDGET: Budget = Budget {
    bytes: 16 << 20,
    records: 200_000,
};

/// What a reader saw besides events; the follower reports it per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Times the ring overwrote records before they were read (EPIPE).
    pub overruns: u64,
    /// Records that could not be parsed, or whose time is out of range.
    pub errors: u64,
    /// A call stopped at its budget with more to read.
    pub truncated: bool,
    /// Events dropped: no `btime` in `/proc/stat` to place them in time.
    pub no_boot_time: u64,
}

impl Stats {
    /// The `unavailable` reasons these stand for.
    pub fn reasons(&self) -> Vec<&'static str> {
        let mut r = Vec::new();
        if self.overruns > 0 {
            r.push("overrun");
        }
        if self.truncated {
            r.push("truncated");
        }
        if self.no_boot_time > 0 {
            r.push("boot_time");
        }
        r
    }
}

/// Boot time in Unix nanoseconds from `/proc/stat` `btime`: whole seconds, the
/// kernel's own value (realtime minus boottime), stable across restarts (so
/// replays rewrite the same points) and moved by a clock step, which is why the
/// reader reads it again rather than once.
pub fn boot_time_ns(root: &Root) -> Option<i64> {
    let stat = read::read_bytes(&root.path("/proc/stat"), 4 << 20).ok()?;
    let text = std::str::from_utf8(&stat).ok()?;
    let secs: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    (secs > 0).then(|| secs.saturating_mul(1_000_000_000))
}

/// `boot + usec` plus the sequence number modulo 1000 in nanoseconds: records
/// printed in the same microsecond (an AER report is 3-5 of them) get distinct
/// points. `None` past what InfluxDB accepts (a garbage `usec`).
pub fn event_time(boot_ns: i64, usec: u64, seq: u64) -> Option<i64> {
    let ns = i64::try_from(usec).ok()?.checked_mul(1000)?;
    let offset = i64::try_from(seq % 1000).ok()?;
    let t = boot_ns.checked_add(ns)?.checked_add(offset)?;
    (t <= MAX_TIME_NS).then_some(t)
}

fn printable(message: &str) -> String {
    // Control characters (a decoded \x0a) would break a line; every output shows them as spaces.
    let mut m: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if m.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push_str("...");
    }
    m
}

/// `btime`, read again at most once a second.
struct BootClock {
    ns: Option<i64>,
    read_at: Option<Instant>,
}

impl BootClock {
    fn get(&mut self, root: &Root) -> Option<i64> {
        if self
            .read_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            // A failed re-read keeps the last value: an event is better placed by
            // the btime of a second ago than dropped.
            self.ns = boot_time_ns(root).or(self.ns);
            self.read_at = Some(Instant::now());
        }
        self.ns
    }
}

/// A reader over `/dev/kmsg` (one record per read) or a captured file (a stream).
pub struct Reader {
    file: read::Stream,
    path: PathBuf,
    root: Root,
    is_device: bool,
    nonblocking: bool,
    pending: Vec<u8>,
    last_seq: Option<u64>,
    boot: BootClock,
    ctx: classify::Context,
    /// `DEVICE=` values already resolved through sysfs (small, bounded).
    resolved: Vec<(String, Option<String>)>,
    /// GHES/CPER lines waiting for their block's section (see [`classify::cper_section_pending`]).
    held: Vec<(record::Record, Vec<u8>)>,
    pub stats: Stats,
    /// Bytes and records read since the reader was opened (the follower paces itself by them).
    pub read_total: (u64, u64),
}

impl Reader {
    pub fn open(root: &Root, nonblocking: bool) -> Result<Reader, ReadError> {
        let path = root.path("/dev/kmsg");
        let (file, is_device) = read::open_stream(&path, nonblocking)?;
        Ok(Reader {
            file,
            path,
            root: root.clone(),
            is_device,
            nonblocking,
            pending: Vec::new(),
            last_seq: None,
            boot: BootClock {
                ns: None,
                read_at: None,
            },
            ctx: classify::Context::default(),
            resolved: Vec::new(),
            held: Vec::new(),
            stats: Stats::default(),
            read_total: (0, 0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_device(&self) -> bool {
        self.is_device
    }

    /// Hardware events available now, within `budget`. On the device: until
    /// EAGAIN (non-blocking), or until an event or a new error (blocking). On a
    /// file: to its current end. Records already seen by this reader are skipped.
    pub fn read_available(&mut self, budget: Budget) -> std::io::Result<Vec<Event>> {
        let mut out = Vec::new();
        self.pump(budget, &mut |e, _| out.push(e))?;
        Ok(out)
    }

    /// Read within `budget`, handing each event and its raw record to `sink`.
    fn pump(&mut self, budget: Budget, sink: &mut dyn FnMut(Event, &[u8])) -> std::io::Result<()> {
        let mut chunk = vec![0u8; CHUNK];
        let (mut bytes, mut records) = (0u64, 0u64);
        let mut at_end = true;
        loop {
            if bytes >= budget.bytes || records >= budget.records {
                self.stats.truncated = true;
                at_end = false;
                break;
            }
            let n = match self.file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    // Counted against the budget too: nothing may loop unbounded.
                    self.stats.overruns += 1;
                    records += 1;
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            bytes += n as u64;
            self.read_total.0 += n as u64;
            self.read_total.1 += 1;
            let before = self.stats.clone();
            let mut got = false;
            if self.is_device {
                records += 1;
                got = self.accept(&chunk[..n], sink);
            } else {
                records += self.feed(&chunk[..n], false, sink, &mut got);
            }
            if self.is_device && !self.nonblocking && (got || self.stats != before) {
                return Ok(());
            }
        }
        if !self.is_device && at_end {
            let mut got = false;
            self.feed(&[], true, sink, &mut got);
        }
        self.release_held(sink);
        Ok(())
    }

    /// A byte stream: split complete records (a header line and the lines after
    /// it that start with a space). At end of data the last one is complete too.
    fn feed(
        &mut self,
        data: &[u8],
        at_end: bool,
        sink: &mut dyn FnMut(Event, &[u8]),
        got: &mut bool,
    ) -> u64 {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let (recs, used) = record::split_stream(&buf, at_end);
        let n = recs.len() as u64;
        for r in recs {
            *got |= self.accept(r, sink);
        }
        buf.drain(..used);
        if buf.len() > MAX_PENDING {
            // No record is this long: garbage (a file of zeros). Counted, dropped.
            self.stats.errors += 1;
            buf.clear();
        }
        self.pending = buf;
        n
    }

    /// One raw record; true when it was an event.
    fn accept(&mut self, raw: &[u8], sink: &mut dyn FnMut(Event, &[u8])) -> bool {
        let Some(r) = record::parse(raw) else {
            if !raw.iter().all(u8::is_ascii_whitespace) {
                self.stats.errors += 1;
            }
            return false;
        };
        if self.last_seq.is_some_and(|l| r.seq <= l) {
            return false;
        }
        self.last_seq = Some(r.seq);
        // Userspace writes to /dev/kmsg (systemd, udev) carry a facility; the kernel's own are 0.
        if r.facility != 0 {
            return false;
        }
        if classify::cper_section_pending(&self.ctx, &r.message) && self.held.len() < MAX_HELD {
            self.held.push((r, raw.to_vec()));
            return false;
        }
        let mut got = false;
        if !self.held.is_empty() {
            self.ctx.preset_cper_section(&r.message);
            got = self.release_held(sink);
        }
        self.emit(&r, raw, sink) || got
    }

    /// GHES lines held until their section was known: judged now, in order.
    fn release_held(&mut self, sink: &mut dyn FnMut(Event, &[u8])) -> bool {
        let mut got = false;
        for (r, raw) in std::mem::take(&mut self.held) {
            got |= self.emit(&r, &raw, sink);
        }
        got
    }

    /// Judge one kernel record and hand it on if it is an event.
    fn emit(&mut self, r: &record::Record, raw: &[u8], sink: &mut dyn FnMut(Event, &[u8])) -> bool {
        let Some((verdict, address)) = self.judge(r) else {
            return false;
        };
        let Some(boot) = self.boot.get(&self.root) else {
            self.stats.no_boot_time += 1;
            return false;
        };
        let Some(time_unix_ns) = event_time(boot, r.usec, r.seq) else {
            self.stats.errors += 1;
            return false;
        };
        let e = Event {
            category: verdict.category,
            address,
            critical: verdict.critical,
            level: r.level,
            seq: r.seq,
            usec: r.usec,
            time_unix_ns,
            message: printable(&r.message),
        };
        sink(e, raw);
        true
    }

    /// The verdict and device of a kernel record; a `DEVICE=` that is not `+pci:`
    /// is looked up in sysfs only when it could make a difference.
    fn judge(&mut self, r: &record::Record) -> Option<(classify::Verdict, Option<String>)> {
        let other_device = r.device.as_deref().filter(|d| !d.starts_with("+pci:"));
        if let Some((v, mut address)) = judge_text(&mut self.ctx, r) {
            if address.is_none() {
                address = other_device.and_then(|d| self.resolve(d));
            }
            return Some((v, address));
        }
        if text_address(r).is_some() || !classify::could_be_other(r.level, &r.message) {
            return None;
        }
        let mut address = other_device.and_then(|d| self.resolve(d));
        address.as_ref()?;
        let v = classify::classify(&mut self.ctx, r.level, &r.message, &mut address)?;
        Some((v, address))
    }

    /// `DEVICE=c189:1` (char), `b8:0` (block), `n2` (network interface index) or
    /// `+subsystem:name`: the PCI function above it in sysfs, if any.
    fn resolve(&mut self, device: &str) -> Option<String> {
        if let Some((_, a)) = self.resolved.iter().find(|(d, _)| d == device) {
            return a.clone();
        }
        let a = sysfs_pci_parent(&self.root, device);
        if self.resolved.len() >= 64 {
            self.resolved.remove(0);
        }
        self.resolved.push((device.to_string(), a.clone()));
        a
    }
}

/// The device a record names by itself: its `DEVICE=+pci:` continuation (the
/// device that printed) wins over an address in the text.
fn text_address(r: &record::Record) -> Option<String> {
    r.device
        .as_deref()
        .and_then(classify::pci_device_field)
        .or_else(|| classify::address_in(&r.message))
}

/// The verdict and address of a kernel record from what it carries (no sysfs
/// look-up): the pure part of the reader's judgement.
pub fn judge_text(
    ctx: &mut classify::Context,
    r: &record::Record,
) -> Option<(classify::Verdict, Option<String>)> {
    let mut address = text_address(r);
    let v = classify::classify(ctx, r.level, &r.message, &mut address)?;
    Some((v, address))
}

/// The sysfs object a `DEVICE=` value names (Documentation/ABI/testing/dev-kmsg)
/// and the last PCI address on the path its link points to.
fn sysfs_pci_parent(root: &Root, device: &str) -> Option<String> {
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    let link = match device.split_at_checked(1)? {
        ("c", n) if safe(n) => format!("/sys/dev/char/{n}"),
        ("b", n) if safe(n) => format!("/sys/dev/block/{n}"),
        ("n", n) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
            format!("/sys/class/net/{}", netdev_by_index(root, n)?)
        }
        ("+", rest) => {
            let (subsystem, name) = rest.split_once(':')?;
            if !(safe(subsystem) && safe(name)) {
                return None;
            }
            let bus = format!("/sys/bus/{subsystem}/devices/{name}");
            if read::exists(&root.path(&bus)) {
                bus
            } else {
                format!("/sys/class/{subsystem}/{name}")
            }
        }
        _ => return None,
    };
    let target = read::read_link(&root.path(&link)).ok()?;
    target
        .iter()
        .rev()
        .filter_map(|c| c.to_str())
        .find_map(|c| classify::pci_device_field(&format!("+pci:{c}")))
}

/// The interface whose `ifindex` is `index`.
fn netdev_by_index(root: &Root, index: &str) -> Option<String> {
    let names = read::list_dir(&root.path("/sys/class/net")).ok()?;
    names.into_iter().take(4096).find(|n| {
        read::read_attr(&root.path(&format!("/sys/class/net/{n}/ifindex")))
            .is_ok_and(|v| v.trim() == index)
    })
}

/// The ring's hardware events now, after the storm limit (`--once`), within
/// [`ONCE_BUDGET`].
#[derive(Debug, Default)]
pub struct Ring {
    pub events: Vec<Event>,
    pub suppressed: Vec<Suppressed>,
    pub stats: Stats,
}

pub fn read_ring(root: &Root) -> Result<Ring, ReadError> {
    let mut r = Reader::open(root, true)?;
    let mut limiter = Limiter::default();
    let mut events = Vec::new();
    let result = r.pump(ONCE_BUDGET, &mut |e, _| {
        if limiter.admit(&e) {
            events.push(e);
        }
    });
    result.map_err(|e| ReadError {
        path: r.path.clone(),
        kind: read::classify(&e),
    })?;
    Ok(Ring {
        events,
        suppressed: limiter.take_suppressed(),
        stats: r.stats,
    })
}

/// The raw records in the ring now that are hardware events (for `vigil capture`:
/// an excerpt that never carries unrelated log lines).
pub fn hardware_records(root: &Root) -> Result<Vec<Vec<u8>>, ReadError> {
    let mut r = Reader::open(root, true)?;
    let mut out = Vec::new();
    let result = r.pump(ONCE_BUDGET, &mut |_, raw| out.push(raw.to_vec()));
    result.map_err(|e| ReadError {
        path: r.path.clone(),
        kind: read::classify(&e),
    })?;
    Ok(out)
}
