//! VFIO passthrough and IOMMU groups (kernel-abi.md §6): is every
//! passed-through device where it should be, isolated, and who holds it.
//!
//! Reads: `/sys/kernel/iommu_groups/*/{type,devices/}`, `/sys/class/iommu`,
//! `/proc/interrupts` (`IR-` chips), vfio module parameters, `vfio-pci.ids=` on
//! the command line and in modprobe.d, `/dev/vfio`, `/proc/*/fd` (privileged:
//! who holds a group), and Proxmox VM configs under `/etc/pve`.

pub mod groups;
pub mod holders;
pub mod hostpci;
pub mod intent;
pub mod iommu;
pub mod modprobe;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::clock::Clock;
use crate::collector::Collector;
use crate::pci::{PciDevice, PciSnapshot};
use crate::platform::cmdline;
use crate::read::{self, DirHandle};
use crate::root::Root;
use crate::status::Tally;

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
    pub intended_by: BTreeSet<&'static str>,
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

/// One file per signal: `groups` (IOMMU groups), `iommu` (passthrough and
/// interrupt isolation), `intent` (what is meant for vfio), `hostpci` (Proxmox
/// VM configs), `holders` (who holds a group open); this function joins them.
/// The vfio walk. It serves three collectors; each part's time is counted
/// once, for the collector whose measurement it fills.
pub fn collect(
    root: &Root,
    cmdline_text: Option<&str>,
    pci: Option<&PciSnapshot>,
    clock: Clock,
    tally: &mut Tally,
) -> VfioSnapshot {
    let params = cmdline_text.map(cmdline::parse).unwrap_or_default();
    let empty = BTreeMap::new();
    let devices = pci.map(|p| &p.devices).unwrap_or(&empty);
    let mut s = VfioSnapshot::default();
    let sw = clock.start();
    s.iommu_enabled = groups::iommu_enabled(root, tally);
    let mut platform_us = sw.elapsed_us();
    let sw = clock.start();
    s.groups = groups::collect(root, devices, tally);
    tally.add_time(Collector::IommuGroup, sw.elapsed_us());
    let sw = clock.start();
    iommu::collect(root, cmdline_text.map(|_| params.as_slice()), &mut s, tally);
    platform_us += sw.elapsed_us();
    tally.add_time(Collector::PciePlatform, platform_us);
    let sw = clock.start();
    let intent = intent::collect(root, &params, tally);
    let configured = hostpci::configured(root, devices, tally);
    s.devices = vfio_devices(root, pci, &intent, &configured, &s.groups, tally);
    holders::collect(root, &mut s.devices, tally);
    tally.add_time(Collector::VfioDevice, sw.elapsed_us());
    s
}

/// Devices bound to, meant for, or configured for vfio.
fn vfio_devices(
    root: &Root,
    pci: Option<&PciSnapshot>,
    intent: &intent::Intent,
    configured: &BTreeMap<String, BTreeSet<String>>,
    groups: &BTreeMap<u32, IommuGroup>,
    tally: &mut Tally,
) -> BTreeMap<String, VfioDevice> {
    let mut out = BTreeMap::new();
    let Some(pci) = pci else {
        return out;
    };
    let devices = &pci.devices;
    // The bus directory, opened at the first device that needs a file of its
    // own and whose directory is not kept open: `<address>/reset_method`
    // relative to it, not the whole path.
    let mut bus: Option<read::Result<DirHandle>> = None;
    for d in devices.values() {
        let bound = d
            .driver
            .as_ref()
            .map(|drv| drv.as_deref().is_some_and(is_vfio_driver));
        let by = intent.reasons(root, d);
        let vmids = configured.get(&d.address).cloned().unwrap_or_default();
        if bound != Some(true) && by.is_empty() && vmids.is_empty() {
            continue;
        }
        let host_companions = host_companions(devices, d);
        let reset_method = match d.kept_dir.0.as_deref() {
            Some(dir) => reset_method(dir.with_attr("reset_method", trimmed), tally),
            None => {
                let bus =
                    bus.get_or_insert_with(|| DirHandle::open(&root.path(crate::pci::DEVICES_DIR)));
                let read = bus
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|b| b.with_attr(&format!("{}/reset_method", d.address), trimmed));
                reset_method(read, tally)
            }
        };
        out.insert(
            d.address.clone(),
            VfioDevice {
                address: d.address.clone(),
                group: d.iommu_group,
                bound,
                intended: !by.is_empty(),
                intended_by: by,
                group_viable: d
                    .iommu_group
                    .and_then(|g| groups.get(&g))
                    .and_then(|g| g.viable),
                holder: None,
                configured_vmids: vmids,
                reset_method,
                host_companions,
            },
        );
    }
    out
}

/// The other functions of the slot left on a host driver: adjacent keys of
/// the address-ordered map.
fn host_companions(devices: &BTreeMap<String, PciDevice>, d: &PciDevice) -> Vec<String> {
    let slot = crate::pci::parse::slot_of(&d.address);
    devices
        .range::<str, _>((std::ops::Bound::Included(slot), std::ops::Bound::Unbounded))
        .map(|(_, o)| o)
        .take_while(|o| crate::pci::parse::slot_of(&o.address) == slot)
        .filter(|o| o.address != d.address)
        .filter(|o| driver_of(o).is_some_and(|x| !is_vfio_driver(x)))
        .map(|o| o.address.clone())
        .collect()
}

/// The text without surrounding blanks, copied once.
fn trimmed(t: &str) -> String {
    t.trim().to_string()
}

fn reset_method(read: read::Result<String>, tally: &mut Tally) -> Option<String> {
    match read {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => None,
        Err(e) => {
            tally.read_failed(Collector::VfioDevice, &e);
            None
        }
    }
}
