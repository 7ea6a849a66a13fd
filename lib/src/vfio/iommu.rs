//! How the platform isolates passed-through devices: IOMMU passthrough mode,
//! interrupt remapping (`/proc/interrupts`), vfio's unsafe-interrupts switch
//! and the ACS override patch. Reported on the `pcie_platform` line.

use super::VfioSnapshot;
use crate::collector::Collector;
use crate::platform::cmdline;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

const C: Collector = Collector::PciePlatform;

/// Passthrough and ACS override need the command line (and the groups, read
/// before); remapping and unsafe interrupts are read here.
pub fn collect(
    root: &Root,
    params: Option<&[(String, Option<String>)]>,
    s: &mut VfioSnapshot,
    tally: &mut Tally,
) {
    if let Some(params) = params {
        let pt_cmdline = cmdline::last_value(params, "iommu") == Some("pt")
            || cmdline::last_value(params, "iommu.passthrough") == Some("1");
        let all_identity = !s.groups.is_empty()
            && s.groups
                .values()
                .all(|g| g.group_type.as_deref() == Some("identity"));
        s.iommu_passthrough = Some(pt_cmdline || all_identity);
        s.acs_override = Some(cmdline::has_key(params, "pcie_acs_override"));
    }
    // Streamed: hundreds of CPUs make it megabytes.
    let mut scan = InterruptScan::default();
    match read::read_lines(&root.path("/proc/interrupts"), |l| scan.line(l)) {
        Ok(()) => s.interrupt_remapping = scan.verdict(),
        Err(e) => tally.read_failed(C, &e),
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
                other => tally.error(C, format!("{p}: {other:?} is not Y/N")),
            },
            Err(e) => tally.read_failed(C, &e),
        }
    }
}

/// `Some(true)` when any interrupt chip is remapped (`IR-` prefix), `Some(false)`
/// when MSI/IO-APIC chips exist and none is, `None` when the file says neither.
pub fn interrupt_remapping(text: &str) -> Option<bool> {
    let mut scan = InterruptScan::default();
    text.lines().for_each(|l| scan.line(l));
    scan.verdict()
}

/// [`interrupt_remapping`] a line at a time.
#[derive(Default)]
pub struct InterruptScan {
    lines: u64,
    seen_chip: bool,
    remapped: bool,
}

impl InterruptScan {
    pub fn line(&mut self, line: &str) {
        self.lines += 1;
        // The first line is the CPU header.
        if self.lines == 1 || self.remapped {
            return;
        }
        for tok in line.split_whitespace() {
            if tok.starts_with("IR-") {
                self.remapped = true;
                return;
            }
            if tok.contains("MSI") || tok.contains("IO-APIC") {
                self.seen_chip = true;
            }
        }
    }

    pub fn verdict(&self) -> Option<bool> {
        if self.remapped {
            Some(true)
        } else {
            self.seen_chip.then_some(false)
        }
    }
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
