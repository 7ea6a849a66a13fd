//! The `vigil` heartbeat: which boot this is and how long it has been up, so a
//! silence can be dated and a reboot recognised from outside (boot_id changes).

use serde::Serialize;

use crate::collector::Collector;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Heartbeat {
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: Option<String>,
    /// First number of `/proc/uptime`, seconds.
    pub uptime_s: Option<f64>,
}

/// `/proc/uptime`: `"12345.67 54321.00\n"`.
pub fn parse_uptime(s: &str) -> Option<f64> {
    s.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// A boot id is a UUID; anything else is not trusted as one.
pub fn parse_boot_id(s: &str) -> Option<String> {
    let t = s.trim();
    let ok = t.len() == 36
        && t.chars().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    ok.then(|| t.to_ascii_lowercase())
}

pub fn collect(root: &Root, tally: &mut Tally) -> Heartbeat {
    let c = Collector::Vigil;
    let mut hb = Heartbeat::default();
    match read::read_attr(&root.path("/proc/sys/kernel/random/boot_id")) {
        Ok(s) => match parse_boot_id(&s) {
            Some(id) => hb.boot_id = Some(id),
            None => tally.error(
                c,
                format!(
                    "boot_id is not a UUID: {:?}",
                    s.chars().take(40).collect::<String>()
                ),
            ),
        },
        Err(e) => tally.read_failed(c, &e),
    }
    match read::read_attr(&root.path("/proc/uptime")) {
        Ok(s) => match parse_uptime(&s) {
            Some(v) => hb.uptime_s = Some(v),
            None => tally.error(
                c,
                format!(
                    "/proc/uptime unparsable: {:?}",
                    s.chars().take(40).collect::<String>()
                ),
            ),
        },
        Err(e) => tally.read_failed(c, &e),
    }
    hb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_and_boot_id() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735.47));
        assert_eq!(parse_uptime("garbage"), None);
        assert_eq!(parse_uptime("NaN 1"), None);
        assert_eq!(
            parse_boot_id("3B1F4A2C-8E0D-4C55-9B7A-2F6E1D0C9A88\n").as_deref(),
            Some("3b1f4a2c-8e0d-4c55-9b7a-2f6e1d0c9a88")
        );
        assert_eq!(parse_boot_id("not-a-uuid"), None);
    }
}
