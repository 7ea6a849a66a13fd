//! Lockup detectors and panic settings (`/proc/sys/kernel/*`): whether a hung
//! node panics, and whether a panic reboots it.

use super::{read_or_tally, Forensics, C};
use crate::root::Root;
use crate::status::Tally;

pub fn collect(root: &Root, f: &mut Forensics, tally: &mut Tally) {
    f.nmi_watchdog = flag(root, "nmi_watchdog", tally);
    f.soft_watchdog = flag(root, "soft_watchdog", tally);
    f.hardlockup_panic = flag(root, "hardlockup_panic", tally);
    f.softlockup_panic = flag(root, "softlockup_panic", tally);
    f.hung_task_panic = flag(root, "hung_task_panic", tally);
    f.panic_on_oops = flag(root, "panic_on_oops", tally);
    f.panic_reboot_s = int(root, "panic", tally);
}

fn flag(root: &Root, name: &str, tally: &mut Tally) -> Option<bool> {
    int(root, name, tally).map(|v| v > 0)
}

fn int(root: &Root, name: &str, tally: &mut Tally) -> Option<i64> {
    let p = format!("/proc/sys/kernel/{name}");
    let t = read_or_tally(root, &p, tally)?;
    match t.trim().parse::<i64>() {
        Ok(v) => Some(v),
        Err(_) => {
            tally.error(C, format!("{p}: {:?} is not a number", t.trim()));
            None
        }
    }
}
