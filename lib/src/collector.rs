//! Which collectors exist (by their contract names), and which a run selected.

use serde::Serialize;
use std::collections::BTreeSet;

/// Every collector, by its contract name. The CLI's `--collectors` list and
/// the `vigil_collector` lines are driven from this one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    PcieDevice,
    PcieLink,
    PcieAer,
    PcieAerStatus,
    PcieAspm,
    PciePlatform,
    IommuGroup,
    VfioDevice,
    CrashForensics,
    KernelEvent,
    Vigil,
    Edac,
}

impl Collector {
    pub const ALL: [Collector; 12] = [
        Collector::PcieDevice,
        Collector::PcieLink,
        Collector::PcieAer,
        Collector::PcieAerStatus,
        Collector::PcieAspm,
        Collector::PciePlatform,
        Collector::IommuGroup,
        Collector::VfioDevice,
        Collector::CrashForensics,
        Collector::KernelEvent,
        Collector::Vigil,
        Collector::Edac,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collector::PcieDevice => "pcie_device",
            Collector::PcieLink => "pcie_link",
            Collector::PcieAer => "pcie_aer",
            Collector::PcieAerStatus => "pcie_aer_status",
            Collector::PcieAspm => "pcie_aspm",
            Collector::PciePlatform => "pcie_platform",
            Collector::IommuGroup => "iommu_group",
            Collector::VfioDevice => "vfio_device",
            Collector::CrashForensics => "crash_forensics",
            Collector::KernelEvent => "kernel_event",
            Collector::Vigil => "vigil",
            Collector::Edac => "edac",
        }
    }

    pub fn from_name(s: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection(pub BTreeSet<Collector>);

impl Selection {
    pub fn all() -> Selection {
        Selection(Collector::ALL.into_iter().collect())
    }
    pub fn has(&self, c: Collector) -> bool {
        self.0.contains(&c)
    }
}
