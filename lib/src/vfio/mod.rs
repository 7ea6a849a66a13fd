//! VFIO passthrough and IOMMU groups (kernel-abi.md §6): is every
//! passed-through device where it should be, isolated, and who holds it.
//!
//! Reads: `/sys/kernel/iommu_groups/*/{type,devices/}`, `/sys/class/iommu`,
//! `/proc/interrupts` (`IR-` chips), vfio module parameters, `vfio-pci.ids=` on
//! the command line and in modprobe.d, `/dev/vfio`, `/proc/*/fd` (privileged:
//! who holds a group), and Proxmox VM configs under `/etc/pve`.

pub mod holders;
pub mod hostpci;
pub mod modprobe;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::pci::{PciDevice, PciSnapshot};
use crate::platform::cmdline;
use crate::read::{self, DirHandle, ErrorKind};
use crate::root::Root;
use crate::status::{Collector, Tally};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IommuGroup {
    pub id: u32,
    /// `type`: the group's default domain (`DMA`, `DMA-FQ`, `identity`...). It
    /// does not change when a VM takes the device.
    pub group_type: Option<String>,
    /// Member addresses, sorted.
    pub members: Vec<String>,
    pub vfio_devices: u64,
    pub bridges: u64,
    pub other_devices: u64,
    /// Every non-bridge member is on vfio-pci/pci-stub or unbound; `None`
    /// when no member is on a host driver but some member's driver is unknown.
    pub viable: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub name: Option<String>,
    pub vmid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VfioDevice {
    pub address: String,
    pub group: Option<u32>,
    /// On vfio-pci or pci-stub; `None` when the `driver` link could not be
    /// read (unknown is not "no": it would read as a misbinding).
    pub bound: Option<bool>,
    pub intended: bool,
    /// Why it is meant for vfio: `cmdline`, `modprobe`, `driver_override`.
    pub intended_by: BTreeSet<String>,
    pub group_viable: Option<bool>,
    /// `None` when `/proc/*/fd` could not be read (unprivileged).
    pub holder: Option<Option<Holder>>,
    /// Proxmox VMs whose config takes this device (`hostpciN:`), templates excluded.
    pub configured_vmids: BTreeSet<String>,
    pub reset_method: Option<String>,
    /// Other functions of the same slot left on a host driver.
    pub host_companions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VfioSnapshot {
    /// `/sys/class/iommu` has an IOMMU unit.
    pub iommu_enabled: Option<bool>,
    pub groups: BTreeMap<u32, IommuGroup>,
    pub iommu_passthrough: Option<bool>,
    pub interrupt_remapping: Option<bool>,
    pub vfio_unsafe_interrupts: Option<bool>,
    pub acs_override: Option<bool>,
    pub devices: BTreeMap<String, VfioDevice>,
}

pub fn is_vfio_driver(d: &str) -> bool {
    d == "vfio-pci" || d == "pci-stub"
}

fn driver_of(d: &PciDevice) -> Option<&str> {
    d.driver.as_ref().and_then(|x| x.as_deref())
}

pub fn collect(
    root: &Root,
    cmdline_text: Option<&str>,
    pci: Option<&PciSnapshot>,
    tally: &mut Tally,
) -> VfioSnapshot {
    let cg = Collector::IommuGroup;
    let cv = Collector::VfioDevice;
    let mut s = VfioSnapshot::default();
    let params = cmdline_text.map(cmdline::parse).unwrap_or_default();
    let empty = BTreeMap::new();
    let devices = pci.map(|p| &p.devices).unwrap_or(&empty);

    // IOMMU units and groups.
    match read::list_dir(&root.path("/sys/class/iommu")) {
        Ok(units) => s.iommu_enabled = Some(!units.is_empty()),
        Err(e) if e.kind == ErrorKind::Absent => s.iommu_enabled = Some(false),
        Err(e) => tally.read_failed(cg, &e),
    }
    // Group -> member addresses, in one pass (devices are in address order).
    let mut members: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for d in devices.values() {
        if let Some(g) = d.iommu_group {
            members.entry(g).or_default().push(d.address.clone());
        }
    }
    let groups_dir = root.path("/sys/kernel/iommu_groups");
    // One descriptor for the directory: each group's `type` is opened
    // relative to it, not by walking the whole path again.
    match DirHandle::open(&groups_dir).and_then(|mut h| h.list().map(|n| (h, n))) {
        Ok((groups, names)) => {
            for n in names {
                let Ok(id) = n.parse::<u32>() else { continue };
                let mut g = IommuGroup {
                    id,
                    ..IommuGroup::default()
                };
                let type_file = format!("{n}/type");
                match groups.with_attr(&type_file, |t| t.trim().to_string()) {
                    Ok(t) if !t.is_empty() => g.group_type = Some(t),
                    Ok(_) => {
                        tally.error(cg, format!("{}/{type_file}: empty", groups_dir.display()))
                    }
                    Err(e) => tally.read_failed(cg, &e),
                }
                // Members are PCI addresses: every PCI function names its group
                // in its own `iommu_group` link, already read, so the group's
                // `devices/` directory is not listed again.
                g.members = members.remove(&id).unwrap_or_default();
                let (mut host_driver, mut unknown) = (false, false);
                for m in &g.members {
                    let dev = devices.get(m);
                    let bridge = dev.is_some_and(PciDevice::is_bridge);
                    let drv = dev.and_then(driver_of);
                    if bridge {
                        g.bridges += 1;
                    } else if drv.is_some_and(is_vfio_driver) {
                        g.vfio_devices += 1;
                    } else {
                        g.other_devices += 1;
                        // Unbound is safe, a host driver is not; a driver that
                        // could not be read leaves the verdict open.
                        match dev.map(|d| &d.driver) {
                            Some(Some(None)) => {}
                            Some(Some(Some(_))) => host_driver = true,
                            _ => unknown = true,
                        }
                    }
                }
                g.viable = if host_driver {
                    Some(false)
                } else {
                    (!unknown).then_some(true)
                };
                s.groups.insert(id, g);
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => {
            tally.unavailable(cg, "absent");
        }
        Err(e) => tally.read_failed(cg, &e),
    }

    // Platform: passthrough, remapping, unsafe interrupts, ACS override.
    if cmdline_text.is_some() {
        let pt_cmdline = cmdline::last_value(&params, "iommu") == Some("pt")
            || cmdline::last_value(&params, "iommu.passthrough") == Some("1");
        let all_identity = !s.groups.is_empty()
            && s.groups
                .values()
                .all(|g| g.group_type.as_deref() == Some("identity"));
        s.iommu_passthrough = Some(pt_cmdline || all_identity);
        s.acs_override = Some(cmdline::has_key(&params, "pcie_acs_override"));
    }
    match read::read_text(&root.path("/proc/interrupts")) {
        Ok(t) => s.interrupt_remapping = interrupt_remapping(&t),
        Err(e) => tally.read_failed(Collector::PciePlatform, &e),
    }
    for p in [
        "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
        "/sys/module/iommufd/parameters/allow_unsafe_interrupts",
    ] {
        match read::read_attr(&root.path(p)) {
            Ok(v) => match v.trim() {
                "Y" | "1" => s.vfio_unsafe_interrupts = Some(true),
                "N" | "0" => {
                    s.vfio_unsafe_interrupts.get_or_insert(false);
                }
                other => tally.error(
                    Collector::PciePlatform,
                    format!("{p}: {other:?} is not Y/N"),
                ),
            },
            Err(e) => tally.read_failed(Collector::PciePlatform, &e),
        }
    }

    // What is meant for vfio.
    let mut ids: Vec<(modprobe::IdMatch, &'static str)> = Vec::new();
    for v in modprobe::vfio_ids_in_cmdline(&params) {
        let (ok, bad) = modprobe::parse_ids(&v);
        for b in bad {
            tally.error(
                cv,
                format!("/proc/cmdline: vfio-pci.ids entry {b:?} is malformed"),
            );
        }
        ids.extend(ok.into_iter().map(|m| (m, "cmdline")));
    }
    for (path, text) in modprobe_files(root, tally) {
        for v in modprobe::vfio_ids_in_conf(&text) {
            let (ok, bad) = modprobe::parse_ids(&v);
            for b in bad {
                tally.error(cv, format!("{path}: vfio-pci ids entry {b:?} is malformed"));
            }
            ids.extend(ok.into_iter().map(|m| (m, "modprobe")));
        }
    }
    let configured = proxmox_configured(root, devices, tally);

    // The bus directory, opened at the first device that needs a file of its
    // own: `<address>/reset_method` relative to it, not the whole path.
    let mut bus: Option<read::Result<DirHandle>> = None;
    // Devices bound to, meant for, or configured for vfio.
    for d in devices.values() {
        let bound = d
            .driver
            .as_ref()
            .map(|drv| drv.as_deref().is_some_and(is_vfio_driver));
        let mut by = BTreeSet::new();
        if d.driver_override.as_deref().is_some_and(is_vfio_driver) {
            by.insert("driver_override".to_string());
        }
        if let (Some(v), Some(dv)) = (d.vendor_id, d.device_id) {
            let needs_sub = ids
                .iter()
                .any(|(m, _)| m.subvendor != modprobe::ANY || m.subdevice != modprobe::ANY);
            let sub = if needs_sub {
                subsystem(root, &d.address)
            } else {
                None
            };
            for (m, src) in &ids {
                if m.matches(v, dv, sub, d.class.unwrap_or(0)) {
                    by.insert((*src).to_string());
                }
            }
        }
        let vmids = configured.get(&d.address).cloned().unwrap_or_default();
        if bound != Some(true) && by.is_empty() && vmids.is_empty() {
            continue;
        }
        // The other functions of the slot: adjacent keys of the address-ordered map.
        let slot = crate::pci::parse::slot_of(&d.address);
        let host_companions = devices
            .range::<str, _>((std::ops::Bound::Included(slot), std::ops::Bound::Unbounded))
            .map(|(_, o)| o)
            .take_while(|o| crate::pci::parse::slot_of(&o.address) == slot)
            .filter(|o| o.address != d.address)
            .filter(|o| driver_of(o).is_some_and(|x| !is_vfio_driver(x)))
            .map(|o| o.address.clone())
            .collect();
        let bus = bus.get_or_insert_with(|| DirHandle::open(&root.path(crate::pci::DEVICES_DIR)));
        let reset_method = match bus
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| b.with_attr(&format!("{}/reset_method", d.address), str::to_string))
        {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            Ok(_) => None,
            Err(e) => {
                tally.read_failed(cv, &e);
                None
            }
        };
        s.devices.insert(
            d.address.clone(),
            VfioDevice {
                address: d.address.clone(),
                group: d.iommu_group,
                bound,
                intended: !by.is_empty(),
                intended_by: by,
                group_viable: d
                    .iommu_group
                    .and_then(|g| s.groups.get(&g))
                    .and_then(|g| g.viable),
                holder: None,
                configured_vmids: vmids,
                reset_method,
                host_companions,
            },
        );
    }

    // Who holds the groups open (only worth a /proc walk when a group node exists).
    if !s.devices.is_empty() {
        let nodes: BTreeSet<u32> = read::list_dir(&root.path("/dev/vfio"))
            .unwrap_or_default()
            .iter()
            .filter_map(|n| holders::vfio_group_of_link(&format!("/dev/vfio/{n}")))
            .collect();
        let (found, complete) = if nodes.is_empty() {
            (BTreeMap::new(), true)
        } else {
            scan_holders(root, &nodes, tally)
        };
        for dev in s.devices.values_mut() {
            let Some(g) = dev.group else { continue };
            dev.holder = match found.get(&g) {
                Some(h) => Some(Some(h.clone())),
                None if complete => Some(None),
                None => None,
            };
        }
    }
    s
}

/// `Some(true)` when any interrupt chip is remapped (`IR-` prefix), `Some(false)`
/// when MSI/IO-APIC chips exist and none is, `None` when the file says neither.
pub fn interrupt_remapping(text: &str) -> Option<bool> {
    let mut seen_chip = false;
    for line in text.lines().skip(1) {
        for tok in line.split_whitespace() {
            if tok.starts_with("IR-") {
                return Some(true);
            }
            if tok.contains("MSI") || tok.contains("IO-APIC") {
                seen_chip = true;
            }
        }
    }
    seen_chip.then_some(false)
}

fn subsystem(root: &Root, addr: &str) -> Option<(u16, u16)> {
    let dir = root.path(crate::pci::DEVICES_DIR).join(addr);
    let v = read::read_attr(&dir.join("subsystem_vendor")).ok()?;
    let d = read::read_attr(&dir.join("subsystem_device")).ok()?;
    Some((
        crate::pci::parse::hex_u16(&v).ok()?,
        crate::pci::parse::hex_u16(&d).ok()?,
    ))
}

/// modprobe.d files in kmod's order: by file name, the first directory holding a name wins.
fn modprobe_files(root: &Root, tally: &mut Tally) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, String> = BTreeMap::new();
    for dir in modprobe::DIRS {
        let Ok(names) = read::list_dir(&root.path(dir)) else {
            continue;
        };
        for n in names.into_iter().filter(|n| n.ends_with(".conf")) {
            chosen
                .entry(n.clone())
                .or_insert_with(|| format!("{dir}/{n}"));
        }
    }
    let mut out = Vec::new();
    for path in chosen.into_values() {
        match read::read_text(&root.path(&path)) {
            Ok(t) => out.push((path, t)),
            Err(e) => tally.read_failed(Collector::VfioDevice, &e),
        }
    }
    out
}

/// address -> VM ids whose config takes it.
fn proxmox_configured(
    root: &Root,
    devices: &BTreeMap<String, PciDevice>,
    tally: &mut Tally,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let dir = root.path("/etc/pve/qemu-server");
    let Ok(names) = read::list_dir(&dir) else {
        return out;
    };
    let present: BTreeSet<String> = devices.keys().cloned().collect();
    let node = read::read_attr(&root.path("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string());
    let mapping = read::read_text(&root.path("/etc/pve/mapping/pci.cfg")).ok();
    for n in names {
        let Some(vmid) = n
            .strip_suffix(".conf")
            .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let text = match read::read_text(&dir.join(&n)) {
            Ok(t) => t,
            Err(e) => {
                tally.read_failed(Collector::VfioDevice, &e);
                continue;
            }
        };
        let vm = hostpci::parse_vm_config(&text);
        if vm.template {
            continue;
        }
        for (_, entry) in vm.entries {
            let addrs = match entry {
                hostpci::HostPci::Ids(ids) => hostpci::resolve(&ids, &present),
                hostpci::HostPci::Mapping(name) => match (&mapping, &node) {
                    (Some(m), Some(node)) => {
                        hostpci::resolve(&hostpci::mapping_paths(m, &name, node), &present)
                    }
                    _ => Vec::new(),
                },
            };
            for a in addrs {
                out.entry(a).or_default().insert(vmid.to_string());
            }
        }
    }
    out
}

/// Group -> holder, and whether every process could be inspected.
fn scan_holders(
    root: &Root,
    groups: &BTreeSet<u32>,
    tally: &mut Tally,
) -> (BTreeMap<u32, Holder>, bool) {
    let mut found = BTreeMap::new();
    let mut complete = true;
    let proc_dir = root.path("/proc");
    let Ok(pids) = read::list_dir(&proc_dir) else {
        tally.unavailable(Collector::VfioDevice, "absent");
        return (found, false);
    };
    for pid in pids
        .iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        let fd_dir = proc_dir.join(pid).join("fd");
        let fds = match read::list_dir(&fd_dir) {
            Ok(f) => f,
            Err(e) if e.kind == ErrorKind::Permission => {
                complete = false;
                continue;
            }
            Err(_) => continue, // exited meanwhile, or a kernel thread
        };
        for fd in fds {
            let Ok(target) = read::read_link(&fd_dir.join(&fd)) else {
                continue;
            };
            let Some(g) = target.to_str().and_then(holders::vfio_group_of_link) else {
                continue;
            };
            if !groups.contains(&g) || found.contains_key(&g) {
                continue;
            }
            let name = read::read_attr(&proc_dir.join(pid).join("comm"))
                .ok()
                .map(|c| c.trim().to_string());
            let vmid = read::read_bytes(&proc_dir.join(pid).join("cmdline"), 1 << 16)
                .ok()
                .and_then(|b| holders::vmid_from_cmdline(&b));
            found.insert(
                g,
                Holder {
                    pid: pid.parse().unwrap_or(0),
                    name,
                    vmid,
                },
            );
        }
    }
    if !complete {
        tally.unavailable(Collector::VfioDevice, "permission");
    }
    (found, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_remapping_from_chip_names() {
        let ir = "           CPU0       CPU1\n  0:         36          0  IR-IO-APIC    2-edge      timer\n 24:          0          0  IR-PCI-MSIX-0000:01:00.0    0-edge      nvme0q0\n";
        assert_eq!(interrupt_remapping(ir), Some(true));
        let no = "           CPU0\n  0:         36  IO-APIC    2-edge      timer\n 25:  0  PCI-MSI 512000-edge  ahci\n";
        assert_eq!(interrupt_remapping(no), Some(false));
        assert_eq!(
            interrupt_remapping("           CPU0\nNMI:  0  Non-maskable interrupts\n"),
            None
        );
    }
}
