//! What a long-running process keeps of each PCI function between
//! collections: the facts that cannot change while the device exists.
//!
//! Kept: `vendor`, `device`, `class`, `numa_node`, which ASPM files
//! `link/` has, whether the AER counter files exist, whether link files
//! exist (what says PCIe for a device whose link is not read). Read every
//! time: power state and runtime PM, link, config space, ASPM and AER
//! values, driver binding, `driver_override`, `d3cold_allowed`, `enable`,
//! the IOMMU group link, and the bus listing and topology.
//!
//! A fact is used only for a device whose directory has the identity it had
//! when the fact was read ([`crate::read::DirHandle::identity`]): sysfs
//! gives a device directory a new inode each time the device is added, so
//! a device removed and added again, or replaced at the same address, is
//! read afresh in the same collection. The config header, read every time
//! an awake device's config space is, is also checked against the kept IDs.
//!
//! Safety net: everything is forgotten every [`REFRESH`], so a change the
//! identity cannot show (an admin writing `numa_node`, a kernel that
//! changes which ASPM files are visible without re-adding the device) is
//! reported within that interval.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::observer::KnownIds;
use super::Severity;

/// How long a kept fact is trusted before the next full read.
pub const REFRESH: Duration = Duration::from_secs(300);

/// One device's kept facts; `None`: not known, read it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub ids: KnownIds,
    /// `None` also when it could not be read: it is read again next time.
    pub class: Option<u32>,
    pub numa_node: Option<Option<i64>>,
    /// ASPM files present in `link/`; `Some(None)`: no `link/` directory.
    pub aspm_files: Option<Option<Vec<&'static str>>>,
    /// Which severities have an `aer_dev_*` file.
    pub aer_dev: Option<Vec<Severity>>,
    /// Which severities have an `aer_rootport_total_*` file.
    pub rootport: Option<Vec<Severity>>,
    /// A link file exists (the device is PCI Express).
    pub link_files: Option<bool>,
}

/// Kept facts by address, owned by the long-running loop.
#[derive(Debug, Default)]
pub struct Memory {
    devices: HashMap<String, Known>,
    since: Option<Instant>,
}

impl Memory {
    /// Start a collection: past [`REFRESH`], forget everything.
    pub fn begin(&mut self, now: Instant) {
        if self
            .since
            .is_none_or(|s| now.saturating_duration_since(s) >= REFRESH)
        {
            self.devices.clear();
            self.since = Some(now);
        }
    }

    pub fn get(&self, address: &str) -> Option<&Known> {
        self.devices.get(address)
    }

    pub fn ids(&self, address: &str) -> Option<KnownIds> {
        self.devices.get(address).map(|k| k.ids.clone())
    }

    pub fn keep(&mut self, address: String, known: Known) {
        self.devices.insert(address, known);
    }

    /// Only devices still on the bus are kept.
    pub fn retain(&mut self, on_bus: impl Fn(&str) -> bool) {
        self.devices.retain(|a, _| on_bus(a));
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_read_afresh_after_the_refresh_interval() {
        let t0 = Instant::now();
        let mut m = Memory::default();
        m.begin(t0);
        m.keep("0000:00:01.0".into(), Known::default());
        m.begin(t0 + REFRESH - Duration::from_secs(1));
        assert_eq!(m.len(), 1, "kept within the interval");
        m.begin(t0 + REFRESH);
        assert!(m.is_empty(), "forgotten at the interval");
    }

    #[test]
    fn devices_gone_from_the_bus_are_forgotten() {
        let mut m = Memory::default();
        m.begin(Instant::now());
        m.keep("0000:00:01.0".into(), Known::default());
        m.keep("0000:00:02.0".into(), Known::default());
        m.retain(|a| a == "0000:00:02.0");
        assert!(m.get("0000:00:01.0").is_none());
        assert!(m.get("0000:00:02.0").is_some());
    }
}
