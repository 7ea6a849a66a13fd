//! pstore: a backend that keeps the last kernel messages across a reset, and
//! the records it (or systemd-pstore, which archives them) holds now.

use std::path::Path;

use super::{Forensics, C};
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

pub fn collect(root: &Root, f: &mut Forensics, tally: &mut Tally) {
    f.pstore_backend = match read::read_attr(&root.path("/sys/module/pstore/parameters/backend")) {
        Ok(v) => Some(backend(&v)),
        Err(e) if e.kind == ErrorKind::Absent => Some("none".into()),
        Err(e) => {
            tally.read_failed(C, &e);
            None
        }
    };
    let mut records = 0u64;
    let mut counted = true;
    for dir in ["/sys/fs/pstore", "/var/lib/systemd/pstore"] {
        match read::list_dir(&root.path(dir)) {
            Ok(_) => records += count_files(&root.path(dir), 0),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => {
                counted = false;
                tally.read_failed(C, &e);
            }
        }
    }
    f.pstore_records = counted.then_some(records);
}

/// The module parameter: empty or `(null)` when no backend registered.
pub fn backend(value: &str) -> String {
    match value.trim() {
        "" | "(null)" => "none".into(),
        v => v.to_string(),
    }
}

/// Records are files; systemd-pstore archives them in per-boot directories.
fn count_files(dir: &Path, depth: u32) -> u64 {
    if depth > 3 {
        return 0;
    }
    read::list_dir(dir)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let p = dir.join(n);
            match read::meta(&p) {
                Ok(m) if m.dir => count_files(&p, depth + 1),
                Ok(_) => 1,
                Err(_) => 0,
            }
        })
        .sum()
}
