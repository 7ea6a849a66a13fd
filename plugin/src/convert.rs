//! Snapshot -> points. Every measurement, tag and field name of the contract
//! (`../shared/spec/metrics.md`, mirrored in `docs/metrics.md`) is spelled
//! here; the names of values (event categories, AER severities, AER counter
//! and register-bit names) in `names.rs`; collector names, and which
//! measurements each collector writes, in the library's collector table
//! (`vigil_collector::collector::TABLE`), because the library needs the table
//! to know what to read and `cli.rs` builds without this crate.

use std::collections::HashMap;

use vigil_collector::edac::Edac;
use vigil_collector::forensics::Forensics;
use vigil_collector::heartbeat::Heartbeat;
use vigil_collector::kmsg::{Event, Suppressed};
use vigil_collector::pci::config_space::Express;
use vigil_collector::pci::{AspmSysfs, PciDevice, Severity, Width};
use vigil_collector::platform::Platform;
use vigil_collector::vfio::{IommuGroup, VfioDevice};
use vigil_collector::{Collector, Selection, Snapshot};

use crate::metric::{sort, Field, Metric};
use crate::names::{self, aer_field_name, bit_names, COR_NAMES, UNCOR_NAMES};

/// Vendor and device names from pci.ids, each absent when unknown.
type NamePair = (Option<&'static str>, Option<&'static str>);

/// pci.ids names (unless turned off) and AER field names.
#[derive(Default)]
pub struct Names {
    enabled: bool,
    /// Kernel AER counter name -> field name. The kernel's names are a small
    /// closed set; past AER_NAMES_MAX distinct names (garbage) nothing more is kept.
    aer: HashMap<String, &'static str>,
}

const AER_NAMES_MAX: usize = 256;

/// The measurements written per PCI device, streamed in address order.
const PER_DEVICE: [&str; 6] = [
    "pcie_aer",
    "pcie_aer_status",
    "pcie_aspm",
    "pcie_device",
    "pcie_link",
    "vfio_device",
];

impl Names {
    pub fn new(enabled: bool) -> Names {
        Names {
            enabled,
            aer: HashMap::new(),
        }
    }

    fn aer_field(&mut self, kernel_name: &str) -> std::borrow::Cow<'static, str> {
        if let Some(n) = self.aer.get(kernel_name) {
            return std::borrow::Cow::Borrowed(n);
        }
        let name = aer_field_name(kernel_name);
        if self.aer.len() >= AER_NAMES_MAX {
            return std::borrow::Cow::Owned(name);
        }
        // Bounded above: at most AER_NAMES_MAX short names live for the process.
        let leaked: &'static str = Box::leak(name.into_boxed_str());
        self.aer.insert(kernel_name.to_string(), leaked);
        std::borrow::Cow::Borrowed(leaked)
    }

    /// Two binary searches in static tables: nothing worth caching.
    fn lookup(&self, vid: u16, did: u16) -> NamePair {
        if !self.enabled {
            return (None, None);
        }
        (
            crate::pciname::vendor(vid),
            crate::pciname::device(vid, did),
        )
    }
}

pub struct Converter<'a> {
    pub sel: &'a Selection,
    pub names: &'a mut Names,
    pub version: &'a str,
    pub opts: &'a Options,
}

/// How much of each device to write: the choices that set a node's volume
/// and its series count (README, "Volume and cardinality").
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub aer_detail: AerDetail,
    /// v1's identity tags (IDs and names) on every per-device line, not only
    /// on `pcie_device`.
    pub identity_everywhere: bool,
    pub filter: DeviceFilter,
}

/// Which AER counters a severity's line carries beside `total` and `rootport_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AerDetail {
    /// Only the totals.
    Totals,
    /// The counters that are not zero. A severity whose kernel total is 0
    /// has every counter at 0 (the kernel bumps the total with every
    /// counted error), so its line is the total alone. A severity without a
    /// total line (old formats) keeps every counter.
    #[default]
    Nonzero,
    /// Every counter, zeros included (v1).
    All,
}

/// Devices to write, by address, class and vendor. Within one kind a device
/// must match one inclusion (when there are any) and no exclusion (`!`);
/// across kinds, all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub address: Vec<Pattern>,
    pub class: Vec<Pattern>,
    pub vendor: Vec<Pattern>,
}

/// A lower-case prefix; `exclude` when written `!prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub prefix: String,
    pub exclude: bool,
}

impl DeviceFilter {
    pub fn is_empty(&self) -> bool {
        self.address.is_empty() && self.class.is_empty() && self.vendor.is_empty()
    }

    pub fn keeps(&self, d: &PciDevice) -> bool {
        let class = d.class.map(|c| format!("{c:06x}"));
        let vendor = d.vendor_id.map(Hex4::new);
        admits(&self.address, Some(d.address.as_str()))
            && admits(&self.class, class.as_deref())
            && admits(&self.vendor, vendor.as_ref().map(Hex4::as_str))
    }
}

/// An unknown value (unreadable `class`) matches no inclusion and no exclusion.
fn admits(patterns: &[Pattern], value: Option<&str>) -> bool {
    let hit = |p: &Pattern| value.is_some_and(|v| v.starts_with(&p.prefix));
    let includes = patterns.iter().filter(|p| !p.exclude);
    let included = includes.clone().next().is_none() || includes.clone().any(hit);
    included && !patterns.iter().any(|p| p.exclude && hit(p))
}

/// A device's tags: the address borrowed, the IDs formatted once per batch
/// for the device's several lines, the names static.
struct DeviceTags<'s> {
    address: &'s str,
    vendor_id: Option<Hex4>,
    device_id: Option<Hex4>,
    class_id: Option<Hex4>,
    vendor: Option<&'static str>,
    device: Option<&'static str>,
}

impl<'s> DeviceTags<'s> {
    fn new(d: &'s PciDevice, names: &mut Names) -> DeviceTags<'s> {
        let (vendor, device) = match (d.vendor_id, d.device_id) {
            (Some(v), Some(dv)) => names.lookup(v, dv),
            _ => (None, None),
        };
        DeviceTags {
            address: &d.address,
            vendor_id: d.vendor_id.map(Hex4::new),
            device_id: d.device_id.map(Hex4::new),
            // Base class and subclass (the parser admits 24 bits); the
            // programming interface is not an ID.
            class_id: d
                .class
                .and_then(|c| u16::try_from(c >> 8).ok())
                .map(Hex4::new),
            vendor,
            device,
        }
    }

    /// A point tagged with the address, and with the identity (IDs, names)
    /// when `identity`: `pcie_device` always, the others only with
    /// `--device-tags all`. The address alone keys a device's series; one
    /// identity per line would be two thirds of the volume.
    fn metric<'m>(&'m self, name: &'static str, t: i64, identity: bool) -> Metric<'m> {
        // The identity, the address, and one more (`severity`, `group`).
        let tags = if identity { 7 } else { 2 };
        let mut m = Metric::with_capacity(name, t, tags, most_fields(name));
        m.tag("address", self.address);
        if !identity {
            return m;
        }
        // In key order: each tag is appended, not inserted before another.
        let tags = [
            ("class_id", self.class_id.as_ref().map(Hex4::as_str)),
            ("device", self.device),
            ("device_id", self.device_id.as_ref().map(Hex4::as_str)),
            ("vendor", self.vendor),
            ("vendor_id", self.vendor_id.as_ref().map(Hex4::as_str)),
        ];
        for (k, v) in tags {
            if let Some(v) = v {
                m.tag(k, v);
            }
        }
        m
    }
}

/// A 16-bit ID as four lowercase hex digits (`{:04x}`), held inline: every
/// device has three of them in every batch, none worth an allocation.
struct Hex4([u8; 4]);

impl Hex4 {
    fn new(v: u16) -> Hex4 {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let nibble = |shift: u16| DIGITS[usize::from((v >> shift) & 0xf)];
        Hex4([nibble(12), nibble(8), nibble(4), nibble(0)])
    }

    fn as_str(&self) -> &str {
        // Hex digits are ASCII: this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The most fields a per-device measurement has: what its point makes room
/// for. `pcie_aer` makes room for its counters when it writes them.
fn most_fields(measurement: &str) -> usize {
    match measurement {
        "pcie_aspm" => 22,
        "pcie_aer_status" => 16,
        "pcie_link" | "vfio_device" => 14,
        "pcie_device" => 11,
        _ => 2,
    }
}

impl Converter<'_> {
    /// Every point of the batch, in the contract's order (measurement, then tag
    /// set), handed to `sink` one at a time: per-device measurements stream in
    /// address order (`address` is their first tag), so a large host never holds
    /// its whole batch in memory. `extra` joins the `kernel_event` group.
    pub fn emit<'s>(
        &mut self,
        s: &'s Snapshot,
        extra: Vec<Metric<'s>>,
        sink: &mut dyn FnMut(&Metric),
    ) {
        let t = s.time_unix_ns;
        let mut small = self.small(s);
        small.extend(extra);
        sort(&mut small);
        let empty = std::collections::BTreeMap::new();
        let devices = s.pci.as_ref().map_or(&empty, |p| &p.devices);
        let mut names: Vec<&'static str> = small.iter().map(|m| m.name).collect();
        names.extend(PER_DEVICE);
        let groups = self.streamed_groups(s);
        if !groups.is_empty() {
            names.push("iommu_group");
        }
        names.sort_unstable();
        names.dedup();
        let tags: Vec<DeviceTags> = devices
            .values()
            .map(|d| DeviceTags::new(d, self.names))
            .collect();
        let filter = &self.opts.filter;
        let keep: Vec<bool> = devices
            .values()
            .map(|d| filter.is_empty() || filter.keeps(d))
            .collect();
        let mut rest = small.into_iter().peekable();
        for name in names {
            while let Some(m) = rest.next_if(|m| m.name == name) {
                sink(&m);
            }
            if name == "iommu_group" {
                groups.iter().for_each(|g| sink(&iommu_group(g, t)));
                continue;
            }
            if !PER_DEVICE.contains(&name) {
                continue;
            }
            // The collector table says which collector writes it.
            match Collector::writing(name) {
                Some(c) if self.sel.has(c) => {}
                _ => continue,
            }
            match name {
                "vfio_device" => {
                    for vd in s.vfio.iter().flat_map(|v| v.devices.values()) {
                        // `tags` is in address order, like the device map.
                        let i = tags.binary_search_by(|g| g.address.cmp(vd.address.as_str()));
                        if let (Some(d), Ok(i)) = (devices.get(&vd.address), i) {
                            if !keep[i] {
                                continue;
                            }
                            sink(&self.vfio(vd, d, &tags[i], t));
                        }
                    }
                }
                _ => {
                    for ((d, g), _) in devices.values().zip(&tags).zip(&keep).filter(|(_, k)| **k) {
                        match name {
                            "pcie_aer" => {
                                let mut v = self.aer(d, g, t);
                                v.sort_by(|a, b| {
                                    a.tags.get("severity").cmp(&b.tags.get("severity"))
                                });
                                v.iter().for_each(&mut *sink);
                            }
                            "pcie_aer_status" => {
                                self.aer_status(d, g, t).iter().for_each(&mut *sink)
                            }
                            "pcie_aspm" => self.aspm(d, g, t).iter().for_each(&mut *sink),
                            "pcie_device" => sink(&self.device(d, g, t)),
                            _ => self.link(d, g, t).iter().for_each(&mut *sink),
                        }
                    }
                }
            }
        }
    }

    /// The IOMMU groups, streamed rather than held as points: a host with
    /// thousands of groups would otherwise hold all their points at once.
    fn streamed_groups<'s>(&self, s: &'s Snapshot) -> Vec<&'s IommuGroup> {
        let mut groups: Vec<&IommuGroup> = match (&s.vfio, self.sel.has(Collector::IommuGroup)) {
            (Some(v), true) => v.groups.values().collect(),
            _ => Vec::new(),
        };
        groups.sort_by(|a, b| tag_order(a.id, b.id));
        groups
    }

    /// Everything but the per-device measurements and the IOMMU groups, sorted.
    fn small<'s>(&mut self, s: &'s Snapshot) -> Vec<Metric<'s>> {
        let t = s.time_unix_ns;
        let mut out = Vec::new();
        if let Some(p) = &s.platform {
            out.push(platform_metric(s, p, t));
        }
        if let (Some(f), true) = (&s.forensics, self.sel.has(Collector::CrashForensics)) {
            out.push(forensics_metric(s, f, t));
        }
        if self.sel.has(Collector::KernelEvent) {
            out.extend(s.events.iter().map(event_metric));
            out.extend(s.events_suppressed.iter().map(suppressed_metric));
        }
        if let Some(e) = &s.edac {
            out.extend(edac_metrics(e, t));
        }
        if let Some(hb) = &s.heartbeat {
            out.push(self.heartbeat(s, hb, t));
        }
        out.extend(status_metrics(s, t));
        sort(&mut out);
        out
    }

    /// The heartbeat: the `vigil` line.
    fn heartbeat<'s>(&self, s: &'s Snapshot, hb: &'s Heartbeat, t: i64) -> Metric<'s> {
        let mut m = Metric::new("vigil", t);
        m.field("version", Field::str(self.version.to_string()));
        m.opt("boot_id", hb.boot_id.as_deref().map(Field::str));
        m.opt("uptime_s", hb.uptime_s.map(Field::Float));
        m.field("duration_us", Field::uint(s.duration_us));
        m.field("errors", Field::uint(s.errors()));
        if let Some(pci) = &s.pci {
            m.opt("privileged", pci.privileged().map(Field::flag));
            m.field("devices", Field::uint(pci.devices.len() as u64));
        }
        m
    }

    fn vfio<'m>(
        &mut self,
        vd: &'m VfioDevice,
        d: &'m PciDevice,
        g: &'m DeviceTags,
        t: i64,
    ) -> Metric<'m> {
        let mut m = g.metric("vfio_device", t, self.opts.identity_everywhere);
        if let Some(g) = vd.group {
            m.tag("group", g.to_string());
        }
        let driver = d
            .driver
            .as_ref()
            .map(|drv| drv.as_deref().unwrap_or("none"));
        // Scanned (`Some`), and if so the process holding it, if any.
        let holder = vd.holder.as_ref();
        let held = holder.and_then(Option::as_ref);
        // In key order: each field is appended, not inserted before another.
        m.opt("bound", vd.bound.map(Field::flag));
        if !vd.configured_vmids.is_empty() {
            let ids: Vec<&str> = vd.configured_vmids.iter().map(String::as_str).collect();
            m.field("configured_vmids", Field::str(ids.join(",")));
        }
        m.opt("driver", driver.map(Field::str));
        m.opt("group_viable", vd.group_viable.map(Field::flag));
        m.opt(
            "holder",
            held.and_then(|h| h.name.as_deref()).map(Field::str),
        );
        m.opt("holder_pid", held.map(|h| Field::Int(i64::from(h.pid))));
        if !vd.host_companions.is_empty() {
            let addresses = Field::str(vd.host_companions.join(","));
            m.field("host_companion_addresses", addresses);
        }
        let companions = Field::uint(vd.host_companions.len() as u64);
        m.field("host_companions", companions);
        m.opt("in_use", holder.map(|h| Field::flag(h.is_some())));
        m.field("intended", Field::flag(vd.intended));
        if !vd.intended_by.is_empty() {
            let by: Vec<&str> = vd.intended_by.iter().copied().collect();
            m.field("intended_by", Field::str(by.join(",")));
        }
        let power = d.power_state.as_ref().map(|p| Field::str(p.as_str()));
        m.opt("power_state", power);
        m.opt("reset_method", vd.reset_method.as_deref().map(Field::str));
        m.opt("vmid", held.and_then(|h| h.vmid.as_deref()).map(Field::str));
        m
    }

    fn device<'m>(&mut self, d: &'m PciDevice, g: &'m DeviceTags, t: i64) -> Metric<'m> {
        let mut m = g.metric("pcie_device", t, true);
        // In key order: each field is appended, not inserted before another.
        m.opt("d3cold_allowed", d.d3cold_allowed.map(Field::flag));
        let power = d.power_state.as_ref();
        m.opt("d_state", power.and_then(|p| p.d_state()).map(Field::Int));
        let driver = d
            .driver
            .as_ref()
            .map(|drv| drv.as_deref().unwrap_or("none"));
        m.opt("driver", driver.map(Field::str));
        m.opt("enabled", d.enabled.map(Field::flag));
        m.opt(
            "iommu_group",
            d.iommu_group.map(|g| Field::Int(i64::from(g))),
        );
        m.field("link_skipped", Field::flag(d.link_skipped));
        m.opt("numa_node", d.numa_node.map(Field::Int));
        m.opt("power_state", power.map(|p| Field::str(p.as_str())));
        m.opt(
            "reachable",
            d.config.as_ref().map(|c| Field::flag(c.reachable)),
        );
        m.opt(
            "runtime_status",
            d.runtime_status.as_ref().map(|r| Field::str(r.as_str())),
        );
        m.opt("upstream_port", d.upstream_port.as_deref().map(Field::str));
        m
    }

    fn link<'m>(&mut self, d: &'m PciDevice, g: &'m DeviceTags, t: i64) -> Option<Metric<'m>> {
        if d.link_skipped {
            return None;
        }
        let express = d
            .config
            .as_ref()
            .and_then(|c| c.express.as_ref())
            .filter(|e| e.port_type.has_link());
        if d.link.is_none() && express.is_none() {
            return None;
        }
        let mut m = g.metric("pcie_link", t, self.opts.identity_everywhere);
        let lanes = |w: Option<Width>| match w {
            Some(Width::Lanes(n)) => Some(Field::Int(i64::from(n))),
            _ => None,
        };
        let int = |n: u8| Some(Field::Int(i64::from(n)));
        let (speed, max_speed, width, max_width) = match (&d.link, express) {
            (Some(l), _) => (
                l.speed_gts,
                l.max_speed_gts,
                lanes(l.width),
                lanes(l.max_width),
            ),
            // Kernels before 4.13 have no link files: the registers say the same.
            (None, Some(e)) => (
                e.speed_gts(),
                e.max_speed_gts(),
                int(e.width()),
                int(e.max_width()),
            ),
            (None, None) => (None, None, None, None),
        };
        let st = d.link_state.as_ref();
        let flag = |f: fn(&Express) -> bool| express.map(|e| Field::flag(f(e)));
        // In key order: each field is appended, not inserted before another.
        m.opt("autonomous_bw_status", flag(Express::autonomous_bw_status));
        m.opt("bw_mgmt_status", flag(Express::bw_mgmt_status));
        let dll = express.filter(|e| e.dll_active_reporting());
        m.opt(
            "dll_link_active",
            dll.map(|e| Field::flag(e.dll_link_active())),
        );
        let expected_speed = st.and_then(|s| s.expected_speed_gts);
        m.opt("expected_speed_gts", expected_speed.map(Field::Float));
        let expected_width = st.and_then(|s| s.expected_width);
        m.opt(
            "expected_width",
            expected_width.map(|w| Field::Int(i64::from(w))),
        );
        m.opt("link_training", flag(Express::link_training));
        m.opt("link_up", st.and_then(|s| s.link_up).map(Field::flag));
        m.opt("max_speed_gts", max_speed.map(Field::Float));
        m.opt("max_width", max_width);
        let speed_down = st.and_then(|s| s.speed_downgraded);
        m.opt("speed_downgraded", speed_down.map(Field::flag));
        m.opt("speed_gts", speed.map(Field::Float));
        let target = express.and_then(|e| e.target_speed_gts());
        m.opt("target_speed_gts", target.map(Field::Float));
        m.opt("width", width);
        let width_down = st.and_then(|s| s.width_downgraded);
        m.opt("width_downgraded", width_down.map(Field::flag));
        Some(m)
    }

    fn aspm<'m>(&mut self, d: &'m PciDevice, g: &'m DeviceTags, t: i64) -> Option<Metric<'m>> {
        let (enabled, source) = d.aspm_enabled()?;
        let mut m = g.metric("pcie_aspm", t, self.opts.identity_everywhere);
        // In key order: each field is appended, not inserted before another.
        let sysfs =
            |f: fn(&AspmSysfs) -> Option<bool>| d.aspm.as_ref().and_then(f).map(Field::flag);
        m.opt("clkpm", sysfs(|a| a.clkpm));
        m.field("enabled", Field::flag(enabled));
        m.opt("l0s", sysfs(|a| a.l0s));
        m.opt("l1", sysfs(|a| a.l1));
        m.opt("l1_1", sysfs(|a| a.l1_1));
        m.opt("l1_1_pcipm", sysfs(|a| a.l1_1_pcipm));
        m.opt("l1_2", sysfs(|a| a.l1_2));
        m.opt("l1_2_pcipm", sysfs(|a| a.l1_2_pcipm));
        if let Some(e) = d
            .config
            .as_ref()
            .and_then(|c| c.express.as_ref())
            .filter(|e| e.port_type.has_link())
        {
            if let Some(l) = d.config.as_ref().and_then(|c| c.l1ss.as_ref()) {
                for (name, on) in [
                    ("l1sscap_aspm_l1_1", l.cap_aspm_l1_1()),
                    ("l1sscap_aspm_l1_2", l.cap_aspm_l1_2()),
                    ("l1sscap_pcipm_l1_1", l.cap_pcipm_l1_1()),
                    ("l1sscap_pcipm_l1_2", l.cap_pcipm_l1_2()),
                    ("l1ssctl_aspm_l1_1", l.ctl_aspm_l1_1()),
                    ("l1ssctl_aspm_l1_2", l.ctl_aspm_l1_2()),
                    ("l1ssctl_pcipm_l1_1", l.ctl_pcipm_l1_1()),
                    ("l1ssctl_pcipm_l1_2", l.ctl_pcipm_l1_2()),
                ] {
                    m.field(name, Field::flag(on));
                }
            }
            m.field("lnkcap_l0s", Field::flag(e.lnkcap_l0s()));
            m.field("lnkcap_l1", Field::flag(e.lnkcap_l1()));
            m.field("lnkctl_clkpm", Field::flag(e.lnkctl_clkpm()));
            m.field("lnkctl_l0s", Field::flag(e.lnkctl_l0s()));
            m.field("lnkctl_l1", Field::flag(e.lnkctl_l1()));
        }
        m.field("source", Field::str(source));
        Some(m)
    }

    fn aer<'m>(&mut self, d: &'m PciDevice, g: &'m DeviceTags, t: i64) -> Vec<Metric<'m>> {
        let mut out = Vec::new();
        for sev in Severity::ALL {
            let counters = d.aer.get(&sev);
            let rootport = d.rootport_total.get(&sev);
            if counters.is_none() && rootport.is_none() {
                continue;
            }
            let mut m = g.metric("pcie_aer", t, self.opts.identity_everywhere);
            m.tag("severity", names::severity(sev));
            if let Some(c) = counters {
                let detail = self.opts.aer_detail != AerDetail::Totals;
                if detail {
                    m.fields.reserve(c.counters.len());
                }
                // Zeros can be left off only where the total says they are zeros.
                let zeros = self.opts.aer_detail == AerDetail::All || c.total.is_none();
                for (name, v) in &c.counters {
                    if !detail || (*v == 0 && !zeros) {
                        continue;
                    }
                    let key = self.names.aer_field(name);
                    // `total` and `rootport_total` are ours; a kernel name colliding keeps its own spelling.
                    let key = if key == "total" || key == "rootport_total" {
                        std::borrow::Cow::Owned(format!("{key}_counter"))
                    } else {
                        key
                    };
                    if !m.fields.contains_key(&key) {
                        m.fields.insert(key, Field::uint(*v));
                    }
                }
                m.opt("total", c.total.map(Field::uint));
            }
            m.opt("rootport_total", rootport.map(|v| Field::uint(*v)));
            out.push(m);
        }
        out
    }

    fn aer_status<'m>(
        &mut self,
        d: &'m PciDevice,
        g: &'m DeviceTags,
        t: i64,
    ) -> Option<Metric<'m>> {
        let cs = d
            .config
            .as_ref()
            .filter(|c| c.privileged() && c.reachable)?;
        if cs.express.is_none() && cs.aer.is_none() {
            return None;
        }
        let mut m = g.metric("pcie_aer_status", t, self.opts.identity_everywhere);
        // In key order: each field is appended, not inserted before another.
        let (aer, dpc) = (cs.aer.as_ref(), cs.dpc.as_ref());
        let reg = |v: Option<u32>| v.map(|v| Field::Int(i64::from(v)));
        m.opt("cor_mask", reg(aer.map(|a| a.cor_mask)));
        m.opt("cor_status", reg(aer.map(|a| a.cor_status)));
        let cor_names = aer.map(|a| Field::str(bit_names(a.cor_status, &COR_NAMES)));
        m.opt("cor_status_names", cor_names);
        if let Some(e) = &cs.express {
            m.field("devsta_corr_err", Field::flag(e.devsta_corr_err()));
            m.field("devsta_fatal_err", Field::flag(e.devsta_fatal_err()));
            m.field("devsta_nonfatal_err", Field::flag(e.devsta_nonfatal_err()));
            m.field("devsta_unsupp_req", Field::flag(e.devsta_unsupp_req()));
        }
        if let Some(dpc) = dpc {
            m.field("dpc_status", Field::Int(i64::from(dpc.status)));
            m.field("dpc_trigger_enabled", Field::flag(dpc.trigger_enabled()));
            let reason = Field::Int(i64::from(dpc.trigger_reason()));
            m.field("dpc_trigger_reason", reason);
            m.field("dpc_triggered", Field::flag(dpc.triggered()));
        }
        m.opt("root_status", reg(aer.and_then(|a| a.root_status)));
        m.opt("uncor_mask", reg(aer.map(|a| a.uncor_mask)));
        m.opt("uncor_severity", reg(aer.map(|a| a.uncor_severity)));
        m.opt("uncor_status", reg(aer.map(|a| a.uncor_status)));
        let uncor_names = aer.map(|a| Field::str(bit_names(a.uncor_status, &UNCOR_NAMES)));
        m.opt("uncor_status_names", uncor_names);
        Some(m)
    }
}

/// One `iommu_group` line per group.
fn iommu_group(g: &IommuGroup, t: i64) -> Metric<'_> {
    let mut m = Metric::with_capacity("iommu_group", t, 1, 8);
    m.tag("group", g.id.to_string());
    // In key order: each field is appended, not inserted before another.
    m.field("bridges", Field::uint(g.bridges));
    m.field("devices", Field::uint(g.members.len() as u64));
    m.field("members", Field::str(g.members.join(",")));
    m.field("other_devices", Field::uint(g.other_devices));
    m.opt("type", g.group_type.as_deref().map(Field::str));
    m.field("vfio_devices", Field::uint(g.vfio_devices));
    m.opt("viable", g.viable.map(Field::flag));
    m
}

/// Group numbers in the order of their `group` tag's text ("10" before "9"),
/// the contract's order, without writing each number out.
fn tag_order(a: u32, b: u32) -> std::cmp::Ordering {
    let digits = |n: u32| n.checked_ilog10().map_or(1, |d| d + 1);
    let (da, db) = (digits(a), digits(b));
    // Pad the shorter number with zeros on the right: then the text order
    // is the numeric order, and a prefix ("1" of "10") comes first.
    let (pa, pb) = (
        u64::from(a) * 10u64.pow(db.saturating_sub(da)),
        u64::from(b) * 10u64.pow(da.saturating_sub(db)),
    );
    pa.cmp(&pb).then(da.cmp(&db))
}

/// The `pcie_platform` line; the IOMMU facts come from the vfio walk.
fn platform_metric<'s>(s: &'s Snapshot, p: &'s Platform, t: i64) -> Metric<'s> {
    let mut m = Metric::new("pcie_platform", t);
    if let Some(v) = &s.vfio {
        m.opt("iommu_enabled", v.iommu_enabled.map(Field::flag));
        if v.iommu_enabled.is_some() {
            m.field("iommu_groups", Field::uint(v.groups.len() as u64));
        }
        m.opt("iommu_passthrough", v.iommu_passthrough.map(Field::flag));
        m.opt(
            "interrupt_remapping",
            v.interrupt_remapping.map(Field::flag),
        );
        m.opt(
            "vfio_unsafe_interrupts",
            v.vfio_unsafe_interrupts.map(Field::flag),
        );
        m.opt("acs_override", v.acs_override.map(Field::flag));
    }
    m.opt("cmdline", p.cmdline.as_deref().map(Field::str));
    m.opt("aspm_policy", p.aspm_policy.as_deref().map(Field::str));
    if p.cmdline.is_some() {
        let v = p.aspm_cmdline.clone().unwrap_or_else(|| "unset".into());
        m.field("aspm_cmdline", Field::str(v));
    }
    m.opt(
        "aer_cmdline_disabled",
        p.aer_cmdline_disabled.map(Field::flag),
    );
    m.opt("aer_native", p.aer_native.map(Field::flag));
    if s.pci.is_some() {
        m.opt("aer_devices", p.aer_devices.map(Field::uint));
        m.field("devices", Field::uint(p.devices));
        m.field("pcie_devices", Field::uint(p.pcie_devices));
        m.field("suspended_devices", Field::uint(p.suspended_devices));
    }
    m
}

/// The `crash_forensics` line: settings, readiness score and finding ids.
fn forensics_metric<'s>(s: &'s Snapshot, f: &'s Forensics, t: i64) -> Metric<'s> {
    let mut m = Metric::new("crash_forensics", t);
    // An unreadable journald file could set anything: no settings then.
    let journald_known = f.journal_config_unreadable.is_empty();
    if journald_known {
        m.field("journal_storage", Field::str(f.journal_storage.as_str()));
    }
    m.opt("journal_persistent", f.journal_persistent.map(Field::flag));
    m.opt("journal_fs", f.journal_fs.as_deref().map(Field::str));
    m.opt("var_log_in_ram", f.var_log_in_ram.map(Field::flag));
    m.field("log2ram", Field::flag(f.ram_logger.is_some()));
    m.opt("ram_logger", f.ram_logger.as_deref().map(Field::str));
    m.opt("log_disk_sync_age_s", f.log_disk_sync_age_s.map(Field::Int));
    m.opt(
        "log_disk_sync_interval_s",
        f.log_disk_sync_interval_s.map(Field::uint),
    );
    if journald_known {
        m.field(
            "journal_sync_interval_s",
            Field::uint(f.journal_sync_interval_s),
        );
    }
    // Unknown is not "no": with a way off the node unreadable and none
    // found, the field is left off (`vigil_collector unavailable` says why).
    if !f.remote_logging.is_empty() || f.remote_logging_unknown.is_empty() {
        m.field("remote_logging", Field::flag(!f.remote_logging.is_empty()));
    }
    if !f.remote_logging.is_empty() {
        m.field("remote_logging_via", Field::str(f.remote_logging.join(",")));
    }
    m.opt("netconsole", f.netconsole.map(Field::flag));
    m.opt(
        "pstore_backend",
        f.pstore_backend.as_deref().map(Field::str),
    );
    m.opt("pstore_records", f.pstore_records.map(Field::uint));
    m.opt("kdump_loaded", f.kdump_loaded.map(Field::flag));
    m.opt("crashkernel_bytes", f.crashkernel_bytes.map(Field::uint));
    m.opt("nmi_watchdog", f.nmi_watchdog.map(Field::flag));
    m.opt("soft_watchdog", f.soft_watchdog.map(Field::flag));
    m.opt("hardlockup_panic", f.hardlockup_panic.map(Field::flag));
    m.opt("softlockup_panic", f.softlockup_panic.map(Field::flag));
    m.opt("hung_task_panic", f.hung_task_panic.map(Field::flag));
    m.opt("panic_on_oops", f.panic_on_oops.map(Field::flag));
    m.opt("panic_reboot_s", f.panic_reboot_s.map(Field::Int));
    m.opt("hw_watchdog", f.hw_watchdog.map(Field::flag));
    m.opt(
        "hw_watchdog_timeout_s",
        f.hw_watchdog_timeout_s.map(Field::uint),
    );
    m.opt(
        "hw_watchdog_identity",
        f.hw_watchdog_identity.as_deref().map(Field::str),
    );
    m.field(
        "readiness_score",
        Field::Int(i64::from(vigil_collector::forensics::findings::score(
            &s.findings,
        ))),
    );
    m.field("findings", Field::uint(s.findings.len() as u64));
    let ids: Vec<&str> = s.findings.iter().map(|f| f.id).collect();
    m.field("finding_ids", Field::str(ids.join(",")));
    let unchecked: Vec<&str> = vigil_collector::forensics::findings::unchecked(f)
        .iter()
        .map(|u| u.id)
        .collect();
    if !unchecked.is_empty() {
        m.field("unchecked_ids", Field::str(unchecked.join(",")));
    }
    m
}

/// One `vigil_collector` line per collector that ran.
fn status_metrics(s: &Snapshot, t: i64) -> impl Iterator<Item = Metric<'_>> {
    s.status.iter().map(move |(c, st)| {
        let mut m = Metric::new("vigil_collector", t);
        m.tag("collector", c.name());
        m.field("success", Field::flag(st.success));
        m.field("duration_us", Field::uint(st.duration_us));
        m.field("errors", Field::uint(st.errors));
        if !st.unavailable.is_empty() {
            let v: Vec<&str> = st.unavailable.iter().map(String::as_str).collect();
            m.field("unavailable", Field::str(v.join(",")));
        }
        m
    })
}

/// `edac_mc` per memory controller and `edac_dimm` per DIMM or rank.
fn edac_metrics(e: &Edac, t: i64) -> Vec<Metric<'_>> {
    let mut out = Vec::new();
    for mc in &e.controllers {
        let mut m = Metric::new("edac_mc", t);
        m.tag("controller", mc.name.as_str());
        m.opt("ce_count", mc.ce_count.map(Field::uint));
        m.opt("ue_count", mc.ue_count.map(Field::uint));
        m.opt("ce_noinfo_count", mc.ce_noinfo_count.map(Field::uint));
        m.opt("ue_noinfo_count", mc.ue_noinfo_count.map(Field::uint));
        m.opt("mc_name", mc.mc_name.as_deref().map(Field::str));
        m.opt("size_mb", mc.size_mb.map(Field::uint));
        m.opt(
            "seconds_since_reset",
            mc.seconds_since_reset.map(Field::uint),
        );
        m.field("dimms", Field::uint(mc.dimms.len() as u64));
        out.push(m);
        for d in &mc.dimms {
            let mut m = Metric::new("edac_dimm", t);
            m.tag("controller", mc.name.as_str());
            m.tag("dimm", d.name.as_str());
            m.opt("ce_count", d.ce_count.map(Field::uint));
            m.opt("ue_count", d.ue_count.map(Field::uint));
            m.opt("label", d.label.as_deref().map(Field::str));
            m.opt("location", d.location.as_deref().map(Field::str));
            m.opt("size_mb", d.size_mb.map(Field::uint));
            m.opt("mem_type", d.mem_type.as_deref().map(Field::str));
            m.opt("edac_mode", d.edac_mode.as_deref().map(Field::str));
            out.push(m);
        }
    }
    out
}

pub fn event_metric(e: &Event) -> Metric<'_> {
    let mut m = Metric::new("kernel_event", e.time_unix_ns);
    m.tag("category", names::category(e.category));
    if let Some(a) = &e.address {
        m.tag("address", a.as_str());
    }
    m.field("message", Field::str(e.message.as_str()));
    m.field("priority", Field::Int(i64::from(e.level)));
    m.field("seq", Field::uint(e.seq));
    m
}

/// The line that stands for events of one category and device held back by the
/// storm limit (at most `BURST` per `WINDOW` of kernel time), at the kernel time
/// of the last one held back.
pub fn suppressed_metric(s: &Suppressed) -> Metric<'_> {
    use vigil_collector::kmsg::limit::{BURST, WINDOW_US};
    let mut m = Metric::new("kernel_event", s.time_unix_ns);
    m.tag("category", names::category(s.category));
    if let Some(a) = &s.address {
        m.tag("address", a.as_str());
    }
    m.field(
        "message",
        Field::str(format!(
            "{} {} events suppressed (more than {BURST} in {}s)",
            s.count,
            names::category(s.category),
            WINDOW_US / 1_000_000
        )),
    );
    m.field("priority", Field::Int(4));
    m.field("suppressed", Field::uint(s.count));
    m
}

#[cfg(test)]
mod tests {
    use super::{tag_order, Hex4};
    use proptest::prelude::*;

    #[test]
    fn an_inline_id_reads_as_the_formatted_one() {
        for v in [0, 0x0a65, 0x10de, 0x8086, 0xabcd, 0xffff] {
            assert_eq!(Hex4::new(v).as_str(), format!("{v:04x}"));
        }
    }

    /// Points whose builders push their fields in key order, so that each
    /// insert is an append (a shift per field cost about a tenth of a
    /// batch's main-thread time). `pcie_aer` is not: its counter names come
    /// from the kernel.
    const IN_KEY_ORDER: [&str; 6] = [
        "iommu_group",
        "pcie_aer_status",
        "pcie_aspm",
        "pcie_device",
        "pcie_link",
        "vfio_device",
    ];

    #[test]
    fn point_builders_push_fields_in_key_order() {
        use crate::sorted_map::SEARCHED;
        use vigil_collector::{Clock, Root, Selection};
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let sel = Selection::all();
        let mut names = super::Names::new(true);
        let mut seen = std::collections::BTreeSet::new();
        for dir in std::fs::read_dir(&fixtures).expect("fixtures").flatten() {
            let root = dir.path();
            if !root.join("sys").is_dir() {
                continue;
            }
            let snap =
                vigil_collector::collect(&Root::new(&root), &sel, Clock::Fixed { unix_ns: 1 });
            let opts = super::Options::default();
            let mut conv = super::Converter {
                sel: &sel,
                names: &mut names,
                version: "test",
                opts: &opts,
            };
            // A point is built just before it is handed on: the searches
            // since the last one are its own.
            let mut before = SEARCHED.with(std::cell::Cell::get);
            conv.emit(&snap, Vec::new(), &mut |m| {
                let now = SEARCHED.with(std::cell::Cell::get);
                if IN_KEY_ORDER.contains(&m.name) {
                    seen.insert(m.name);
                    assert_eq!(
                        now,
                        before,
                        "{}: {} built out of key order",
                        root.display(),
                        m.name
                    );
                }
                before = now;
            });
        }
        assert_eq!(
            seen.len(),
            IN_KEY_ORDER.len(),
            "fixtures with every point: {seen:?}"
        );
    }

    proptest! {
        /// Streamed groups come out in the order a sort of their points
        /// by the `group` tag's text would give.
        #[test]
        fn group_order_is_the_tag_text_order(a: u32, b: u32) {
            prop_assert_eq!(tag_order(a, b), a.to_string().cmp(&b.to_string()));
        }
    }

    #[test]
    fn group_order_edges() {
        for (a, b) in [
            (0, 0),
            (0, 1),
            (1, 10),
            (9, 10),
            (12, 120),
            (121, 12),
            (u32::MAX, 9),
        ] {
            assert_eq!(
                tag_order(a, b),
                a.to_string().cmp(&b.to_string()),
                "{a} {b}"
            );
        }
    }
}
