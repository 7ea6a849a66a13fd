//! What a long-running process keeps of each PCI function between
//! collections: the facts that cannot change while the device exists, and
//! the open device directory.
//!
//! Kept: the topology (the bus link's target), `vendor`, `device`, `class`,
//! `numa_node`, which ASPM files `link/` has, whether the AER counter files
//! exist, whether link files exist (what says PCIe for a device whose link
//! is not read), the headers of its extended capability chain (the kernel
//! too finds each capability once, when the device is added), and the device
//! directory, open, so a warm collection opens
//! each file relative to it without walking the bus link again. Read every
//! time: power state and runtime PM, link, config space, ASPM and AER
//! values, driver binding, `driver_override`, `d3cold_allowed`, `enable`,
//! the IOMMU group link, and the bus listing.
//!
//! A fact is used only for the device it was read from, told apart by
//! two checks that cost nothing extra:
//! - the bus listing's inode number for the entry
//!   ([`crate::read::DirHandle::list_inodes`]): sysfs creates a device's bus
//!   link with the device and numbers its nodes from a counter, so a device
//!   removed and added again, or replaced at the same address, lists with
//!   another number and is read afresh in the same collection, topology
//!   included;
//! - the kept directory is alive: `power_state` or `power/runtime_status`,
//!   present when the facts were read, cannot vanish from a live device, so
//!   their absence means the directory was removed (in a replay tree, where
//!   an inode number can be reused at once): it is opened again by name and
//!   everything is read afresh. A directory not kept open (past the budget)
//!   is opened each collection and its identity (one `fstat`) compared.
//!
//! The config header, read every time an awake device's config space is, is
//! also checked against the kept IDs (other IDs: the config space is read
//! again, its chain walked afresh), and the extended capability headers
//! that its first range holds against the kept chain
//! ([`super::config_space::read_sparse_into`]): one that disagrees means the
//! whole chain is walked afresh.
//!
//! Where the last collection found the AER counters not counting
//! (`pci=noaer`, no OS-native AER), a known device's counter files are not
//! read: their counts would be dropped. Which files exist is kept.
//!
//! Safety net: everything is forgotten every [`REFRESH`] (the directories
//! closed), so a change none of these shows (an admin writing `numa_node`,
//! a kernel that changes which ASPM files are visible without re-adding the
//! device, a capability chain rewired past the first range by a firmware
//! load the kernel did not see either) is reported within that interval.
//!
//! Directories are kept open up to [`Memory::budget`], a share of the
//! process's descriptor limit; past it a device's directory is opened
//! each collection, and its facts are still kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::read::{DirHandle, HeldFile};

/// How long a kept fact is trusted before the next full read.
pub const REFRESH: Duration = Duration::from_secs(300);

/// Descriptors left to everything else (the kernel log, the reads of one
/// collection, the observer's queue, `/proc/*/fd` scans).
const DESCRIPTORS_SPARED: u64 = 512;

/// What the observer thread is given of a kept device.
#[derive(Debug, Clone, Default)]
pub struct KnownIds {
    /// The bus entry's inode number when the facts were read.
    pub entry: u64,
    /// As read (shared with each collection's observer, not copied).
    pub vendor: super::observer::Text,
    pub device: super::observer::Text,
    /// The device directory, kept open.
    pub dir: Option<Arc<DirHandle>>,
    /// Its `config`, kept open (read with `pread`, no open or `fstat`).
    pub config: Option<Arc<HeldFile>>,
    /// The directory's identity ([`DirHandle::identity`]), to check one
    /// opened again (past the budget) against.
    pub dir_identity: Option<(u64, u64)>,
    /// `power_state` and `power/runtime_status` existed.
    pub power_files: [bool; 2],
    /// The extended capability headers of its config space, as first walked.
    pub ecaps: Option<Arc<[(u16, u32)]>>,
}

/// One device's kept facts; `None`: not known, read it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub ids: KnownIds,
    /// PCI devices above it, nearest last (see [`super::PciDevice::ancestors`]).
    pub chain: super::Chain,
    /// Its directory lies right inside the nearest one's.
    pub direct: bool,
    /// `None` also when it could not be read: it is read again next time.
    pub class: Option<u32>,
    pub numa_node: Option<Option<i64>>,
    /// ASPM files present in `link/`; `Some(None)`: no `link/` directory.
    pub aspm_files: Option<Option<Vec<&'static str>>>,
    /// Which severities have an `aer_dev_*` file.
    pub aer_dev: Option<super::Severities>,
    /// Which severities have an `aer_rootport_total_*` file.
    pub rootport: Option<super::Severities>,
    /// A link file exists (the device is PCI Express).
    pub link_files: Option<bool>,
}

/// Kept facts by address, owned by the long-running loop.
#[derive(Debug, Default)]
pub struct Memory {
    devices: HashMap<String, Known>,
    since: Option<Instant>,
    /// Devices whose directory is kept open.
    open: usize,
    /// [`Memory::budget`], as of this collection's start.
    budget: usize,
    /// The last collection found the AER counters not counting (`pci=noaer`,
    /// no OS-native AER): their counts would be dropped, so known devices'
    /// counter files are not read. Forgotten at [`REFRESH`] like the rest.
    aer_not_counting: bool,
}

impl Memory {
    /// Start a collection: past [`REFRESH`], forget everything.
    pub fn begin(&mut self, now: Instant) {
        if self
            .since
            .is_none_or(|s| now.saturating_duration_since(s) >= REFRESH)
        {
            self.devices.clear();
            self.open = 0;
            self.aer_not_counting = false;
            self.since = Some(now);
        }
        self.budget = Memory::budget();
    }

    /// Whether AER counts can go unread this collection (see the field).
    pub fn aer_not_counting(&self) -> bool {
        self.aer_not_counting
    }

    /// Remember this collection's verdict on AER counting for the next one.
    pub fn set_aer_not_counting(&mut self, not_counting: bool) {
        self.aer_not_counting = not_counting;
    }

    /// What is kept of the device listed as `address` with inode `entry`;
    /// nothing when the entry is another one (the device was added again).
    pub fn get(&self, address: &str, entry: u64) -> Option<&Known> {
        self.devices.get(address).filter(|k| k.ids.entry == entry)
    }

    /// Keep `known`, and `dir` and `config` open if the budget allows;
    /// whether a directory of the device is kept open.
    pub fn keep(
        &mut self,
        address: String,
        mut known: Known,
        dir: &Arc<DirHandle>,
        config: Option<Arc<HeldFile>>,
    ) -> bool {
        if let Some(old) = self.devices.remove(&address) {
            self.open -= usize::from(old.ids.dir.is_some());
        }
        (known.ids.dir, known.ids.config) = (None, None);
        self.devices.insert(address.clone(), known);
        self.hold(&address, dir, config)
    }

    /// Keep `dir` (and `config`, if given) open for a kept device that has
    /// none, if the budget allows; whether a directory of it is kept open.
    pub fn hold(
        &mut self,
        address: &str,
        dir: &Arc<DirHandle>,
        config: Option<Arc<HeldFile>>,
    ) -> bool {
        let room = self.open < self.budget;
        let Some(k) = self.devices.get_mut(address) else {
            return false;
        };
        if k.ids.dir.is_none() && room {
            k.ids.dir = Some(Arc::clone(dir));
            self.open += 1;
        }
        if k.ids.dir.is_some() && k.ids.config.is_none() {
            k.ids.config = config;
        }
        k.ids.dir.is_some()
    }

    /// Most devices kept open (two descriptors each: the directory and
    /// `config`): what the descriptor limit leaves once
    /// [`DESCRIPTORS_SPARED`] are set aside (256 devices at the usual
    /// 1,024; the execd loop raises its limit where it may).
    pub fn budget() -> usize {
        let limit = crate::read::descriptor_limit();
        usize::try_from(limit.saturating_sub(DESCRIPTORS_SPARED) / 2).unwrap_or(usize::MAX)
    }

    /// Only devices still on the bus are kept.
    pub fn retain(&mut self, on_bus: impl Fn(&str) -> bool) {
        self.devices.retain(|a, _| on_bus(a));
        self.open = self
            .devices
            .values()
            .filter(|k| k.ids.dir.is_some())
            .count();
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

    fn dir() -> Arc<DirHandle> {
        Arc::new(DirHandle::open(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).expect("dir"))
    }

    #[test]
    fn everything_is_read_afresh_after_the_refresh_interval() {
        let t0 = Instant::now();
        let mut m = Memory::default();
        m.begin(t0);
        m.keep("0000:00:01.0".into(), Known::default(), &dir(), None);
        m.begin(t0 + REFRESH - Duration::from_secs(1));
        assert_eq!(m.len(), 1, "kept within the interval");
        m.begin(t0 + REFRESH);
        assert!(m.is_empty(), "forgotten at the interval");
    }

    #[test]
    fn devices_gone_from_the_bus_are_forgotten() {
        let mut m = Memory::default();
        m.begin(Instant::now());
        m.keep("0000:00:01.0".into(), Known::default(), &dir(), None);
        m.keep("0000:00:02.0".into(), Known::default(), &dir(), None);
        m.retain(|a| a == "0000:00:02.0");
        assert!(m.get("0000:00:01.0", 0).is_none());
        assert!(m.get("0000:00:02.0", 0).is_some());
        assert_eq!(m.open, 1, "the directory of a device gone is closed");
    }

    #[test]
    fn a_device_listed_with_another_inode_is_not_the_kept_one() {
        let mut m = Memory::default();
        m.begin(Instant::now());
        let known = Known {
            ids: KnownIds {
                entry: 7,
                ..KnownIds::default()
            },
            ..Known::default()
        };
        m.keep("0000:00:01.0".into(), known, &dir(), None);
        assert!(m.get("0000:00:01.0", 7).is_some());
        assert!(m.get("0000:00:01.0", 8).is_none(), "added again");
    }
}
