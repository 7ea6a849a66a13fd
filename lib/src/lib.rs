//! vigil-collector: read-only collectors for PCIe link, ASPM, AER, device power
//! and platform boot parameters, from a [`Root`] passed in as a value.
//!
//! The library returns typed snapshots ([`Snapshot`], serde-serialisable) and
//! knows nothing about line protocol: naming and encoding live in the `vigil`
//! binary. Only [`read`] touches the filesystem; parsers are pure.

pub mod config;
pub mod heartbeat;
pub mod pci;
pub mod platform;
pub mod read;
pub mod root;
pub mod status;
pub mod vfio;

use serde::Serialize;
use std::collections::BTreeMap;

pub use root::Root;
pub use status::{Clock, Collector, CollectorStatus, Diagnostic, Selection};

/// Everything one collection saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Shared by every line of the batch, Unix nanoseconds.
    pub time_unix_ns: i64,
    pub pci: Option<pci::PciSnapshot>,
    pub platform: Option<platform::Platform>,
    /// IOMMU groups, vfio devices and the platform's IOMMU facts.
    pub vfio: Option<vfio::VfioSnapshot>,
    pub heartbeat: Option<heartbeat::Heartbeat>,
    pub status: BTreeMap<Collector, CollectorStatus>,
    pub diagnostics: Vec<Diagnostic>,
    /// Whole collection, microseconds (0 with a fixed clock).
    pub duration_us: u64,
}

impl Snapshot {
    pub fn errors(&self) -> u64 {
        self.status.values().map(|s| s.errors).sum()
    }
}

/// One collection of the selected collectors under `root`.
pub fn collect(root: &Root, sel: &Selection, clock: Clock) -> Snapshot {
    let total = clock.start();
    let time_unix_ns = clock.now_unix_ns();
    let mut tally = status::Tally::default();
    for c in &sel.0 {
        tally.entry(*c);
    }
    let wants_pci = [
        Collector::PcieDevice,
        Collector::PcieLink,
        Collector::PcieAer,
        Collector::PcieAerStatus,
        Collector::PcieAspm,
        Collector::PciePlatform,
        Collector::IommuGroup,
        Collector::VfioDevice,
    ]
    .into_iter()
    .any(|c| sel.has(c));
    let pci = if wants_pci {
        pci::collect(root, sel, clock, &mut tally)
    } else {
        None
    };
    let wants_vfio = [
        Collector::PciePlatform,
        Collector::IommuGroup,
        Collector::VfioDevice,
    ]
    .into_iter()
    .any(|c| sel.has(c));
    let cmdline = if wants_vfio {
        platform::read_cmdline(root, &mut tally)
    } else {
        None
    };
    let vfio = wants_vfio.then(|| {
        let sw = clock.start();
        let v = vfio::collect(root, cmdline.as_deref(), pci.as_ref(), &mut tally);
        // One walk serves both collectors; attribute its time to each.
        let us = sw.elapsed_us();
        tally.add_time(Collector::IommuGroup, us);
        tally.add_time(Collector::VfioDevice, us);
        v
    });
    let platform = sel.has(Collector::PciePlatform).then(|| {
        let sw = clock.start();
        let p = platform::collect(root, cmdline.as_deref(), pci.as_ref(), &mut tally);
        tally.add_time(Collector::PciePlatform, sw.elapsed_us());
        p
    });
    let heartbeat = sel.has(Collector::Vigil).then(|| {
        let sw = clock.start();
        let h = heartbeat::collect(root, &mut tally);
        tally.add_time(Collector::Vigil, sw.elapsed_us());
        h
    });
    // Only selected collectors report; pci bookkeeping may have touched others.
    tally.status.retain(|c, _| sel.has(*c));
    Snapshot {
        time_unix_ns,
        pci,
        platform,
        vfio,
        heartbeat,
        status: tally.status,
        diagnostics: tally.diagnostics,
        duration_us: total.elapsed_us(),
    }
}
