//! Which collectors exist, and how each one fared this collection.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::read::{ErrorKind, ReadError};

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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStatus {
    /// False when the collector could not run at all (its source unreadable).
    pub success: bool,
    pub duration_us: u64,
    /// Bad values omitted this collection.
    pub errors: u64,
    /// Why some data was missing (`permission`, `absent`, `EINVAL`...), sorted.
    pub unavailable: BTreeSet<String>,
}

/// One thing worth telling a person on stderr (rate-limited by the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub collector: Collector,
    pub message: String,
}

/// Wall clock and stopwatch. `Fixed` makes output reproducible: one timestamp,
/// zero durations (goldens, `--fake-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed { unix_ns: i64 },
}

impl Clock {
    pub fn now_unix_ns(self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            Clock::Fixed { unix_ns } => unix_ns,
        }
    }
    pub fn start(self) -> Stopwatch {
        Stopwatch {
            start: Instant::now(),
            fixed: matches!(self, Clock::Fixed { .. }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    start: Instant,
    fixed: bool,
}

impl Stopwatch {
    pub fn elapsed_us(&self) -> u64 {
        if self.fixed {
            0
        } else {
            u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
        }
    }
}

/// Per-collection bookkeeping shared by every collector.
#[derive(Debug, Default)]
pub struct Tally {
    pub status: BTreeMap<Collector, CollectorStatus>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Tally {
    pub fn entry(&mut self, c: Collector) -> &mut CollectorStatus {
        self.status.entry(c).or_insert_with(|| CollectorStatus {
            success: true,
            ..CollectorStatus::default()
        })
    }

    /// A read failed. Absence is normal (old kernels, optional files) and not
    /// recorded; permission and kernel refusals are reasons data is missing;
    /// garbage is an error.
    pub fn read_failed(&mut self, c: Collector, e: &ReadError) {
        match &e.kind {
            ErrorKind::Absent => {}
            ErrorKind::Permission => {
                self.entry(c).unavailable.insert("permission".into());
            }
            ErrorKind::Unavailable(errno) => {
                self.entry(c).unavailable.insert((*errno).to_string());
            }
            ErrorKind::Invalid(_) => self.error(c, e.to_string()),
        }
    }

    /// A value was present but unusable: omitted and counted.
    pub fn error(&mut self, c: Collector, message: String) {
        self.entry(c).errors += 1;
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    /// Worth telling a person, but not a bad value (a missing privilege).
    pub fn note(&mut self, c: Collector, message: String) {
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    pub fn unavailable(&mut self, c: Collector, why: &str) {
        self.entry(c).unavailable.insert(why.to_string());
    }

    pub fn failed(&mut self, c: Collector, message: String) {
        self.entry(c).success = false;
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    pub fn add_time(&mut self, c: Collector, us: u64) {
        let e = self.entry(c);
        e.duration_us = e.duration_us.saturating_add(us);
    }
}
