//! What is meant for vfio: `vfio-pci.ids=` on the command line, `options
//! vfio-pci ids=` in modprobe.d (parsed in [`super::modprobe`]), and a
//! device's own `driver_override`.

use std::collections::{BTreeMap, BTreeSet};

use super::{is_vfio_driver, modprobe};
use crate::collector::Collector;
use crate::pci::PciDevice;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

const C: Collector = Collector::VfioDevice;

/// The ID matches that claim devices for vfio, each with where it was written.
#[derive(Debug, Default)]
pub struct Intent {
    ids: Vec<(modprobe::IdMatch, &'static str)>,
}

pub fn collect(root: &Root, params: &[(String, Option<String>)], tally: &mut Tally) -> Intent {
    let mut ids: Vec<(modprobe::IdMatch, &'static str)> = Vec::new();
    for v in modprobe::vfio_ids_in_cmdline(params) {
        let (ok, bad) = modprobe::parse_ids(&v);
        for b in bad {
            tally.error(
                C,
                format!("/proc/cmdline: vfio-pci.ids entry {b:?} is malformed"),
            );
        }
        ids.extend(ok.into_iter().map(|m| (m, "cmdline")));
    }
    for (path, text) in modprobe_files(root, tally) {
        for v in modprobe::vfio_ids_in_conf(&text) {
            let (ok, bad) = modprobe::parse_ids(&v);
            for b in bad {
                tally.error(C, format!("{path}: vfio-pci ids entry {b:?} is malformed"));
            }
            ids.extend(ok.into_iter().map(|m| (m, "modprobe")));
        }
    }
    Intent { ids }
}

impl Intent {
    /// Why `d` is meant for vfio (`cmdline`, `modprobe`, `driver_override`);
    /// empty when it is not. The subsystem IDs are read only when a match needs them.
    /// The reasons are fixed words: nothing is copied per device.
    pub fn reasons(&self, root: &Root, d: &PciDevice) -> BTreeSet<&'static str> {
        let mut by = BTreeSet::new();
        if d.driver_override.as_deref().is_some_and(is_vfio_driver) {
            by.insert("driver_override");
        }
        if let (Some(v), Some(dv)) = (d.vendor_id, d.device_id) {
            let needs_sub = self
                .ids
                .iter()
                .any(|(m, _)| m.subvendor != modprobe::ANY || m.subdevice != modprobe::ANY);
            let sub = if needs_sub {
                subsystem(root, &d.address)
            } else {
                None
            };
            for (m, src) in &self.ids {
                if m.matches(v, dv, sub, d.class.unwrap_or(0)) {
                    by.insert(*src);
                }
            }
        }
        by
    }
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
            Err(e) => tally.read_failed(C, &e),
        }
    }
    out
}
