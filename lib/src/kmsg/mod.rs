//! Kernel hardware events from `/dev/kmsg`: AER, DPC, link changes, IOMMU
//! faults, vfio resets, NVIDIA Xid, lockups, hung tasks, RCU stalls, MCE.
//!
//! Reading needs `dmesg_restrict=0` or CAP_SYSLOG (kernel-abi.md §7.6); without
//! it the open fails and the collector reports `unavailable=permission`.
//! A replay of the ring gives the same points again (each carries the
//! kernel's own time); within a process a sequence number is never repeated.

pub mod classify;
pub mod record;

use serde::Serialize;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

pub use classify::Category;

use crate::read::{self, ReadError};
use crate::root::Root;

/// Longest message kept; kernel lines are far shorter, garbage may not be.
pub const MAX_MESSAGE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub category: Category,
    pub address: Option<String>,
    pub level: u8,
    pub seq: u64,
    pub time_unix_ns: i64,
    pub message: String,
}

/// Boot time in Unix nanoseconds from `/proc/stat` `btime`: whole seconds, the
/// kernel's own value, stable across restarts (so replays rewrite the same points).
pub fn boot_time_ns(root: &Root) -> Option<i64> {
    let stat = read::read_text(&root.path("/proc/stat")).ok()?;
    let secs: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(secs.saturating_mul(1_000_000_000))
}

pub fn to_event(r: &record::Record, boot_ns: i64) -> Option<Event> {
    let address = classify::address(&r.message, r.device.as_deref());
    let category = classify::classify(&r.message, address.as_deref())?;
    // Control characters (a decoded \x0a) would break a line; every output shows them as spaces.
    let mut message: String = r
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    Some(Event {
        category,
        address,
        level: r.level,
        seq: r.seq,
        time_unix_ns: boot_ns.saturating_add(
            i64::try_from(r.usec)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        ),
        message,
    })
}

/// A reader over `/dev/kmsg` (one record per read) or a captured file (a stream).
pub struct Reader {
    file: File,
    path: PathBuf,
    is_device: bool,
    nonblocking: bool,
    buf: Vec<u8>,
    last_seq: Option<u64>,
    boot_ns: i64,
    /// Times the ring overwrote records before we read them (EPIPE).
    pub overruns: u64,
}

impl Reader {
    pub fn open(root: &Root, nonblocking: bool) -> Result<Reader, ReadError> {
        let path = root.path("/dev/kmsg");
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true);
        if nonblocking {
            opts.custom_flags(libc::O_NONBLOCK);
        }
        let file = opts.open(&path).map_err(|e| ReadError {
            path: path.clone(),
            kind: read::classify(&e),
        })?;
        let is_device = file
            .metadata()
            .map(|m| m.file_type().is_char_device())
            .unwrap_or(false);
        Ok(Reader {
            file,
            path,
            is_device,
            nonblocking,
            buf: Vec::new(),
            last_seq: None,
            boot_ns: boot_time_ns(root).unwrap_or(0),
            overruns: 0,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn accept(&mut self, raw: &[u8], out: &mut Vec<Event>) {
        let Some(r) = record::parse(raw) else { return };
        if self.last_seq.is_some_and(|l| r.seq <= l) {
            return;
        }
        self.last_seq = Some(r.seq);
        if let Some(e) = to_event(&r, self.boot_ns) {
            out.push(e);
        }
    }

    /// Raw records available now. On the device: until EAGAIN (non-blocking)
    /// or one record (blocking). On a file: to its current end.
    pub fn read_records(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match self.file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) if self.is_device => {
                    out.push(chunk[..n].to_vec());
                    if !self.nonblocking {
                        break;
                    }
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => self.overruns += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if !self.is_device {
            let data = std::mem::take(&mut self.buf);
            let (recs, used) = record::split_stream(&data, true);
            out.extend(recs.into_iter().map(<[u8]>::to_vec));
            self.buf = data[used..].to_vec();
        }
        Ok(out)
    }

    /// Hardware events available now (see [`Reader::read_records`]); records
    /// already seen by this reader are skipped.
    pub fn read_available(&mut self) -> std::io::Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let recs = self.read_records()?;
            let got_any = !recs.is_empty();
            for r in recs {
                self.accept(&r, &mut out);
            }
            // A blocking device read returns one record at a time: keep reading
            // until one of them is a hardware event.
            if !(self.is_device && !self.nonblocking && got_any && out.is_empty()) {
                return Ok(out);
            }
        }
    }

    pub fn is_device(&self) -> bool {
        self.is_device
    }
}

/// The raw records in the ring now that are hardware events (for `vigil capture`:
/// an excerpt that never carries unrelated log lines).
pub fn hardware_records(root: &Root) -> Result<Vec<Vec<u8>>, ReadError> {
    let mut r = Reader::open(root, true)?;
    let path = r.path.clone();
    let recs = r.read_records().map_err(|e| ReadError {
        path,
        kind: read::classify(&e),
    })?;
    Ok(recs
        .into_iter()
        .filter(|raw| record::parse(raw).is_some_and(|rec| to_event(&rec, 0).is_some()))
        .collect())
}

/// Every event in the ring now (`--once`).
pub fn read_ring(root: &Root) -> Result<(Vec<Event>, u64), ReadError> {
    let mut r = Reader::open(root, true)?;
    let path = r.path.clone();
    let events = r.read_available().map_err(|e| ReadError {
        path,
        kind: read::classify(&e),
    })?;
    Ok((events, r.overruns))
}
