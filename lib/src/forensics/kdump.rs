//! kdump: a crash kernel loaded, and the memory reserved for it.

use super::{Forensics, C};
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

pub fn collect(root: &Root, f: &mut Forensics, tally: &mut Tally) {
    f.kdump_loaded = first_ok(
        root,
        [
            "/sys/kernel/kexec_crash_loaded",
            "/sys/kernel/kexec/crash_loaded",
        ],
        tally,
    )
    .map(|v| v == "1");
    f.crashkernel_bytes = first_ok(
        root,
        [
            "/sys/kernel/kexec_crash_size",
            "/sys/kernel/kexec/crash_size",
        ],
        tally,
    )
    .and_then(|v| v.parse().ok());
}

/// The first of the attribute's places that exists (older kernels, newer
/// kernels), trimmed; a failure other than absence ends the search unknown.
fn first_ok(root: &Root, paths: [&str; 2], tally: &mut Tally) -> Option<String> {
    for p in paths {
        match read::read_attr(&root.path(p)) {
            Ok(v) => return Some(v.trim().to_string()),
            Err(e) if e.kind == ErrorKind::Absent => continue,
            Err(e) => {
                tally.read_failed(C, &e);
                return None;
            }
        }
    }
    None
}
