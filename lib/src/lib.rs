//! vigil-collector: read-only collectors for PCIe link, ASPM, AER, device power
//! and platform boot parameters, from a [`Root`] passed in as a value.
//!
//! The library returns typed snapshots ([`Snapshot`], serde-serialisable) and
//! knows nothing about line protocol: naming and encoding live in the `vigil`
//! binary. Only [`read`] touches the filesystem; parsers are pure.

pub mod clock;
pub mod collector;
pub mod edac;
pub mod forensics;
pub mod heartbeat;
pub mod kmsg;
pub mod pci;
pub mod platform;
pub mod read;
pub mod root;
pub mod status;
pub mod vfio;

use serde::Serialize;
use std::collections::BTreeMap;

pub use clock::Clock;
pub use collector::{Collector, Selection};
pub use root::Root;
pub use status::{CollectorStatus, Diagnostic};

/// Everything one collection saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Shared by every line of the batch, Unix nanoseconds.
    pub time_unix_ns: i64,
    pub pci: Option<pci::PciSnapshot>,
    pub platform: Option<platform::Platform>,
    /// IOMMU groups, vfio devices and the platform's IOMMU facts.
    pub vfio: Option<vfio::VfioSnapshot>,
    /// Crash-forensics readiness and its findings.
    pub forensics: Option<forensics::Forensics>,
    pub findings: Vec<forensics::findings::Finding>,
    /// Kernel hardware events in the ring (one-shot collections; a long-running
    /// process follows /dev/kmsg instead).
    pub events: Vec<kmsg::Event>,
    /// Events of the ring held back by the storm limit, one summary per category and device.
    pub events_suppressed: Vec<kmsg::Suppressed>,
    pub heartbeat: Option<heartbeat::Heartbeat>,
    /// Memory-controller error counts (EDAC).
    pub edac: Option<edac::Edac>,
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
        Collector::CrashForensics,
    ]
    .into_iter()
    .any(|c| sel.has(c));
    let mut pci = if wants_pci {
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
    let wants_forensics = sel.has(Collector::CrashForensics);
    let wants_aer = sel.has(Collector::PcieAer);
    let cmdline = if wants_vfio || wants_forensics || wants_aer {
        platform::read_cmdline(root, &mut tally)
    } else {
        None
    };
    let aer_service = (wants_aer || wants_forensics || sel.has(Collector::PciePlatform))
        .then(|| platform::aer_service(root, &mut tally))
        .flatten();
    if let (true, Some(p)) = (wants_aer, pci.as_mut()) {
        let noaer = cmdline
            .as_deref()
            .map(|c| platform::cmdline::pci_option(&platform::cmdline::parse(c), "noaer"));
        if let Some(why) = platform::aer_not_counted(noaer, aer_service) {
            p.drop_aer_counts();
            tally.unavailable(Collector::PcieAer, why);
        }
    }
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
        let p = platform::collect(
            root,
            cmdline.as_deref(),
            pci.as_ref(),
            aer_service,
            &mut tally,
        );
        tally.add_time(Collector::PciePlatform, sw.elapsed_us());
        p
    });
    let mut findings = Vec::new();
    let forensics = wants_forensics.then(|| {
        let sw = clock.start();
        let f = forensics::collect(root, cmdline.as_deref(), time_unix_ns, &mut tally);
        let facts = platform_facts(
            root,
            cmdline.as_deref(),
            pci.as_ref(),
            platform.as_ref(),
            aer_service,
            &mut tally,
        );
        findings = forensics::findings::findings(&f, &facts);
        tally.add_time(Collector::CrashForensics, sw.elapsed_us());
        f
    });
    let mut events = Vec::new();
    let mut events_suppressed = Vec::new();
    if sel.has(Collector::KernelEvent) {
        let sw = clock.start();
        match kmsg::read_ring(root) {
            Ok(ring) => {
                events = ring.events;
                events_suppressed = ring.suppressed;
                for why in ring.stats.reasons() {
                    tally.unavailable(Collector::KernelEvent, why);
                }
                if ring.stats.errors > 0 {
                    tally.entry(Collector::KernelEvent).errors += ring.stats.errors;
                }
            }
            Err(e) => {
                if e.kind == read::ErrorKind::Permission {
                    tally.note(
                        Collector::KernelEvent,
                        format!(
                            "{}: permission denied: no kernel events (set kernel.dmesg_restrict=0 or grant CAP_SYSLOG, see README)",
                            e.path.display()
                        ),
                    );
                }
                tally.read_failed(Collector::KernelEvent, &e);
            }
        }
        tally.add_time(Collector::KernelEvent, sw.elapsed_us());
    }
    let heartbeat = sel.has(Collector::Vigil).then(|| {
        let sw = clock.start();
        let h = heartbeat::collect(root, &mut tally);
        tally.add_time(Collector::Vigil, sw.elapsed_us());
        h
    });
    let edac = sel.has(Collector::Edac).then(|| {
        let sw = clock.start();
        let e = edac::collect(root, &mut tally);
        tally.add_time(Collector::Edac, sw.elapsed_us());
        e
    });
    // Only selected collectors report; pci bookkeeping may have touched others.
    tally.status.retain(|c, _| sel.has(*c));
    Snapshot {
        time_unix_ns,
        pci,
        platform,
        vfio,
        forensics,
        findings,
        events,
        events_suppressed,
        heartbeat,
        edac,
        status: tally.status,
        diagnostics: tally.diagnostics,
        duration_us: total.elapsed_us(),
    }
}

/// What readiness needs from the PCI side, taken from this collection when the
/// platform collector ran, else read here.
fn platform_facts(
    root: &Root,
    cmdline: Option<&str>,
    pci: Option<&pci::PciSnapshot>,
    platform: Option<&platform::Platform>,
    aer_service: Option<platform::AerService>,
    tally: &mut status::Tally,
) -> forensics::findings::PlatformFacts {
    let p = match platform {
        Some(p) => p.clone(),
        None => platform::collect(root, cmdline, pci, aer_service, tally),
    };
    let hw_aspm_enabled = pci
        .map(|s| {
            s.devices
                .values()
                .filter(|d| {
                    d.config
                        .as_ref()
                        .and_then(|c| c.express.as_ref())
                        .is_some_and(|e| {
                            e.port_type.has_link() && (e.lnkctl_l0s() || e.lnkctl_l1())
                        })
                })
                .map(|d| d.address.clone())
                .collect()
        })
        .unwrap_or_default();
    forensics::findings::PlatformFacts {
        cmdline: p.cmdline,
        aer_cmdline_disabled: p.aer_cmdline_disabled,
        aer_native: p.aer_native,
        aspm_cmdline: p.aspm_cmdline,
        hw_aspm_enabled,
    }
}
