//! Memory errors from EDAC (`/sys/devices/system/edac/mc`): corrected and
//! uncorrected counts per memory controller and per DIMM (or rank), as the
//! kernel's EDAC driver counts them (drivers/edac/edac_mc_sysfs.c). A
//! corrected-error rate that climbs, or any uncorrected error, is a prime
//! suspect for a hard lockup. Every file is world-readable and served from
//! memory: nothing here needs privilege or touches hardware.
//!
//! Layout, per controller `mcN`: `ce_count`, `ue_count`, `ce_noinfo_count`,
//! `ue_noinfo_count` (errors the driver could not place on a DIMM), `mc_name`,
//! `size_mb`, `seconds_since_reset`; per DIMM `dimmM` (or `rankM` where the
//! driver counts ranks): `dimm_ce_count`, `dimm_ue_count`, `dimm_label`,
//! `dimm_location` (`csrow 3 channel 1 `), `size` (MiB), `dimm_mem_type`,
//! `dimm_edac_mode`. The legacy `csrowN` directories repeat the same counts
//! in the older layout and are not read.

use serde::Serialize;

use crate::collector::Collector;
use crate::read::{DirHandle, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

pub const MC_DIR: &str = "/sys/devices/system/edac/mc";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Edac {
    pub controllers: Vec<MemoryController>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryController {
    /// Directory name: `mc0`.
    pub name: String,
    /// `mc_name`: the driver's name for it (`Skylake Socket#0 IMC#0`, `F17h`, `ghes_edac`).
    pub mc_name: Option<String>,
    pub size_mb: Option<u64>,
    pub seconds_since_reset: Option<u64>,
    pub ce_count: Option<u64>,
    pub ue_count: Option<u64>,
    pub ce_noinfo_count: Option<u64>,
    pub ue_noinfo_count: Option<u64>,
    /// DIMMs or ranks, in directory-number order.
    pub dimms: Vec<Dimm>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dimm {
    /// Directory name: `dimm0` or `rank7`.
    pub name: String,
    pub ce_count: Option<u64>,
    pub ue_count: Option<u64>,
    pub label: Option<String>,
    pub location: Option<String>,
    pub size_mb: Option<u64>,
    pub mem_type: Option<String>,
    pub edac_mode: Option<String>,
}

/// A counter or size: one unsigned decimal.
pub fn count(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("expected an unsigned count, found {:?}", short(s)))
}

/// A text attribute: trimmed, inner runs of white space made one space
/// (`dimm_location` ends in a space); empty is absent.
pub fn one_spaced(s: &str) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then_some(t)
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `mc3` -> 3; `dimm12` -> ("dimm", 12); anything else is not ours.
fn numbered<'a>(name: &'a str, prefixes: &[&'a str]) -> Option<(&'a str, u32)> {
    prefixes.iter().find_map(|p| {
        let n = name.strip_prefix(p)?;
        (!n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
            .then(|| n.parse().ok().map(|n| (*p, n)))
            .flatten()
    })
}

pub fn collect(root: &Root, tally: &mut Tally) -> Edac {
    let c = Collector::Edac;
    let mut out = Edac::default();
    let dir = root.path(MC_DIR);
    let listed = DirHandle::open(&dir).and_then(|mut h| h.list().map(|n| (h, n)));
    let (mc_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            // No EDAC core: nothing on this node counts memory errors.
            if e.kind == ErrorKind::Absent {
                tally.unavailable(c, "absent");
            }
            tally.read_failed(c, &e);
            return out;
        }
    };
    let mut mcs: Vec<(u32, String)> = names
        .into_iter()
        .filter_map(|n| numbered(&n, &["mc"]).map(|(_, i)| (i, n.clone())))
        .collect();
    mcs.sort();
    if mcs.is_empty() {
        // The core is loaded but no driver registered a controller.
        tally.unavailable(c, "no_controller");
    }
    for (_, name) in mcs {
        match mc_dir.open_dir(&name) {
            Ok(h) => out.controllers.push(read_controller(name, h, tally)),
            Err(e) => tally.read_failed(c, &e),
        }
    }
    out
}

fn read_controller(name: String, mut h: DirHandle, tally: &mut Tally) -> MemoryController {
    let mut mc = MemoryController {
        name,
        mc_name: get_text(&h, "mc_name", tally),
        size_mb: get_count(&h, "size_mb", tally),
        seconds_since_reset: get_count(&h, "seconds_since_reset", tally),
        ce_count: get_count(&h, "ce_count", tally),
        ue_count: get_count(&h, "ue_count", tally),
        ce_noinfo_count: get_count(&h, "ce_noinfo_count", tally),
        ue_noinfo_count: get_count(&h, "ue_noinfo_count", tally),
        dimms: Vec::new(),
    };
    let entries = match h.list() {
        Ok(n) => n,
        Err(e) => {
            tally.read_failed(Collector::Edac, &e);
            return mc;
        }
    };
    let mut dimms: Vec<((&str, u32), &String)> = entries
        .iter()
        .filter_map(|n| numbered(n, &["dimm", "rank"]).map(|k| (k, n)))
        .collect();
    dimms.sort();
    for (_, n) in dimms {
        match h.open_dir(n) {
            Ok(d) => mc.dimms.push(read_dimm(n.clone(), &d, tally)),
            Err(e) => tally.read_failed(Collector::Edac, &e),
        }
    }
    mc
}

fn read_dimm(name: String, d: &DirHandle, tally: &mut Tally) -> Dimm {
    Dimm {
        name,
        ce_count: get_count(d, "dimm_ce_count", tally),
        ue_count: get_count(d, "dimm_ue_count", tally),
        label: get_text(d, "dimm_label", tally),
        location: get_text(d, "dimm_location", tally),
        size_mb: get_count(d, "size", tally),
        mem_type: get_text(d, "dimm_mem_type", tally),
        edac_mode: get_text(d, "dimm_edac_mode", tally),
    }
}

fn get_count(h: &DirHandle, file: &str, tally: &mut Tally) -> Option<u64> {
    match h.with_attr(file, count) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(why)) => {
            tally.error(
                Collector::Edac,
                format!("{}: {why}", h.path().join(file).display()),
            );
            None
        }
        Err(e) => {
            tally.read_failed(Collector::Edac, &e);
            None
        }
    }
}

fn get_text(h: &DirHandle, file: &str, tally: &mut Tally) -> Option<String> {
    match h.with_attr(file, one_spaced) {
        Ok(v) => v,
        Err(e) => {
            tally.read_failed(Collector::Edac, &e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_text_as_the_kernel_prints_them() {
        assert_eq!(count("7836\n"), Ok(7836));
        assert_eq!(count("0"), Ok(0));
        assert!(count("-1").is_err());
        assert!(count("").is_err());
        assert!(count("many").is_err());
        // dimm_location ends in a space (edac_mc_sysfs.c prints "%s %d ").
        assert_eq!(
            one_spaced("csrow 3 channel 1 \n").as_deref(),
            Some("csrow 3 channel 1")
        );
        assert_eq!(
            one_spaced("mc#0csrow#3channel#1").as_deref(),
            Some("mc#0csrow#3channel#1")
        );
        assert_eq!(one_spaced("  \n"), None);
    }

    #[test]
    fn controller_and_dimm_names() {
        assert_eq!(numbered("mc0", &["mc"]), Some(("mc", 0)));
        assert_eq!(numbered("mc12", &["mc"]), Some(("mc", 12)));
        assert_eq!(numbered("power", &["mc"]), None);
        assert_eq!(numbered("mc", &["mc"]), None);
        assert_eq!(numbered("rank7", &["dimm", "rank"]), Some(("rank", 7)));
        assert_eq!(numbered("dimm10", &["dimm", "rank"]), Some(("dimm", 10)));
        assert_eq!(numbered("csrow0", &["dimm", "rank"]), None);
        assert_eq!(numbered("dimm_x", &["dimm", "rank"]), None);
    }
}
