//! Boot parameters and platform-wide PCIe state: `/proc/cmdline`, the ASPM
//! policy, and whether OS-native AER runs (kernel-abi.md §2.4, §3).

pub mod cmdline;

use serde::Serialize;

use crate::collector::Collector;
use crate::pci::PciSnapshot;
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

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
    /// Devices with AER counter files; `None` when the files were not read
    /// (the `pcie_aer` collector was not selected).
    pub aer_devices: Option<u64>,
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
    aer: Option<AerService>,
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
    p.aer_native = aer.map(|a| a == AerService::Bound);
    if let Some(pci) = pci {
        for d in pci.devices.values() {
            p.devices += 1;
            p.pcie_devices += u64::from(d.pcie);
            p.suspended_devices += u64::from(d.suspended());
        }
        if pci.aer_read {
            p.aer_devices = Some(pci.devices.values().filter(|d| d.aer_files).count() as u64);
        }
    }
    p
}

/// The kernel's AER port service (kernel-abi.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AerService {
    /// Some port's `pcie002` service has the `aer` driver: OS-native AER.
    Bound,
    /// The port bus exists, no `aer` service is bound (`pci=noaer`, no MSI,
    /// firmware kept AER through `_OSC`).
    Unbound,
    /// No `pci_express` bus at all: no port services. A kernel with AER
    /// counter files always has one, so this is an incomplete capture.
    NoPortBus,
}

pub fn aer_service(root: &Root, tally: &mut Tally) -> Option<AerService> {
    let dir = root.path(PCI_EXPRESS_DEVICES);
    let names = match read::list_dir(&dir) {
        Ok(n) => n,
        Err(e) if e.kind == ErrorKind::Absent => return Some(AerService::NoPortBus),
        Err(e) => {
            tally.read_failed(Collector::PciePlatform, &e);
            return None;
        }
    };
    for n in names.iter().filter(|n| n.ends_with(":pcie002")) {
        if let Ok(drv) = read::read_link_name(&dir.join(n).join("driver")) {
            if drv == "aer" {
                return Some(AerService::Bound);
            }
        }
    }
    Some(AerService::Unbound)
}

/// Why the `aer_dev_*` and `aer_rootport_total_*` counters are not counting,
/// if they are not: under `pci=noaer` or without an OS-native AER service
/// the kernel still creates the files but its native path never increments
/// them (kernel-abi.md §2.3; firmware-first GHES records may bump device
/// counters, never the root-port totals), so their zeros are no measurement.
pub fn aer_not_counted(noaer: Option<bool>, service: Option<AerService>) -> Option<&'static str> {
    if noaer == Some(true) {
        return Some("noaer");
    }
    (service == Some(AerService::Unbound)).then_some("aer_not_native")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aer_counts_only_while_the_os_handles_aer() {
        use AerService::*;
        assert_eq!(aer_not_counted(Some(true), Some(Unbound)), Some("noaer"));
        assert_eq!(aer_not_counted(Some(true), None), Some("noaer"));
        assert_eq!(
            aer_not_counted(Some(false), Some(Unbound)),
            Some("aer_not_native")
        );
        assert_eq!(aer_not_counted(Some(false), Some(Bound)), None);
        // Unknown (no command line, an incomplete capture) is not "not counted".
        assert_eq!(aer_not_counted(None, None), None);
        assert_eq!(aer_not_counted(Some(false), Some(NoPortBus)), None);
    }
}
