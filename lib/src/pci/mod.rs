//! PCI functions from `/sys/bus/pci/devices`: identity, power, link, ASPM, AER
//! and (when readable) config space. Rediscovered on every collection.
//!
//! Observer rule (kernel-abi.md §1.4, §4.3): cached attributes (`power_state`,
//! `power/runtime_status`, `link/*`, `aer_*`, ids) are read for every device; the
//! link attributes and `config`, whose reads resume a sleeping device or its
//! parent bridge on current kernels, are read only when the device and every
//! bridge above it are awake. Otherwise `link_skipped` is set.

pub mod config_space;
pub mod memory;
mod observer;
pub mod parse;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::clock::Clock;
use crate::collector::{Collector, Selection, Source};
use crate::read::{self, DirHandle, ErrorKind};
use crate::root::Root;
use crate::status::Tally;
use config_space::{ConfigSpace, PortType};
use memory::{Known, KnownIds, Memory};
use observer::{ConfigRead, Observed, Observer, ReadPlan};
pub use parse::{AerCounters, PowerState, RuntimeStatus, Width};

pub const DEVICES_DIR: &str = "/sys/bus/pci/devices";

/// Longest a `config` read may take before it counts as stuck (a device being
/// reset): a healthy 4096-byte read takes a few milliseconds. Well inside the
/// collection's deadline, so the devices after a stuck one are still read.
pub const CONFIG_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Correctable,
    Nonfatal,
    Fatal,
}

/// Which severities have a file: a set of three, kept without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Severities(u8);

impl Severities {
    pub fn contains(self, sev: Severity) -> bool {
        self.0 & (1 << sev as u8) != 0
    }

    pub fn insert(&mut self, sev: Severity) {
        self.0 |= 1 << sev as u8;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Correctable, Severity::Nonfatal, Severity::Fatal];
    fn dev_file(self) -> &'static str {
        match self {
            Severity::Correctable => "aer_dev_correctable",
            Severity::Nonfatal => "aer_dev_nonfatal",
            Severity::Fatal => "aer_dev_fatal",
        }
    }
    fn rootport_file(self) -> &'static str {
        match self {
            Severity::Correctable => "aer_rootport_total_err_cor",
            Severity::Nonfatal => "aer_rootport_total_err_nonfatal",
            Severity::Fatal => "aer_rootport_total_err_fatal",
        }
    }
}

/// One value per severity, or none: what `aer_dev_*` and
/// `aer_rootport_total_*` give a device. In place, not a map: thousands of
/// these live until the batch is written, and a map allocates a node of
/// eleven slots for each. Serialised as a map from severity to value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BySeverity<T>([Option<T>; 3]);

impl<T> Default for BySeverity<T> {
    fn default() -> Self {
        BySeverity([None, None, None])
    }
}

impl<T> BySeverity<T> {
    pub fn get(&self, sev: &Severity) -> Option<&T> {
        self.0[*sev as usize].as_ref()
    }

    pub fn insert(&mut self, sev: Severity, value: T) {
        self.0[sev as usize] = Some(value);
    }

    pub fn clear(&mut self) {
        *self = BySeverity::default();
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Severities with a value, in [`Severity::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Severity, &T)> {
        Severity::ALL
            .into_iter()
            .zip(&self.0)
            .filter_map(|(s, v)| Some((s, v.as_ref()?)))
    }
}

impl<T: Serialize> Serialize for BySeverity<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// The four link attributes (kernel-abi.md §1.1), as read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkAttrs {
    /// `current_link_speed`, GT/s; `None` for `Unknown`.
    pub speed_gts: Option<f64>,
    pub width: Option<Width>,
    /// `max_link_speed`, GT/s: this device's own capability, not the link's.
    pub max_speed_gts: Option<f64>,
    pub max_width: Option<Width>,
}

/// `link/` (Linux >= 5.5): ASPM states the kernel manages. Absent with `pcie_aspm=off`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AspmSysfs {
    pub l0s: Option<bool>,
    pub l1: Option<bool>,
    pub l1_1: Option<bool>,
    pub l1_2: Option<bool>,
    pub l1_1_pcipm: Option<bool>,
    pub l1_2_pcipm: Option<bool>,
    pub clkpm: Option<bool>,
}

impl AspmSysfs {
    fn is_empty(&self) -> bool {
        *self == AspmSysfs::default()
    }
    fn any_aspm_enabled(&self) -> bool {
        [self.l0s, self.l1, self.l1_1, self.l1_2]
            .into_iter()
            .any(|v| v == Some(true))
    }
}

/// Where a link's numbers are judged against its partner.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkState {
    /// The other end: upstream port for endpoints and switch upstream ports,
    /// the device below for root and downstream ports.
    pub partner: Option<String>,
    pub expected_speed_gts: Option<f64>,
    pub expected_width: Option<u8>,
    pub speed_downgraded: Option<bool>,
    pub width_downgraded: Option<bool>,
    pub link_up: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PciDevice {
    pub address: String,
    pub vendor_id: Option<u16>,
    pub device_id: Option<u16>,
    /// 24-bit class code (base, subclass, prog-if).
    pub class: Option<u32>,
    /// `Some(None)` when unbound; `None` when the `driver` link could not be read.
    pub driver: Option<Option<String>>,
    pub driver_override: Option<String>,
    pub power_state: Option<PowerState>,
    pub runtime_status: Option<RuntimeStatus>,
    pub d3cold_allowed: Option<bool>,
    pub enabled: Option<bool>,
    pub iommu_group: Option<u32>,
    pub numa_node: Option<i64>,
    /// Parent bridge address; `None` on a root bus.
    pub upstream_port: Option<String>,
    /// PCI devices above in sysfs, nearest last: bridges, and the VMD
    /// endpoint above a VMD domain.
    #[serde(skip)]
    pub ancestors: Chain,
    /// The device has a PCI Express capability (sysfs link files or config).
    pub pcie: bool,
    pub link_skipped: bool,
    pub link: Option<LinkAttrs>,
    pub aspm: Option<AspmSysfs>,
    pub aer: BySeverity<AerCounters>,
    pub rootport_total: BySeverity<u64>,
    /// The device has AER counter files, whether or not their counts are kept
    /// (see [`PciSnapshot::drop_aer_counts`]).
    pub aer_files: bool,
    pub config: Option<ConfigSpace>,
    pub link_state: Option<LinkState>,
    /// Its directory, where a long-running process keeps it open, for later
    /// readers of the same collection (vfio's `reset_method`).
    #[serde(skip)]
    pub kept_dir: KeptDir,
}

impl PciDevice {
    pub fn is_bridge(&self) -> bool {
        self.class.is_some_and(|c| c >> 8 == 0x0604)
    }

    /// Not safe to read attributes that resume a sleeping device.
    pub fn suspended(&self) -> bool {
        !observer::awake(self.power_state.as_ref(), self.runtime_status.as_ref())
    }

    /// Port type from config space when readable, else from the topology.
    pub fn port_type(&self) -> Option<PortType> {
        self.config
            .as_ref()
            .and_then(|c| c.express.as_ref())
            .map(|e| e.port_type)
    }

    /// ASPM enabled according to the best source: config (hardware) beats sysfs.
    pub fn aspm_enabled(&self) -> Option<(bool, &'static str)> {
        if let Some(e) = self.config.as_ref().and_then(|c| c.express.as_ref()) {
            if e.port_type.has_link() {
                return Some((e.lnkctl_l0s() || e.lnkctl_l1(), "config"));
            }
        }
        match &self.aspm {
            Some(a) if !a.is_empty() => Some((a.any_aspm_enabled(), "sysfs")),
            _ => None,
        }
    }

    /// Max speed and width: config beats sysfs (sysfs may be skipped or absent).
    fn max_caps(&self) -> (Option<f64>, Option<u8>) {
        let express = self.config.as_ref().and_then(|c| c.express.as_ref());
        let link = self.link.as_ref();
        let speed = link
            .and_then(|l| l.max_speed_gts)
            .or_else(|| express.and_then(|e| e.max_speed_gts()));
        let width = match link.and_then(|l| l.max_width) {
            Some(Width::Lanes(n)) if n > 0 => Some(n),
            _ => express
                .map(|e| e.max_width())
                .filter(|w| *w > 0 && *w != 63),
        };
        (speed, width)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PciSnapshot {
    pub devices: BTreeMap<String, PciDevice>,
    /// Config space was read this collection (some selected collector uses it).
    pub config_read: bool,
    /// AER counter files were read this collection (`pcie_aer` selected).
    pub aer_read: bool,
    /// The counts of known devices were not read: the last collection
    /// found them not counting (see [`memory::Memory::aer_not_counting`]).
    /// Which devices have the files is known all the same.
    #[serde(skip)]
    pub aer_counts_unread: bool,
}

/// An open device directory. Not data: two devices are equal whatever
/// directory they hold.
#[derive(Debug, Clone, Default)]
pub struct KeptDir(pub Option<std::sync::Arc<DirHandle>>);

impl PartialEq for KeptDir {
    fn eq(&self, _: &KeptDir) -> bool {
        true
    }
}

impl PciSnapshot {
    /// Config space beyond the header was readable; `None` when no selected
    /// collector read config space, so nothing is known.
    pub fn privileged(&self) -> Option<bool> {
        self.config_read.then(|| {
            self.devices
                .values()
                .any(|d| d.config.as_ref().is_some_and(ConfigSpace::privileged))
        })
    }

    /// Forget AER counts that the kernel does not increment (`pci=noaer`, no
    /// OS-native AER): a zero that was never counted is no measurement.
    /// Which devices have the files is kept.
    pub fn drop_aer_counts(&mut self) {
        for d in self.devices.values_mut() {
            d.aer.clear();
            d.rootport_total.clear();
        }
    }
}

/// Read one attribute into `T`; failures are tallied against `c` and give
/// `None`. An absent file is silent: device directories are not listed (a
/// listing costs more than the few failed opens it would save), so absence
/// is learnt from the open.
fn read_attr_checked<T>(
    tally: &mut Tally,
    c: Collector,
    dir: &DirHandle,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, parse::ParseError>,
) -> Option<T> {
    check_read(tally, c, dir, name, dir.with_attr(name, parse)).1
}

/// A read and its parse, judged: a bad value is tallied against `c`, a read
/// failure too unless the file is simply absent. Returns whether the file
/// exists (even with a bad value), and the value.
fn check_read<T>(
    tally: &mut Tally,
    c: Collector,
    dir: &DirHandle,
    name: &str,
    read: read::Result<Result<T, parse::ParseError>>,
) -> (bool, Option<T>) {
    match read {
        Ok(Ok(v)) => (true, Some(v)),
        Ok(Err(e)) => {
            tally.error(c, format!("{}: {}", dir.path().join(name).display(), e.0));
            (true, None)
        }
        Err(e) => {
            tally.read_failed(c, &e);
            (e.kind != ErrorKind::Absent, None)
        }
    }
}

/// The bus directory and its entries with their inode numbers; when it
/// cannot be listed, every collector that needs the PCI tree is told why.
fn list_bus(base: &Path, tally: &mut Tally) -> Option<(DirHandle, Vec<(String, u64)>)> {
    let listed = DirHandle::open(base).and_then(|mut h| h.list_inodes().map(|n| (h, n)));
    match listed {
        Ok(x) => Some(x),
        Err(e) => {
            let why = match e.kind {
                ErrorKind::Absent => "absent",
                ErrorKind::Permission => "permission",
                _ => "unreadable",
            };
            for &c in Source::Pci.readers() {
                tally.unavailable(c, why);
                if why != "absent" {
                    tally.failed(c, e.to_string());
                }
            }
            None
        }
    }
}

/// One bus entry in the order devices are read: its name, its inode number
/// in the listing, the PCI devices above it (nearest last), and whether its
/// directory lies right inside the nearest one's.
type Entry = (String, u64, Chain, bool);

/// The PCI devices above a device, nearest last: shared by the memory, the
/// read plan and the device, so a warm collection copies none of it.
pub type Chain = std::sync::Arc<[String]>;

/// Bus entries in the order they are read. The topology is taken from
/// `memory` for an entry it kept (same inode: the same link), else read.
fn walk_order(
    bus: &DirHandle,
    entries: Vec<(String, u64)>,
    memory: Option<&Memory>,
    tally: &mut Tally,
) -> Vec<Entry> {
    // Topology first (one readlink per bus entry), then every device in one
    // pass, bridges before what hangs below them: whether an ancestor sleeps is
    // known when a device is reached, and each device directory is opened once.
    let mut order: Vec<Entry> = Vec::new();
    for (name, ino) in entries.into_iter().filter(|(n, _)| parse::is_bdf(n)) {
        let (chain, direct) = match memory.and_then(|m| m.get(&name, ino)) {
            Some(k) => (std::sync::Arc::clone(&k.chain), k.direct),
            None => read_chain(bus, &name, tally),
        };
        order.push((name, ino, chain, direct));
    }
    order.sort_by(|a, b| a.2.len().cmp(&b.2.len()).then_with(|| a.0.cmp(&b.0)));
    order
}

/// The PCI devices above `name`, from its bus link's target, and whether
/// the target lies right inside the nearest one's directory
/// (`.../0000:00:1c.0/0000:02:00.0`), so it can be opened from there.
fn read_chain(bus: &DirHandle, name: &str, tally: &mut Tally) -> (Chain, bool) {
    match bus.with_link(name, |target| chain_of(target, name)) {
        Ok(x) => x,
        // A plain directory (hand-made capture): no topology to learn.
        Err(e) if matches!(e.kind, ErrorKind::Unavailable("EINVAL")) => (Chain::default(), false),
        Err(e) => {
            tally.read_failed(Collector::PcieDevice, &e);
            (Chain::default(), false)
        }
    }
}

/// [`read_chain`] from the link's target.
fn chain_of(target: &Path, name: &str) -> (Chain, bool) {
    let parts: Vec<&str> = target
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let mut chain: Vec<String> = parts
        .iter()
        .filter(|c| parse::is_bdf(c))
        .map(|c| c.to_string())
        .collect();
    if chain.last().map(String::as_str) == Some(name) {
        chain.pop();
    }
    // `.../<parent>/<name>`: the nearest device's directory holds it.
    let direct = match parts.as_slice() {
        [.., parent, last] => *last == name && chain.last().is_some_and(|c| c == parent),
        _ => false,
    };
    (chain.into(), direct)
}

/// For each device in `order`, the index of the device whose directory
/// holds its own (see [`Entry`]).
fn parents(order: &[Entry]) -> Vec<Option<usize>> {
    let at: std::collections::HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, e)| (e.0.as_str(), i))
        .collect();
    order
        .iter()
        .map(|(_, _, chain, direct)| {
            let p = chain.last().filter(|_| *direct)?;
            at.get(p.as_str()).copied()
        })
        .collect()
}

/// Every PCI function under `root`. Reads that could block (the observer's)
/// are given up on at `deadline`. With `memory` (a long-running process),
/// what cannot change is taken from it where the device is the same one
/// ([`memory`]), and kept there for the next collection.
///
/// Longer than the usual 80 lines on purpose: the per-device loop is the one
/// place that shows what is read of a device, in which order, and what a
/// late, gone, sleeping or stuck device skips. Split up, the no-wake rule
/// would be spread over several functions.
pub fn collect(
    root: &Root,
    sel: &Selection,
    clock: Clock,
    deadline: std::time::Instant,
    tally: &mut Tally,
    mut memory: Option<&mut Memory>,
) -> Option<PciSnapshot> {
    let sw = clock.start();
    if let Some(m) = memory.as_deref_mut() {
        m.begin(std::time::Instant::now());
    }
    let base = root.path(DEVICES_DIR);
    let (bus, names) = list_bus(&base, tally)?;
    let order = walk_order(&bus, names, memory.as_deref(), tally);
    let wants_config = sel.wants(Source::ConfigSpace);
    let aer_counts_unread = memory.as_deref().is_some_and(Memory::aer_not_counting);
    let known: Vec<Option<KnownIds>> = match memory.as_deref() {
        Some(m) => order
            .iter()
            .map(|(name, ino, _, _)| m.get(name, *ino).map(|k| k.ids.clone()))
            .collect(),
        None => Vec::new(),
    };
    let mut observer = Observer::start(
        ReadPlan {
            bus: base.clone(),
            parent: parents(&order),
            order: order
                .iter()
                .map(|(n, _, c, _)| (n.clone(), std::sync::Arc::clone(c)))
                .collect(),
            config: wants_config,
            link: sel.has(Collector::PcieLink),
            record: read::is_recording(),
            known,
            keeps: memory.is_some(),
            held: Default::default(),
        },
        CONFIG_TIMEOUT,
        deadline,
    );
    // Gathered in walk order, then made a map in one go: a map built by
    // bulk fills its nodes, one grown by ordered inserts leaves them half
    // empty (at 2,000 functions about 1 MB of a batch's peak).
    let mut walked = Vec::with_capacity(order.len());
    tally.add_time(Collector::PcieDevice, sw.elapsed_us());
    // Each device's time by the collector it serves, lap by lap, in ns.
    let mut lap = clock.start();
    let (mut device_ns, mut aspm_ns, mut aer_ns) = (0u64, 0u64, 0u64);
    for (i, (name, entry, chain, direct)) in order.into_iter().enumerate() {
        // Past the deadline (a slow or loaded machine): the rest is reported
        // `timeout` unread, so the collection still ends on time.
        let late = std::time::Instant::now() >= deadline;
        let mut observed = if late { None } else { observer.take(i) };
        if let Some(Some(e)) = observed.as_ref().map(|o| &o.gone) {
            // Gone mid-walk (hot-unplug, rebind) is normal; anything else is worth a note.
            tally.read_failed(Collector::PcieDevice, e);
            continue;
        }
        let mut ids_known = observed.as_ref().is_some_and(|o| o.ids_known);
        let dir = match observed.as_mut().and_then(|o| o.dir.take()) {
            Some(d) => d,
            None => match bus.open_dir(&name) {
                // Opened again: it may not be the directory the observer saw.
                Ok(h) => {
                    ids_known = false;
                    std::sync::Arc::new(h)
                }
                Err(e) => {
                    tally.read_failed(Collector::PcieDevice, &e);
                    continue;
                }
            },
        };
        // The kept facts hold only for the same device (the observer
        // checked the kept directory and the config header).
        let known = memory
            .as_deref()
            .filter(|_| ids_known)
            .and_then(|m| m.get(&name, entry));
        // Kept only for a device read afresh by a long-running process.
        let keeps_ids = memory.is_some() && known.is_none();
        let raw_ids = observed.as_ref().filter(|_| keeps_ids).and_then(|o| {
            let v = o.vendor.as_ref().ok()?;
            Some((v.clone(), o.device.as_ref().ok()?.clone()))
        });
        let config_file = observed.as_mut().and_then(|o| o.config_file.take());
        let ecaps = observed
            .as_mut()
            .and_then(|o| kept_ecaps(o.config.as_mut()?));
        let power_files = observed.as_ref().map_or([false; 2], |o| {
            let present = |r: &read::Result<observer::Text>| r.as_ref().is_ok();
            [present(&o.power_state), present(&o.runtime_status)]
        });
        // The parent bridge is on the same domain: the first devices of an
        // Intel VMD domain (10000:e0:..) hang below the VMD endpoint
        // (0000:00:0e.0) in sysfs, which is no bridge but still an ancestor
        // whose sleep matters.
        let upstream_port = chain
            .last()
            .filter(|p| parse::domain_of(p) == parse::domain_of(&name))
            .cloned();
        let mut d = PciDevice {
            address: name,
            upstream_port,
            ancestors: chain,
            ..PciDevice::default()
        };
        let link_seen = match observed {
            Some(o) if !o.timed_out => take_observed(&mut d, &dir, o, tally),
            _ => {
                // Stuck: nothing more of it is touched this collection.
                take_stuck(&mut d, &dir, tally);
                walked.push((d.address.clone(), d));
                continue;
            }
        };
        let mut learnt = read_cached(&mut d, &dir, known, tally);
        device_ns = device_ns.saturating_add(lap.lap_ns());
        if sel.has(Collector::PcieAspm) {
            (d.aspm, learnt.aspm_files) = read_aspm(&dir, known, tally);
            aspm_ns = aspm_ns.saturating_add(lap.lap_ns());
        }
        if sel.has(Collector::PcieAer) {
            (learnt.aer_dev, learnt.rootport) = match known.filter(|_| aer_counts_unread) {
                Some(k) => {
                    d.aer_files = k.aer_dev.is_some_and(|l| !l.is_empty());
                    (k.aer_dev, k.rootport)
                }
                None => read_aer(&mut d, &dir, known, tally),
            };
            aer_ns = aer_ns.saturating_add(lap.lap_ns());
        }
        // Where the link files were not read (a sleeping device, or not
        // selected), their presence says PCIe: a stat does not run the
        // attribute's show(), so it wakes nothing.
        // Config space with a PCI Express capability already says it.
        let express = d.config.as_ref().is_some_and(|c| c.express.is_some());
        learnt.link_files = link_seen.or(known.and_then(|k| k.link_files)).or_else(|| {
            (!express).then(|| dir.has("max_link_speed") || dir.has("current_link_width"))
        });
        d.pcie = express || learnt.link_files == Some(true);
        let fresh = known.is_none();
        // Where the memory keeps it open, later readers use it too.
        let held = match (memory.as_deref_mut(), fresh, raw_ids) {
            (Some(m), true, Some((vendor, device))) => {
                learnt.ids = KnownIds {
                    entry,
                    vendor,
                    device,
                    dir: None,
                    config: None,
                    dir_identity: dir.identity(),
                    power_files,
                    ecaps,
                };
                (learnt.chain, learnt.direct) = (std::sync::Arc::clone(&d.ancestors), direct);
                m.keep(d.address.clone(), learnt, &dir, config_file)
            }
            (Some(m), false, _) => m.hold(&d.address, &dir, config_file),
            _ => false,
        };
        if held {
            d.kept_dir = KeptDir(Some(dir));
        }
        walked.push((d.address.clone(), d));
    }
    device_ns = device_ns.saturating_add(lap.lap_ns());
    for (c, ns) in [
        (Collector::PcieDevice, device_ns),
        (Collector::PcieAspm, aspm_ns),
        (Collector::PcieAer, aer_ns),
    ] {
        if c == Collector::PcieDevice || sel.has(c) {
            tally.add_time(c, ns / 1000);
        }
    }
    let mut devices: BTreeMap<String, PciDevice> = walked.into_iter().collect();
    if let Some(m) = memory {
        m.retain(|a| devices.contains_key(a));
    }
    let sw = clock.start();
    derive_link_states(&mut devices);
    tally.add_time(Collector::PcieLink, sw.elapsed_us());
    Some(PciSnapshot {
        devices,
        config_read: wants_config,
        aer_read: sel.has(Collector::PcieAer),
        aer_counts_unread,
    })
}

/// [`check_read`] for a value the observer read; a capture records it here (the
/// recorder belongs to this thread).
fn check_observed<T>(
    tally: &mut Tally,
    c: Collector,
    dir: &DirHandle,
    name: &str,
    read: read::Result<observer::Text>,
    parse: impl FnOnce(&str) -> Result<T, parse::ParseError>,
) -> (bool, Option<T>) {
    if let Ok(text) = &read {
        read::record_read_elsewhere(|| dir.path().join(name), text.as_bytes());
    }
    let parsed = read.map(|text| parse(text.strip_suffix('\n').unwrap_or(&text)));
    check_read(tally, c, dir, name, parsed)
}

/// The observer's reads for this device; whether any link file exists, where
/// the link files were read.
fn take_observed(
    d: &mut PciDevice,
    dir: &DirHandle,
    o: Observed,
    tally: &mut Tally,
) -> Option<bool> {
    let c = Collector::PcieDevice;
    d.power_state = check_observed(tally, c, dir, "power_state", o.power_state, |s| {
        Ok(PowerState::parse(s))
    })
    .1;
    d.runtime_status = check_observed(
        tally,
        c,
        dir,
        "power/runtime_status",
        o.runtime_status,
        |s| Ok(RuntimeStatus::parse(s)),
    )
    .1;
    d.vendor_id = check_observed(tally, c, dir, "vendor", o.vendor, parse::hex_u16).1;
    d.device_id = check_observed(tally, c, dir, "device", o.device, parse::hex_u16).1;
    d.link_skipped = o.skipped;
    if o.power_unknown {
        // No wake fails closed: an unknown power state is taken as asleep.
        tally.unavailable(Collector::PcieLink, "power_unknown");
        tally.note(
            Collector::PcieLink,
            format!(
                "{}: power state unreadable: link files and config not read (they could wake it)",
                dir.path().display()
            ),
        );
    }
    if let Some(r) = o.config {
        take_config(d, dir, r, tally);
    }
    let files = o.link?;
    let c = Collector::PcieLink;
    let [speed, width, max_speed, max_width] = files;
    let [n1, n2, n3, n4] = observer::LINK_FILES;
    let (s1, speed) = check_observed(tally, c, dir, n1, speed, parse::link_speed);
    let (s2, width) = check_observed(tally, c, dir, n2, width, parse::link_width);
    let (s3, max_speed) = check_observed(tally, c, dir, n3, max_speed, parse::link_speed);
    let (s4, max_width) = check_observed(tally, c, dir, n4, max_width, parse::link_width);
    let seen = s1 || s2 || s3 || s4;
    if seen {
        d.link = Some(LinkAttrs {
            speed_gts: speed.flatten(),
            width,
            max_speed_gts: max_speed.flatten(),
            max_width,
        });
    }
    Some(seen)
}

/// The extended capability headers a fresh read walked, to keep: only from
/// a privileged read of a whole config space (a 256-byte one has none) of a
/// device that answered (not all ones, as in a reset).
fn kept_ecaps(read: &mut read::Result<ConfigRead>) -> Option<std::sync::Arc<[(u16, u32)]>> {
    let got = read.as_mut().ok()?;
    let walked = got.ecaps.take()?;
    let whole = got.is_config_space() && got.space.privileged() && got.space.reachable;
    (whole && !walked.is_empty()).then(|| std::sync::Arc::from(walked))
}

/// A device whose guarded reads did not come back in time (being reset, most
/// likely), or whose read from an earlier collection is still blocked:
/// nothing of it is read again (any read could block this thread too).
fn take_stuck(d: &mut PciDevice, dir: &DirHandle, tally: &mut Tally) {
    tally.read_failed(
        Collector::PcieDevice,
        &read::ReadError {
            path: dir.path().join("config"),
            kind: ErrorKind::Unavailable(read::TIMEOUT),
        },
    );
    d.link_skipped = true;
}

/// The attributes the kernel serves from memory (never wakes anything) that
/// the observer does not read; `class` and `numa_node` from `known` when
/// there. Returns what was learnt of them to keep.
fn read_cached(
    d: &mut PciDevice,
    dir: &DirHandle,
    known: Option<&Known>,
    tally: &mut Tally,
) -> Known {
    let c = Collector::PcieDevice;
    let mut learnt = Known {
        class: known.and_then(|k| k.class),
        ..Known::default()
    };
    if learnt.class.is_none() {
        learnt.class = read_attr_checked(tally, c, dir, "class", parse::class_code);
    }
    d.class = learnt.class;
    learnt.numa_node = known.and_then(|k| k.numa_node);
    if learnt.numa_node.is_none() {
        learnt.numa_node = read_attr_checked(tally, c, dir, "numa_node", parse::numa_node);
    }
    d.numa_node = learnt.numa_node.flatten();
    // `driver` links to `.../bus/pci/drivers/<name>`; any other target (a
    // loop, junk) is not a driver name.
    // Only the name is kept: the target is looked at where it was read.
    let driver = dir.with_link("driver", |t| driver_name(t).ok_or_else(|| t.to_path_buf()));
    match driver {
        Ok(Ok(n)) => d.driver = Some(Some(n)),
        Ok(Err(target)) => tally.error(
            c,
            format!(
                "{}/driver: link to {} is not a driver",
                dir.path().display(),
                target.display()
            ),
        ),
        Err(e) if e.kind == ErrorKind::Absent => d.driver = Some(None),
        Err(e) => tally.read_failed(c, &e),
    }
    d.driver_override = read_attr_checked(tally, c, dir, "driver_override", |s| {
        Ok(parse::driver_override(s))
    })
    .flatten();
    d.d3cold_allowed = read_attr_checked(tally, c, dir, "d3cold_allowed", parse::flag);
    d.enabled = read_attr_checked(tally, c, dir, "enable", parse::flag);
    let group = dir.with_link("iommu_group", |t| {
        let n = t.file_name().and_then(|n| n.to_str()).unwrap_or("");
        n.parse::<u32>().map_err(|_| n.to_string())
    });
    match group {
        Ok(Ok(g)) => d.iommu_group = Some(g),
        Ok(Err(n)) => tally.error(
            c,
            format!(
                "{}/iommu_group: link to {n:?}, not a group number",
                dir.path().display()
            ),
        ),
        Err(e) => tally.read_failed(c, &e),
    }
    learnt
}

fn driver_name(target: &Path) -> Option<String> {
    let name = target.file_name()?.to_str()?;
    let parent = target.parent()?.file_name()?.to_str()?;
    (parent == "drivers" && !name.is_empty()).then(|| name.to_string())
}

/// Decode and check a `config` read.
fn take_config(
    d: &mut PciDevice,
    dir: &DirHandle,
    read: read::Result<ConfigRead>,
    tally: &mut Tally,
) {
    // Built only for a capture or a message: most devices need neither.
    let path = || dir.path().join("config");
    let got = match read {
        Ok(b) => b,
        Err(e) => {
            tally.read_failed(Collector::PcieDevice, &e);
            return;
        }
    };
    if let Some(raw) = &got.raw {
        read::record_read_elsewhere(path, raw);
    }
    if !got.is_config_space() {
        tally.error(
            Collector::PcieDevice,
            format!(
                "{}: {} bytes is not a config space",
                path().display(),
                got.len
            ),
        );
        return;
    }
    let cs = got.space;
    if cs.ids_disagree(d.vendor_id, d.device_id) {
        tally.error(
            Collector::PcieDevice,
            format!(
                "{}: IDs {:04x}:{:04x} do not match vendor/device; ignored",
                path().display(),
                cs.vendor_id,
                cs.device_id
            ),
        );
        return;
    }
    for a in &cs.anomalies {
        tally.error(
            Collector::PcieAerStatus,
            format!("{}: {a}", path().display()),
        );
    }
    if !cs.privileged() {
        tally.unavailable(Collector::PcieAerStatus, "permission");
    }
    d.config = Some(cs);
}

/// The ASPM files of `link/`, in the order [`AspmSysfs`] holds them.
const ASPM_FILES: [&str; 7] = [
    "l0s_aspm",
    "l1_aspm",
    "l1_1_aspm",
    "l1_2_aspm",
    "l1_1_pcipm",
    "l1_2_pcipm",
    "clkpm",
];

/// [`ASPM_FILES`] as seen from the device's directory, written out: a warm
/// collection opens them from there, and a path built per read cost an
/// allocation each.
const ASPM_PATHS: [&str; 7] = [
    "link/l0s_aspm",
    "link/l1_aspm",
    "link/l1_1_aspm",
    "link/l1_2_aspm",
    "link/l1_1_pcipm",
    "link/l1_2_pcipm",
    "link/clkpm",
];

/// `link/<file>`: written out for one of [`ASPM_FILES`], built for any other.
fn aspm_path(file: &str) -> std::borrow::Cow<'static, str> {
    ASPM_PATHS
        .into_iter()
        .find(|p| p.strip_prefix("link/") == Some(file))
        .map_or_else(|| format!("link/{file}").into(), Into::into)
}

/// `link/`'s ASPM states, and which of its files exist (`None` inside: no
/// `link/`; outer `None`: not known). Which files exist is learnt from one
/// listing (the kernel shows only the states the link supports, so most
/// are absent), or taken from `known`, when only those are opened.
fn read_aspm(
    dev: &DirHandle,
    known: Option<&Known>,
    tally: &mut Tally,
) -> (Option<AspmSysfs>, Option<Option<Vec<&'static str>>>) {
    let c = Collector::PcieAspm;
    if let Some(files) = known.and_then(|k| k.aspm_files.as_ref()) {
        let Some(files) = files else {
            return (None, None);
        };
        let mut a = AspmSysfs::default();
        for name in files {
            let path = aspm_path(name);
            *aspm_slot(&mut a, name) = read_attr_checked(tally, c, dev, &path, parse::flag);
        }
        return (Some(a), None);
    }
    // A real subdirectory: one path component from the device's.
    let link = match dev.open_child("link", dev.path().join("link")) {
        Err(e) if e.kind != ErrorKind::Absent => dev.open_dir("link"),
        r => r,
    };
    let listed = link.and_then(|mut h| h.list().map(|n| (h, n)));
    let (link_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            let absent = e.kind == ErrorKind::Absent;
            tally.read_failed(c, &e);
            return (None, absent.then_some(None));
        }
    };
    let present: Vec<&'static str> = ASPM_FILES
        .into_iter()
        .filter(|f| names.iter().any(|n| n == f))
        .collect();
    let mut a = AspmSysfs::default();
    for name in &present {
        *aspm_slot(&mut a, name) = read_attr_checked(tally, c, &link_dir, name, parse::flag);
    }
    (Some(a), Some(Some(present)))
}

fn aspm_slot<'a>(a: &'a mut AspmSysfs, file: &str) -> &'a mut Option<bool> {
    match file {
        "l0s_aspm" => &mut a.l0s,
        "l1_aspm" => &mut a.l1,
        "l1_1_aspm" => &mut a.l1_1,
        "l1_2_aspm" => &mut a.l1_2,
        "l1_1_pcipm" => &mut a.l1_1_pcipm,
        "l1_2_pcipm" => &mut a.l1_2_pcipm,
        _ => &mut a.clkpm,
    }
}

/// AER counters; which severities have `aer_dev_*` and
/// `aer_rootport_total_*` files (`None`: not known). With `known`, only the
/// files it lists are opened.
fn read_aer(
    d: &mut PciDevice,
    dir: &DirHandle,
    known: Option<&Known>,
    tally: &mut Tally,
) -> (Option<Severities>, Option<Severities>) {
    let c = Collector::PcieAer;
    // The kernel shows `aer_rootport_total_*` only on Root Ports and Root
    // Complex Event Collectors (kernel-abi.md §2.1): bridges (class 0604) and
    // event collectors (0807). Other functions are not asked, which saves
    // three failed opens per endpoint.
    let may_be_root_port = d.class.is_none_or(|c| matches!(c >> 8, 0x0604 | 0x0807));
    let (mut dev_files, mut rp_files) = (Some(Severities::default()), Some(Severities::default()));
    for sev in Severity::ALL {
        // Unknown which exist: try it.
        let want = |l: &Option<Severities>| l.is_none_or(|l| l.contains(sev));
        if known.is_none_or(|k| want(&k.aer_dev)) {
            match dir.with_text(sev.dev_file(), parse::aer_file) {
                Ok((counters, errs)) => {
                    for e in errs {
                        tally.error(
                            c,
                            format!("{}: {}", dir.path().join(sev.dev_file()).display(), e.0),
                        );
                    }
                    d.aer.insert(sev, counters);
                    d.aer_files = true;
                    push(&mut dev_files, sev);
                }
                Err(e) => {
                    if e.kind != ErrorKind::Absent {
                        dev_files = None;
                    }
                    tally.read_failed(c, &e);
                }
            }
        }
        if !may_be_root_port || known.is_some_and(|k| !want(&k.rootport)) {
            continue;
        }
        let (exists, v) = check_read(
            tally,
            c,
            dir,
            sev.rootport_file(),
            dir.with_attr(sev.rootport_file(), parse::counter),
        );
        if let Some(v) = v {
            d.rootport_total.insert(sev, v);
        }
        if exists {
            push(&mut rp_files, sev);
        }
    }
    (dev_files, rp_files)
}

fn push(list: &mut Option<Severities>, sev: Severity) {
    if let Some(l) = list {
        l.insert(sev);
    }
}

/// Role of a device on its link, from config space when readable, else from
/// the topology: bridges alternate root/downstream (partner below) and
/// upstream (partner above) going down the tree.
fn partner_is_below(d: &PciDevice, devices: &BTreeMap<String, PciDevice>) -> bool {
    if let Some(t) = d.port_type() {
        return t.is_downstream_facing();
    }
    if !d.is_bridge() {
        return false;
    }
    let Some(up) = d.upstream_port.as_ref().and_then(|u| devices.get(u)) else {
        return true; // a bridge on a root bus: root port
    };
    // Below a port whose partner is below, a bridge is a switch upstream port.
    !partner_is_below(up, devices)
}

fn derive_link_states(devices: &mut BTreeMap<String, PciDevice>) {
    // Children by parent, lowest address first (function 0 of the slot below).
    let mut first_child: BTreeMap<&str, &str> = BTreeMap::new();
    for d in devices.values() {
        if let Some(up) = &d.upstream_port {
            first_child.entry(up).or_insert(&d.address);
        }
    }
    // By position in `devices`, so no address is copied to find it again.
    let mut states = Vec::with_capacity(devices.len());
    for (at, d) in devices.values().enumerate() {
        if d.link.is_none() && d.config.as_ref().and_then(|c| c.express.as_ref()).is_none() {
            continue;
        }
        if d.port_type().is_some_and(|t| !t.has_link()) {
            continue;
        }
        let partner = if partner_is_below(d, devices) {
            first_child.get(d.address.as_str()).map(|c| c.to_string())
        } else {
            d.upstream_port.clone()
        };
        let partner_dev = partner.as_ref().and_then(|p| devices.get(p));
        let (own_speed, own_width) = d.max_caps();
        let (p_speed, p_width) = partner_dev.map(PciDevice::max_caps).unwrap_or((None, None));
        // What the link should train to needs both ends: with the partner's
        // maximum unknown (asleep, its link files skipped; not enumerated;
        // no topology) there is no expected value and so no verdict. Using
        // this end's maximum alone would call a Gen5 port above a sleeping
        // Gen4 device downgraded, flapping with runtime PM.
        let expected_speed = own_speed.zip(p_speed).map(|(a, b)| a.min(b));
        let expected_width = own_width.zip(p_width).map(|(a, b)| a.min(b));
        let express = d.config.as_ref().and_then(|c| c.express.as_ref());
        let (cur_speed, cur_width) = match &d.link {
            Some(l) => (l.speed_gts, l.width),
            None => (
                express.and_then(|e| e.speed_gts()),
                express.map(|e| Width::Lanes(e.width())),
            ),
        };
        let mut st = LinkState {
            partner,
            expected_speed_gts: expected_speed,
            expected_width,
            ..LinkState::default()
        };
        let lanes = match cur_width {
            Some(Width::Lanes(n)) => Some(n),
            Some(Width::AllOnes) => {
                st.link_up = Some(false);
                None
            }
            None => None,
        };
        if let Some(n) = lanes {
            let dll = express
                .filter(|e| e.dll_active_reporting())
                .map(|e| e.dll_link_active());
            st.link_up = Some(n > 0 && dll.unwrap_or(true));
        }
        let up = st.link_up == Some(true);
        if let (Some(cur), Some(exp), true) = (cur_speed, expected_speed, up) {
            st.speed_downgraded = Some(cur < exp);
        }
        if let (Some(cur), Some(exp), true) = (lanes, expected_width, up) {
            st.width_downgraded = Some(cur < exp);
        }
        states.push((at, st));
    }
    let mut states = states.into_iter().peekable();
    for (at, d) in devices.values_mut().enumerate() {
        if let Some((_, st)) = states.next_if(|(i, _)| *i == at) {
            d.link_state = Some(st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(addr: &str, up: Option<&str>, class: u32, link: Option<LinkAttrs>) -> PciDevice {
        PciDevice {
            address: addr.to_string(),
            class: Some(class),
            upstream_port: up.map(str::to_string),
            link,
            ..PciDevice::default()
        }
    }

    fn attrs(speed: f64, width: u8, max_speed: f64, max_width: u8) -> Option<LinkAttrs> {
        Some(LinkAttrs {
            speed_gts: Some(speed),
            width: Some(Width::Lanes(width)),
            max_speed_gts: Some(max_speed),
            max_width: Some(Width::Lanes(max_width)),
        })
    }

    #[test]
    fn the_bus_link_says_the_chain_and_whether_the_directory_is_inside_its_parent() {
        let bus = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/intel-vmd/sys/bus/pci/devices"
        );
        let bus = DirHandle::open(Path::new(bus)).expect("bus");
        let chain = |n: &str| {
            let (c, direct) = read_chain(&bus, n, &mut Tally::default());
            (c.to_vec(), direct)
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Below the VMD endpoint in sysfs, not inside its directory.
        assert_eq!(chain("10000:e0:06.0"), (s(&["0000:00:0e.0"]), false));
        assert_eq!(
            chain("10000:e1:00.0"),
            (s(&["0000:00:0e.0", "10000:e0:06.0"]), true)
        );
        assert_eq!(chain("0000:00:0e.0"), (s(&[]), false));
        assert_eq!(chain("0000:09:00.0"), (s(&[]), false), "absent");
    }

    #[test]
    fn a_device_is_opened_from_its_parent_only_when_it_lies_inside_it() {
        let e = |name: &str, chain: &[&str], direct: bool| -> Entry {
            let chain = chain.iter().map(|s| s.to_string()).collect();
            (name.to_string(), 0, chain, direct)
        };
        let order = vec![
            e("0000:00:1c.0", &[], false),
            // VMD: below the VMD endpoint in sysfs, not inside its directory.
            e("10000:e0:1d.0", &["0000:00:0e.0"], false),
            e("0000:02:00.0", &["0000:00:1c.0"], true),
            // Its parent is not on the bus (a partial capture).
            e("0000:03:00.0", &["0000:00:1d.0"], true),
        ];
        assert_eq!(parents(&order), vec![None, None, Some(0), None]);
    }

    #[test]
    fn every_aspm_file_has_its_path_from_the_device_directory() {
        for (file, path) in ASPM_FILES.into_iter().zip(ASPM_PATHS) {
            assert_eq!(path, format!("link/{file}"));
            assert!(matches!(aspm_path(file), std::borrow::Cow::Borrowed(p) if p == path));
        }
        assert_eq!(
            aspm_path("l2_aspm"),
            "link/l2_aspm",
            "a name the kernel may add"
        );
    }

    #[test]
    fn a_sleeping_partner_gives_no_expected_value_and_no_verdict() {
        // Gen5 x4 root port above a Gen4 NVMe in D3hot: the NVMe's link files
        // were skipped, so its maximum is unknown.
        let mut devices = BTreeMap::new();
        for d in [
            dev("0000:00:1b.0", None, 0x060400, attrs(16.0, 4, 32.0, 4)),
            PciDevice {
                power_state: Some(PowerState::D3hot),
                link_skipped: true,
                ..dev("0000:03:00.0", Some("0000:00:1b.0"), 0x010802, None)
            },
        ] {
            devices.insert(d.address.clone(), d);
        }
        derive_link_states(&mut devices);
        let st = devices["0000:00:1b.0"].link_state.clone().expect("state");
        assert_eq!(st.partner.as_deref(), Some("0000:03:00.0"));
        assert_eq!(st.link_up, Some(true));
        assert_eq!(
            (st.expected_speed_gts, st.speed_downgraded),
            (None, None),
            "unknown partner: no expected speed, no verdict"
        );
        assert_eq!((st.expected_width, st.width_downgraded), (None, None));
        // The same port with the partner awake is judged against it.
        devices.get_mut("0000:03:00.0").expect("nvme").link = attrs(16.0, 4, 16.0, 4);
        derive_link_states(&mut devices);
        let st = devices["0000:00:1b.0"].link_state.clone().expect("state");
        assert_eq!(
            (st.expected_speed_gts, st.speed_downgraded),
            (Some(16.0), Some(false))
        );
    }
}
