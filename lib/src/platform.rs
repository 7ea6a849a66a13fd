//! Boot parameters and platform-wide PCIe state: `/proc/cmdline`, the ASPM
//! policy, and whether OS-native AER runs (kernel-abi.md §2.4, §3).

pub mod cmdline;

use serde::Serialize;

use crate::pci::PciSnapshot;
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::{Collector, Tally};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `/proc/cmdline`, as read (trailing newline removed).
    pub cmdline: Option<String>,
    /// Bracketed entry of `/sys/module/pcie_aspm/parameters/policy`.
    pub aspm_policy: Option<String>,
    /// Value of the last `pcie_aspm=` (`off`, `force`); `None` when not given.
    pub aspm_cmdline: Option<String>,
    /// `pci=noaer` is in effect.
    pub aer_cmdline_disabled: Option<bool>,
    /// An AER port service (`*:pcie002`) is bound to the `aer` driver.
    pub aer_native: Option<bool>,
    pub aer_devices: u64,
    pub devices: u64,
    pub pcie_devices: u64,
    pub suspended_devices: u64,
}

const PCI_EXPRESS_DEVICES: &str = "/sys/bus/pci_express/devices";

/// `/proc/cmdline`, read once per collection and shared by the collectors that need it.
pub fn read_cmdline(root: &Root, tally: &mut Tally) -> Option<String> {
    match read::read_text(&root.path("/proc/cmdline")) {
        Ok(s) => Some(s.trim_end_matches('\n').to_string()),
        Err(e) => {
            tally.read_failed(Collector::PciePlatform, &e);
            None
        }
    }
}

pub fn collect(
    root: &Root,
    cmdline_text: Option<&str>,
    pci: Option<&PciSnapshot>,
    tally: &mut Tally,
) -> Platform {
    let c = Collector::PciePlatform;
    let mut p = Platform::default();
    if let Some(s) = cmdline_text {
        let params = cmdline::parse(s);
        p.aspm_cmdline = cmdline::last_value(&params, "pcie_aspm").map(str::to_string);
        p.aer_cmdline_disabled = Some(cmdline::pci_option(&params, "noaer"));
        p.cmdline = Some(s.to_string());
    }
    match read::read_attr(&root.path("/sys/module/pcie_aspm/parameters/policy")) {
        Ok(s) => match crate::pci::parse::aspm_policy(&s) {
            Ok(v) => p.aspm_policy = Some(v),
            Err(e) => tally.error(c, format!("pcie_aspm policy: {}", e.0)),
        },
        Err(e) => tally.read_failed(c, &e),
    }
    p.aer_native = aer_native(root, tally);
    if let Some(pci) = pci {
        for d in pci.devices.values() {
            p.devices += 1;
            p.pcie_devices += u64::from(d.pcie);
            p.suspended_devices += u64::from(d.suspended());
            p.aer_devices += u64::from(!d.aer.is_empty());
        }
    }
    p
}

/// OS-native AER is active when some port's `pcie002` service has the `aer`
/// driver bound. No `pci_express` bus at all means no port services: not native.
fn aer_native(root: &Root, tally: &mut Tally) -> Option<bool> {
    let dir = root.path(PCI_EXPRESS_DEVICES);
    let names = match read::list_dir(&dir) {
        Ok(n) => n,
        Err(e) if e.kind == ErrorKind::Absent => return Some(false),
        Err(e) => {
            tally.read_failed(Collector::PciePlatform, &e);
            return None;
        }
    };
    for n in names.iter().filter(|n| n.ends_with(":pcie002")) {
        if let Ok(drv) = read::read_link_name(&dir.join(n).join("driver")) {
            if drv == "aer" {
                return Some(true);
            }
        }
    }
    Some(false)
}
