//! IOMMU units and groups (`/sys/class/iommu`, `/sys/kernel/iommu_groups/*/type`):
//! which functions share a group, and whether the group is fit to pass through.

use std::collections::BTreeMap;

use super::{driver_of, is_vfio_driver, IommuGroup};
use crate::collector::Collector;
use crate::pci::PciDevice;
use crate::read::{self, DirHandle, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

const C: Collector = Collector::IommuGroup;

/// `/sys/class/iommu` has a unit; `None` when it could not be read.
pub fn iommu_enabled(root: &Root, tally: &mut Tally) -> Option<bool> {
    match read::list_dir(&root.path("/sys/class/iommu")) {
        Ok(units) => Some(!units.is_empty()),
        Err(e) if e.kind == ErrorKind::Absent => Some(false),
        Err(e) => {
            tally.read_failed(C, &e);
            None
        }
    }
}

pub fn collect(
    root: &Root,
    devices: &BTreeMap<String, PciDevice>,
    tally: &mut Tally,
) -> BTreeMap<u32, IommuGroup> {
    let mut out = BTreeMap::new();
    let mut members = members_by_group(devices);
    let groups_dir = root.path("/sys/kernel/iommu_groups");
    // One descriptor for the directory: each group's `type` is opened
    // relative to it, not by walking the whole path again.
    match DirHandle::open(&groups_dir).and_then(|mut h| h.list().map(|n| (h, n))) {
        Ok((groups, names)) => {
            // One buffer for every group's `N/type` name.
            let mut type_file = String::new();
            for n in names {
                let Ok(id) = n.parse::<u32>() else { continue };
                type_file.clear();
                type_file.push_str(&n);
                type_file.push_str("/type");
                let group_type = match groups.with_attr(&type_file, |t| t.trim().to_string()) {
                    Ok(t) if !t.is_empty() => Some(t),
                    Ok(_) => {
                        tally.error(C, format!("{}/{type_file}: empty", groups_dir.display()));
                        None
                    }
                    Err(e) => {
                        tally.read_failed(C, &e);
                        None
                    }
                };
                // Members are PCI addresses: every PCI function names its group
                // in its own `iommu_group` link, already read, so the group's
                // `devices/` directory is not listed again.
                let members = members.remove(&id).unwrap_or_default();
                out.insert(id, judge(id, group_type, members, devices));
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => tally.unavailable(C, "absent"),
        Err(e) => tally.read_failed(C, &e),
    }
    out
}

/// Group -> member addresses, in one pass (devices are in address order).
fn members_by_group(devices: &BTreeMap<String, PciDevice>) -> BTreeMap<u32, Vec<String>> {
    let mut members: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for d in devices.values() {
        if let Some(g) = d.iommu_group {
            members.entry(g).or_default().push(d.address.clone());
        }
    }
    members
}

/// Members counted by kind, and whether the group is viable for passthrough.
pub fn judge(
    id: u32,
    group_type: Option<String>,
    members: Vec<String>,
    devices: &BTreeMap<String, PciDevice>,
) -> IommuGroup {
    let mut g = IommuGroup {
        id,
        group_type,
        ..IommuGroup::default()
    };
    let (mut host_driver, mut unknown) = (false, false);
    for m in &members {
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
    g.members = members;
    g.viable = if host_driver {
        Some(false)
    } else {
        (!unknown).then_some(true)
    };
    g
}
