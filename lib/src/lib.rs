//! vigil-collector: read-only collectors for PCIe link, ASPM, AER, device power
//! and platform boot parameters, from a [`Root`] passed in as a value.
//!
//! The library returns typed snapshots ([`Snapshot`], serde-serialisable) and
//! knows nothing about line protocol: output names and encoding live in the
//! `vigil` binary, except collector names, which are rows of the collector
//! table ([`collector::TABLE`]) that decides what a collection reads. Only
//! [`read`] touches the filesystem; parsers are pure.

pub mod clock;
pub mod collector;
pub mod edac;
pub mod forensics;
pub mod heartbeat;
pub mod jobs;
pub mod kmsg;
pub mod pci;
pub mod platform;
pub mod read;
pub mod root;
pub mod status;
pub mod vfio;

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use clock::Clock;
pub use collector::{Collector, Selection, Source};
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

/// How long a collection may take, whatever blocks: what has not come back
/// by then is reported `unavailable="timeout"` (see [`jobs`]).
pub const DEADLINE: std::time::Duration = std::time::Duration::from_millis(1800);

/// The command line and the AER service are read by one job; every reader
/// of the AER service also reads the command line (a test checks).
const BASICS: &[Collector] = Source::Cmdline.readers();

/// One collection of the selected collectors under `root`, within
/// [`DEADLINE`] whatever blocks. Each collector runs on a worker thread
/// ([`jobs`]); the calling thread only waits, so it always returns, with a
/// heartbeat when one is selected.
pub fn collect(root: &Root, sel: &Selection, clock: Clock) -> Snapshot {
    collect_within(root, sel, clock, DEADLINE)
}

/// [`collect`] with another deadline (a machine slowed down on purpose, by
/// tracing). What others wait on (the PCI tree, the command line) is due by
/// two thirds of it, so that what needs them still has time.
///
/// Longer than the usual 80 lines on purpose: it is the collection's
/// schedule, every job with its stage, its inputs and the deadline it is
/// waited on, and reads top to bottom like a timeline. What each job does is
/// in its own module; the helpers below keep each one to a few lines.
pub fn collect_within(
    root: &Root,
    sel: &Selection,
    clock: Clock,
    within: std::time::Duration,
) -> Snapshot {
    collect_kept(root, sel, clock, within, None)
}

/// Collections of one long-running process (execd): what cannot change
/// between them is read once and kept ([`pci::memory`]), so a collection
/// reads only what can. A one-shot collection ([`collect`]) keeps nothing.
#[derive(Debug, Default)]
pub struct Session {
    pci: Arc<std::sync::Mutex<pci::memory::Memory>>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// [`collect_within`], reading only what can change since the last one.
    pub fn collect_within(
        &self,
        root: &Root,
        sel: &Selection,
        clock: Clock,
        within: std::time::Duration,
    ) -> Snapshot {
        collect_kept(root, sel, clock, within, Some(Arc::clone(&self.pci)))
    }
}

fn collect_kept(
    root: &Root,
    sel: &Selection,
    clock: Clock,
    within: std::time::Duration,
    memory: Option<Arc<std::sync::Mutex<pci::memory::Memory>>>,
) -> Snapshot {
    let total = clock.start();
    // Only a session's workers are worth keeping: one collection alone is
    // better off letting the second stage's threads reuse the first's stacks.
    let workers = Workers {
        root,
        keep: memory.is_some(),
    };
    let started = std::time::Instant::now();
    let deadline = started + within;
    let stage_one = started + within * 2 / 3;
    let time_unix_ns = clock.now_unix_ns();
    let mut tally = status::Tally::default();
    for c in &sel.0 {
        tally.entry(*c);
    }
    // Which sources to read, from the collector table.
    let wants_cmdline = sel.wants(Source::Cmdline);
    let wants_aer_service = sel.wants(Source::AerService);
    // Stage one: what needs nothing else.
    let aer_memory = memory.clone();
    let pci_job = sel.wants(Source::Pci).then(|| {
        let sel = sel.clone();
        let pci_deadline = stage_one - within / 12;
        workers.start("pci", Source::Pci.readers(), move |root, t| {
            // Held by an abandoned collection (or poisoned): read it all.
            let mut kept = memory.as_ref().and_then(|m| m.try_lock().ok());
            pci::collect(root, &sel, clock, pci_deadline, t, kept.as_deref_mut())
        })
    });
    let basics_job = (wants_cmdline || wants_aer_service).then(|| {
        workers.start("cmdline", BASICS, move |root, t| {
            let cmdline = wants_cmdline
                .then(|| platform::read_cmdline(root, t))
                .flatten();
            let aer_service = wants_aer_service
                .then(|| platform::aer_service(root, t))
                .flatten();
            (cmdline, aer_service)
        })
    });
    let events_job = sel.wants(Source::Kmsg).then(|| {
        workers.start("kmsg", Source::Kmsg.readers(), move |root, t| {
            read_events(root, clock, t)
        })
    });
    let heartbeat_job = sel.wants(Source::Heartbeat).then(|| {
        workers.start("heartbeat", Source::Heartbeat.readers(), move |root, t| {
            timed(clock, t, Collector::Vigil, |t| heartbeat::collect(root, t))
        })
    });
    let edac_job = sel.wants(Source::Edac).then(|| {
        workers.start("edac", Source::Edac.readers(), move |root, t| {
            timed(clock, t, Collector::Edac, |t| edac::collect(root, t))
        })
    });
    let mut pci = pci_job
        .and_then(|j| j.wait(stage_one, &mut tally))
        .flatten();
    let (cmdline, aer_service) = basics_job
        .and_then(|j| j.wait(stage_one, &mut tally))
        .unwrap_or((None, None));
    if let (true, Some(p)) = (sel.has(Collector::PcieAer), pci.as_mut()) {
        let not_counting = drop_uncounted_aer(p, cmdline.as_deref(), aer_service, &mut tally);
        // Held by an abandoned collection: the next one decides again.
        if let Some(mut m) = aer_memory.as_ref().and_then(|m| m.try_lock().ok()) {
            m.set_aer_not_counting(not_counting);
        }
    }
    let pci: Option<Arc<pci::PciSnapshot>> = pci.map(Arc::new);
    let cmdline: Option<Arc<str>> = cmdline.map(Arc::from);
    // Stage two: what needs the PCI tree and the command line.
    let forensics_job = sel.wants(Source::Forensics).then(|| {
        let cmdline = cmdline.clone();
        workers.start("forensics", Source::Forensics.readers(), move |root, t| {
            timed(clock, t, Collector::CrashForensics, |t| {
                forensics::collect(root, cmdline.as_deref(), time_unix_ns, t)
            })
        })
    });
    let vfio_job = sel.wants(Source::Vfio).then(|| {
        let (cmdline, pci) = (cmdline.clone(), pci.clone());
        workers.start("vfio", Source::Vfio.readers(), move |root, t| {
            vfio::collect(root, cmdline.as_deref(), pci.as_deref(), clock, t)
        })
    });
    let platform_job = sel.wants(Source::Platform).then(|| {
        let (cmdline, pci) = (cmdline.clone(), pci.clone());
        workers.start("platform", Source::Platform.readers(), move |root, t| {
            timed(clock, t, Collector::PciePlatform, |t| {
                platform::collect(root, cmdline.as_deref(), pci.as_deref(), aer_service, t)
            })
        })
    });
    let vfio = vfio_job.and_then(|j| j.wait(deadline, &mut tally));
    let platform = platform_job.and_then(|j| j.wait(deadline, &mut tally));
    let forensics = forensics_job.and_then(|j| j.wait(deadline, &mut tally));
    let mut findings = Vec::new();
    if let (Some(f), Some(p)) = (&forensics, &platform) {
        findings = timed(clock, &mut tally, Collector::CrashForensics, |_| {
            forensics::findings::findings(f, &platform_facts(pci.as_deref(), p))
        });
    }
    let (events, events_suppressed) = events_job
        .and_then(|j| j.wait(deadline, &mut tally))
        .unwrap_or_default();
    // The heartbeat line is written whatever else happened.
    let heartbeat = heartbeat_job.map(|j| j.wait(deadline, &mut tally).unwrap_or_default());
    let edac = edac_job.and_then(|j| j.wait(deadline, &mut tally));
    // Only selected collectors report; pci bookkeeping may have touched others.
    tally.status.retain(|c, _| sel.has(*c));
    let pci = pci.map(|p| Arc::try_unwrap(p).unwrap_or_else(|p| (*p).clone()));
    Snapshot {
        time_unix_ns,
        pci,
        platform: platform.filter(|_| sel.has(Collector::PciePlatform)),
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

/// What the jobs of one collection share: where they read, and whether
/// their workers are kept for the next collection (a [`Session`]'s).
#[derive(Clone, Copy)]
struct Workers<'r> {
    root: &'r Root,
    keep: bool,
}

impl Workers<'_> {
    /// [`jobs::spawn`] for a collector reading under the root.
    fn start<T: Send + 'static>(
        self,
        name: &'static str,
        collectors: &'static [Collector],
        f: impl FnOnce(&Root, &mut status::Tally) -> T + Send + 'static,
    ) -> jobs::Job<T> {
        let root = self.root.clone();
        let base = root.base().to_path_buf();
        jobs::spawn(base, name, self.keep, collectors, move |t| f(&root, t))
    }
}

/// `f`, its time counted for `c`.
fn timed<T>(
    clock: Clock,
    tally: &mut status::Tally,
    c: Collector,
    f: impl FnOnce(&mut status::Tally) -> T,
) -> T {
    let sw = clock.start();
    let out = f(tally);
    tally.add_time(c, sw.elapsed_us());
    out
}

/// AER counts that are not counting (`pci=noaer`, no OS-native AER service)
/// are dropped, not shown as healthy zeros; `pcie_aer` says why. Counts left
/// unread because the last collection found them not counting, where they
/// now count, are missing this once: said too. Returns whether they are not
/// counting.
fn drop_uncounted_aer(
    p: &mut pci::PciSnapshot,
    cmdline: Option<&str>,
    aer_service: Option<platform::AerService>,
    tally: &mut status::Tally,
) -> bool {
    let noaer =
        cmdline.map(|c| platform::cmdline::pci_option(&platform::cmdline::parse(c), "noaer"));
    match platform::aer_not_counted(noaer, aer_service) {
        Some(why) => {
            p.drop_aer_counts();
            tally.unavailable(Collector::PcieAer, why);
            true
        }
        None => {
            if p.aer_counts_unread {
                tally.unavailable(Collector::PcieAer, "not_counting_before");
            }
            false
        }
    }
}

/// Kernel hardware events in the ring (one-shot collections), and those the
/// storm limit held back.
fn read_events(
    root: &Root,
    clock: Clock,
    tally: &mut status::Tally,
) -> (Vec<kmsg::Event>, Vec<kmsg::Suppressed>) {
    let sw = clock.start();
    let mut out = (Vec::new(), Vec::new());
    match kmsg::read_ring(root) {
        Ok(ring) => {
            out = (ring.events, ring.suppressed);
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
    out
}

/// What readiness needs from the PCI side and the platform, from this collection.
fn platform_facts(
    pci: Option<&pci::PciSnapshot>,
    p: &platform::Platform,
) -> forensics::findings::PlatformFacts {
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
        cmdline: p.cmdline.clone(),
        aer_cmdline_disabled: p.aer_cmdline_disabled,
        aer_native: p.aer_native,
        aspm_cmdline: p.aspm_cmdline.clone(),
        hw_aspm_enabled,
    }
}
