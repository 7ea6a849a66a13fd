//! `/proc/self/mountinfo`: which filesystem really holds a path.

use crate::collector::Collector;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

/// The paths readiness asks about (journald.rs, ramlog.rs): only mounts at or
/// above them are kept, so a table of any size fits in little memory.
pub const ASKED: [&str; 4] = [
    "/var/log/journal",
    "/var/hdd.log",
    "/var/folder2ram/var/log",
    "/var/log.hdd",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
}

impl Mount {
    /// RAM-backed: tmpfs, ramfs, or a zram block device (log2ram ZL2R, Armbian ramlog).
    pub fn in_ram(&self) -> bool {
        matches!(self.fstype.as_str(), "tmpfs" | "ramfs") || self.source.starts_with("/dev/zram")
    }
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw` (proc(5)).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

pub fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split_whitespace().nth(4)?;
    let mut r = right.split_whitespace();
    let (fstype, source) = (r.next()?, r.next()?);
    Some(Mount {
        mount_point: unescape(mount_point),
        fstype: fstype.to_string(),
        source: unescape(source),
    })
}

/// Whether a mount at `point` can hold one of [`ASKED`], or is one.
fn relevant(point: &str) -> bool {
    ASKED
        .iter()
        .any(|a| *a == point || point == "/" || a.starts_with(&format!("{point}/")))
}

/// The mounts that matter for [`ASKED`], streamed from `/proc/self/mountinfo`
/// whatever its size; empty, and tallied, when it cannot be read whole
/// (never a partial table, whose answers could be wrong).
pub fn read(root: &Root, tally: &mut Tally) -> Vec<Mount> {
    let mut out = Vec::new();
    let r = read::read_lines(&root.path("/proc/self/mountinfo"), |line| {
        if let Some(m) = parse_line(line).filter(|m| relevant(&m.mount_point)) {
            out.push(m);
        }
    });
    match r {
        Ok(()) => out,
        Err(e) => {
            tally.read_failed(Collector::CrashForensics, &e);
            Vec::new()
        }
    }
}

/// Octal escapes (`\040` for space) as the kernel writes them.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path`: longest mount-point prefix, the last one mounted
/// winning for the same point (over-mounts).
pub fn holding<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        let mp = m.mount_point.as_str();
        let under = path == mp || mp == "/" || path.starts_with(&format!("{mp}/"));
        if under && best.is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(m);
        }
    }
    best
}

pub fn at<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG2RAM: &str = "22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw\n\
        30 22 179:2 /var/log /var/hdd.log rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw\n\
        31 22 0:27 / /var/log rw,nosuid,nodev,noexec,noatime shared:12 - tmpfs log2ram rw,size=131072k,mode=755,inode64\n";

    #[test]
    fn log2ram_tmpfs_holds_the_journal() {
        let m = parse(LOG2RAM);
        assert_eq!(m.len(), 3);
        let j = holding(&m, "/var/log/journal").expect("mount");
        assert_eq!(
            (j.fstype.as_str(), j.source.as_str(), j.in_ram()),
            ("tmpfs", "log2ram", true)
        );
        assert_eq!(
            holding(&m, "/var/hdd.log/syslog").map(|m| m.mount_point.as_str()),
            Some("/var/hdd.log")
        );
        assert!(!holding(&m, "/etc").expect("root").in_ram());
    }

    #[test]
    fn zram_and_escapes() {
        let m = parse("40 22 254:1 / /var/log rw,relatime - ext4 /dev/zram1 rw,discard\n41 22 8:1 / /mnt/my\\040disk rw - ext4 /dev/sda1 rw\n");
        assert!(m[0].in_ram());
        assert_eq!(m[1].mount_point, "/mnt/my disk");
        assert!(parse("garbage\n\n").is_empty());
    }
}
