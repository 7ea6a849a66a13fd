//! Hardware watchdogs (`/sys/class/watchdog`): one that is active resets a
//! frozen node. Attributes only, never `/dev/watchdog` (opening it arms it).

use super::{Forensics, C};
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

pub fn collect(root: &Root, f: &mut Forensics, tally: &mut Tally) {
    match read::list_dir(&root.path("/sys/class/watchdog")) {
        Ok(wds) => {
            f.hw_watchdog = Some(false);
            for w in wds {
                let dir = format!("/sys/class/watchdog/{w}");
                let attr = |name: &str| read::read_attr(&root.path(&format!("{dir}/{name}")));
                let active = attr("state").is_ok_and(|s| s.trim() == "active");
                if active && f.hw_watchdog != Some(true) {
                    f.hw_watchdog = Some(true);
                    f.hw_watchdog_timeout_s =
                        attr("timeout").ok().and_then(|t| t.trim().parse().ok());
                    f.hw_watchdog_identity = attr("identity").ok().map(|s| s.trim().to_string());
                }
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => f.hw_watchdog = Some(false),
        Err(e) => tally.read_failed(C, &e),
    }
}
