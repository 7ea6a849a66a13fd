//! The storm limit: at most [`BURST`] events per category *and device* per
//! [`WINDOW_US`] of kernel time. Kernel time, not wall time: the start-up replay
//! of the ring (minutes or days old) spends its own windows, never the live
//! ones, and a restart replaying the same ring makes the same decisions (so the
//! same points). What must be seen always passes: critical events (uncorrectable
//! and fatal AER, DPC, lockups, panics, Xid, fatal machine checks) and the first
//! IOMMU fault of each device.

use std::collections::{BTreeMap, BTreeSet};

use super::{Category, Event};

pub const BURST: u32 = 20;
pub const WINDOW_US: u64 = 10_000_000;
/// Keys tracked at once; the oldest window is forgotten beyond this (a storm of
/// distinct devices cannot grow memory).
const MAX_KEYS: usize = 1024;

type Key = (Category, Option<String>);

/// Events held back for one key since the last [`Limiter::take_suppressed`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppressed {
    pub category: Category,
    pub address: Option<String>,
    pub count: u64,
    /// The last suppressed event's own (unique) time: the summary point takes
    /// its place, so it never lands on another event's point.
    pub time_unix_ns: i64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    /// Window start (kernel usec) and events admitted in it, per key.
    windows: BTreeMap<Key, (u64, u32)>,
    iommu_seen: BTreeSet<Option<String>>,
    suppressed: BTreeMap<Key, (u64, i64)>,
}

impl Limiter {
    /// Whether `e` (logged at kernel time `usec`) is written.
    pub fn admit(&mut self, e: &Event) -> bool {
        let usec = e.usec;
        if e.critical || self.first_iommu_fault(e) {
            return true;
        }
        let key = (e.category, e.address.clone());
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_KEYS {
            self.forget_oldest();
        }
        let (start, n) = self.windows.entry(key.clone()).or_insert((usec, 0));
        if usec < *start || usec - *start >= WINDOW_US {
            *start = usec;
            *n = 0;
        }
        if *n < BURST {
            *n += 1;
            return true;
        }
        let s = self.suppressed.entry(key).or_insert((0, e.time_unix_ns));
        s.0 += 1;
        s.1 = e.time_unix_ns;
        false
    }

    fn first_iommu_fault(&mut self, e: &Event) -> bool {
        if e.category != Category::IommuFault || self.iommu_seen.contains(&e.address) {
            return false;
        }
        if self.iommu_seen.len() < MAX_KEYS {
            self.iommu_seen.insert(e.address.clone());
        }
        true
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .windows
            .iter()
            .min_by_key(|(_, (start, _))| *start)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.windows.remove(&k);
        }
    }

    /// What was held back since the last call, one summary per key.
    pub fn take_suppressed(&mut self) -> Vec<Suppressed> {
        std::mem::take(&mut self.suppressed)
            .into_iter()
            .map(|((category, address), (count, time_unix_ns))| Suppressed {
                category,
                address,
                count,
                time_unix_ns,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(category: Category, address: &str, critical: bool, usec: u64) -> Event {
        Event {
            category,
            address: Some(address.into()),
            critical,
            level: 3,
            seq: usec,
            usec,
            time_unix_ns: i64::try_from(usec).unwrap_or(0) * 1000,
            message: String::new(),
        }
    }

    #[test]
    fn storms_are_cut_per_device_and_counted() {
        let mut l = Limiter::default();
        let passed = (0..100)
            .filter(|i| l.admit(&ev(Category::Aer, "0000:00:1c.5", false, *i)))
            .count();
        assert_eq!(passed, BURST as usize);
        assert!(
            l.admit(&ev(Category::Aer, "0000:40:01.2", false, 100)),
            "another device has its own window"
        );
        assert!(
            l.admit(&ev(Category::Aer, "0000:00:1c.5", true, 101)),
            "an uncorrectable error always passes"
        );
        let s = l.take_suppressed();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].count, s[0].time_unix_ns), (80, 99_000));
        assert!(l.take_suppressed().is_empty());
        assert!(
            l.admit(&ev(Category::Aer, "0000:00:1c.5", false, WINDOW_US)),
            "a new window of kernel time admits again"
        );
    }

    #[test]
    fn the_first_iommu_fault_of_a_device_always_passes() {
        let mut l = Limiter::default();
        for i in 0..50 {
            l.admit(&ev(Category::IommuFault, "0000:01:00.0", false, i));
        }
        assert!(l.admit(&ev(Category::IommuFault, "0000:02:00.0", false, 50)));
        assert!(!l.admit(&ev(Category::IommuFault, "0000:01:00.0", false, 51)));
    }

    #[test]
    fn replayed_boot_lines_do_not_spend_the_live_window() {
        let mut l = Limiter::default();
        for i in 0..30 {
            l.admit(&ev(Category::PcieLink, "0000:00:1c.0", false, i));
        }
        let live = 86_400_000_000;
        assert!(l.admit(&ev(Category::PcieLink, "0000:00:1c.0", false, live)));
    }
}
