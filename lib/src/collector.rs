//! Which collectors exist, what each reads and writes ([`TABLE`]), and which
//! a run selected.

use serde::Serialize;
use std::collections::BTreeSet;

/// Every collector; what each one is lives in [`TABLE`].
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

/// What a collection reads, one worker job each ([`crate::jobs`]). A source
/// is read when a selected collector needs it; when its job does not come
/// back in time, every selected collector that needs it says
/// `unavailable="timeout"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The PCI device tree: its sysfs attributes.
    Pci,
    /// Each device's config space (read within the PCI tree's job).
    ConfigSpace,
    /// `/proc/cmdline`.
    Cmdline,
    /// Whether the PCIe AER port service is bound (OS-native AER).
    AerService,
    /// IOMMU groups, vfio binding, intent and Proxmox configs.
    Vfio,
    /// ASPM policy and the platform's counts of the PCI tree.
    Platform,
    /// Logging, pstore, kdump, sysctl and watchdog settings.
    Forensics,
    /// The kernel ring (`/dev/kmsg`).
    Kmsg,
    /// Boot id and uptime.
    Heartbeat,
    /// EDAC memory-controller counters.
    Edac,
}

/// One row of the collector table.
#[derive(Debug)]
pub struct Spec {
    pub collector: Collector,
    /// The contract name: `--collectors`, `vigil_collector,collector=...`.
    pub name: &'static str,
    /// Everything it needs read; [`Selection::wants`] and the jobs' timeout
    /// reports come from this.
    pub sources: &'static [Source],
    /// The measurements it produces (docs/metrics.md has a section for each;
    /// a test keeps them equal). `vigil_collector` is every collector's.
    pub measurements: &'static [&'static str],
    /// Its line in `--help`, the man page and the shell completions.
    pub help: &'static str,
}

use Source::{
    AerService, Cmdline, ConfigSpace, Edac as EdacCounters, Forensics, Heartbeat, Kmsg, Pci,
    Platform, Vfio,
};

/// The collector table: the one place that says what a collector is called,
/// what it reads, what it writes and how `--help` describes it. In
/// [`Collector::ALL`] order.
pub const TABLE: [Spec; 12] = [
    Spec {
        collector: Collector::PcieDevice,
        name: "pcie_device",
        sources: &[Pci, ConfigSpace],
        measurements: &["pcie_device"],
        help: "identity, driver, power state, reachable",
    },
    Spec {
        collector: Collector::PcieLink,
        name: "pcie_link",
        sources: &[Pci, ConfigSpace],
        measurements: &["pcie_link"],
        help: "link speed and width against what is expected, link up",
    },
    Spec {
        collector: Collector::PcieAer,
        name: "pcie_aer",
        // Counts are dropped under `pci=noaer` or without OS-native AER.
        sources: &[Pci, Cmdline, AerService],
        measurements: &["pcie_aer"],
        help: "AER error counters per device",
    },
    Spec {
        collector: Collector::PcieAerStatus,
        name: "pcie_aer_status",
        sources: &[Pci, ConfigSpace],
        measurements: &["pcie_aer_status"],
        help: "Device Status, AER and DPC registers (needs CAP_SYS_ADMIN)",
    },
    Spec {
        collector: Collector::PcieAspm,
        name: "pcie_aspm",
        sources: &[Pci, ConfigSpace],
        measurements: &["pcie_aspm"],
        help: "ASPM as the kernel manages it and as the hardware has it",
    },
    Spec {
        collector: Collector::PciePlatform,
        name: "pcie_platform",
        // Its IOMMU fields come from the vfio walk.
        sources: &[Pci, Cmdline, AerService, Vfio, Platform],
        measurements: &["pcie_platform"],
        help: "boot parameters, ASPM policy, AER and IOMMU mode",
    },
    Spec {
        collector: Collector::IommuGroup,
        name: "iommu_group",
        sources: &[Pci, Cmdline, Vfio],
        measurements: &["iommu_group"],
        help: "IOMMU groups: members, and whether they can be passed through",
    },
    Spec {
        collector: Collector::VfioDevice,
        name: "vfio_device",
        sources: &[Pci, Cmdline, Vfio],
        measurements: &["vfio_device"],
        help: "vfio-pci binding, intent, and the VM that holds the device",
    },
    Spec {
        collector: Collector::CrashForensics,
        name: "crash_forensics",
        // Findings weigh the platform's AER and ASPM facts and the tree's ASPM.
        sources: &[Pci, ConfigSpace, Cmdline, AerService, Platform, Forensics],
        measurements: &["crash_forensics"],
        help: "would a freeze leave evidence: readiness score, findings",
    },
    Spec {
        collector: Collector::KernelEvent,
        name: "kernel_event",
        sources: &[Kmsg],
        measurements: &["kernel_event"],
        help: "hardware events from /dev/kmsg (AER, DPC, Xid, lockups...)",
    },
    Spec {
        collector: Collector::Vigil,
        name: "vigil",
        sources: &[Heartbeat],
        measurements: &["vigil"],
        help: "heartbeat: version, boot_id, uptime, collection time",
    },
    Spec {
        collector: Collector::Edac,
        name: "edac",
        sources: &[EdacCounters],
        measurements: &["edac_mc", "edac_dimm"],
        help: "memory errors per controller and DIMM (EDAC)",
    },
];

impl Collector {
    pub const ALL: [Collector; 12] = {
        let mut all = [Collector::Vigil; 12];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].collector;
            i += 1;
        }
        all
    };

    /// Its row of [`TABLE`].
    pub fn spec(self) -> &'static Spec {
        // The table is in enum order (a test checks).
        &TABLE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn help(self) -> &'static str {
        self.spec().help
    }

    pub fn reads(self, source: Source) -> bool {
        self.spec().sources.contains(&source)
    }

    pub fn from_name(s: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The collector that writes `measurement`.
    pub fn writing(measurement: &str) -> Option<Collector> {
        TABLE
            .iter()
            .find(|s| s.measurements.contains(&measurement))
            .map(|s| s.collector)
    }
}

impl Source {
    /// Every collector that needs this source, in table order: the ones told
    /// when it does not come back in time.
    pub const fn readers(self) -> &'static [Collector] {
        match self {
            Pci => &READERS_PCI,
            ConfigSpace => &READERS_CONFIG_SPACE,
            Cmdline => &READERS_CMDLINE,
            AerService => &READERS_AER_SERVICE,
            Vfio => &READERS_VFIO,
            Platform => &READERS_PLATFORM,
            Forensics => &READERS_FORENSICS,
            Kmsg => &READERS_KMSG,
            Heartbeat => &READERS_HEARTBEAT,
            EdacCounters => &READERS_EDAC,
        }
    }
}

/// How many collectors read `source`.
const fn count(source: Source) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < TABLE.len() {
        n += reads(&TABLE[i], source) as usize;
        i += 1;
    }
    n
}

const fn reads(spec: &Spec, source: Source) -> bool {
    let mut j = 0;
    while j < spec.sources.len() {
        if spec.sources[j] as u8 == source as u8 {
            return true;
        }
        j += 1;
    }
    false
}

/// The collectors that read `source`, in table order.
const fn readers<const N: usize>(source: Source) -> [Collector; N] {
    let mut out = [Collector::Vigil; N];
    let (mut n, mut i) = (0, 0);
    while i < TABLE.len() {
        if reads(&TABLE[i], source) {
            out[n] = TABLE[i].collector;
            n += 1;
        }
        i += 1;
    }
    out
}

const READERS_PCI: [Collector; count(Pci)] = readers(Pci);
const READERS_CONFIG_SPACE: [Collector; count(ConfigSpace)] = readers(ConfigSpace);
const READERS_CMDLINE: [Collector; count(Cmdline)] = readers(Cmdline);
const READERS_AER_SERVICE: [Collector; count(AerService)] = readers(AerService);
const READERS_VFIO: [Collector; count(Vfio)] = readers(Vfio);
const READERS_PLATFORM: [Collector; count(Platform)] = readers(Platform);
const READERS_FORENSICS: [Collector; count(Forensics)] = readers(Forensics);
const READERS_KMSG: [Collector; count(Kmsg)] = readers(Kmsg);
const READERS_HEARTBEAT: [Collector; count(Heartbeat)] = readers(Heartbeat);
const READERS_EDAC: [Collector; count(EdacCounters)] = readers(EdacCounters);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection(pub BTreeSet<Collector>);

impl Selection {
    pub fn all() -> Selection {
        Selection(Collector::ALL.into_iter().collect())
    }
    pub fn has(&self, c: Collector) -> bool {
        self.0.contains(&c)
    }
    /// Whether a selected collector needs `source` read.
    pub fn wants(&self, source: Source) -> bool {
        self.0.iter().any(|c| c.reads(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_with_unique_names() {
        for (i, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.collector as usize, i, "{}", spec.name);
            assert_eq!(Collector::from_name(spec.name), Some(spec.collector));
        }
    }

    #[test]
    fn every_source_has_a_reader() {
        for s in [
            Pci,
            ConfigSpace,
            Cmdline,
            AerService,
            Vfio,
            Platform,
            Forensics,
            Kmsg,
            Heartbeat,
            EdacCounters,
        ] {
            assert!(!s.readers().is_empty(), "{s:?}");
            assert!(s.readers().iter().all(|c| c.reads(s)));
        }
        // One job reads both (lib.rs `BASICS`), reported on the command line's readers.
        for c in AerService.readers() {
            assert!(c.reads(Cmdline), "{c:?}");
        }
    }
}
