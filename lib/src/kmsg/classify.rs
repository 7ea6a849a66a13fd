//! Which kernel messages are hardware events, and which device they name.
//! The rules are one table, first match wins; anything unmatched that names a
//! PCI device is `other`, everything else is dropped.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Dpc,
    Aer,
    PcieLink,
    IommuFault,
    Vfio,
    GpuXid,
    Lockup,
    HungTask,
    RcuStall,
    Mce,
    Other,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Dpc => "dpc",
            Category::Aer => "aer",
            Category::PcieLink => "pcie_link",
            Category::IommuFault => "iommu_fault",
            Category::Vfio => "vfio",
            Category::GpuXid => "gpu_xid",
            Category::Lockup => "lockup",
            Category::HungTask => "hung_task",
            Category::RcuStall => "rcu_stall",
            Category::Mce => "mce",
            Category::Other => "other",
        }
    }
}

/// (category, all of these substrings must occur). Sources in `tests` below.
pub const RULES: &[(Category, &[&str])] = &[
    (Category::Dpc, &["DPC: "]),
    (Category::Aer, &["AER: "]),
    (Category::Aer, &["PCIe Bus Error"]),
    (Category::Aer, &["error status/mask="]),
    (Category::Aer, &["] ", "(First)"]),
    (Category::IommuFault, &["DMAR: DRHD: handling fault"]),
    (Category::IommuFault, &["DMAR: [DMA "]),
    (Category::IommuFault, &["DMAR: [INTR-REMAP"]),
    (Category::IommuFault, &["IO_PAGE_FAULT"]),
    (Category::IommuFault, &["AMD-Vi: Event logged"]),
    (Category::IommuFault, &["Unhandled context fault"]),
    (Category::GpuXid, &["NVRM: Xid"]),
    (Category::GpuXid, &["fallen off the bus"]),
    (Category::Vfio, &["vfio", "reset"]),
    (Category::Vfio, &["vfio", "power state"]),
    (Category::Vfio, &["vfio", "not ready"]),
    (Category::PcieLink, &["Link Down"]),
    (Category::PcieLink, &["Link Up"]),
    (Category::PcieLink, &["Card not present"]),
    (Category::PcieLink, &["retraining"]),
    (
        Category::PcieLink,
        &["available PCIe bandwidth, limited by"],
    ),
    (Category::PcieLink, &["Link Bandwidth"]),
    (Category::Lockup, &["soft lockup"]),
    (Category::Lockup, &["hard LOCKUP"]),
    (Category::Lockup, &["NMI watchdog"]),
    (Category::HungTask, &["blocked for more than"]),
    (Category::RcuStall, &["rcu", "detected stall"]),
    (Category::RcuStall, &["rcu", "self-detected stall"]),
    (Category::Mce, &["[Hardware Error]"]),
    (Category::Mce, &["mce: "]),
    (Category::Mce, &["Machine check"]),
];

pub fn classify(message: &str, address: Option<&str>) -> Option<Category> {
    RULES
        .iter()
        .find(|(_, needles)| needles.iter().all(|n| message.contains(n)))
        .map(|(c, _)| *c)
        .or_else(|| address.map(|_| Category::Other))
}

/// The PCI address an event is about: `DEVICE=+pci:0000:01:00.0`, else the
/// first `0000:01:00.0` in the text, `[01:00.0]` (DMAR), or `PCI:0000:01:00` (NVRM,
/// function 0).
pub fn address(message: &str, device: Option<&str>) -> Option<String> {
    if let Some(a) = device.and_then(|d| d.strip_prefix("+pci:")) {
        if crate::pci::parse::is_bdf(a) {
            return Some(a.to_ascii_lowercase());
        }
    }
    let b = message.as_bytes();
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    // DDDD:BB:DD.F anywhere
    for i in 0..b.len().saturating_sub(11) {
        let w = &b[i..i + 12];
        let boundary = i == 0 || !b[i - 1].is_ascii_hexdigit() && b[i - 1] != b':';
        if boundary
            && w[4] == b':'
            && w[7] == b':'
            && w[10] == b'.'
            && hex(&w[0..4])
            && hex(&w[5..7])
            && hex(&w[8..10])
            && hex(&w[11..12])
        {
            return Some(String::from_utf8_lossy(w).to_ascii_lowercase());
        }
    }
    // PCI:DDDD:BB:DD (NVRM Xid)
    if let Some(pos) = message.find("PCI:") {
        let w = &b[pos + 4..];
        if w.len() >= 10
            && w[4] == b':'
            && w[7] == b':'
            && hex(&w[0..4])
            && hex(&w[5..7])
            && hex(&w[8..10])
        {
            return Some(format!(
                "{}.0",
                String::from_utf8_lossy(&w[..10]).to_ascii_lowercase()
            ));
        }
    }
    // [BB:DD.F] (DMAR "Request device [01:00.0]")
    for (i, _) in message.match_indices('[') {
        let w = &b[i + 1..];
        if w.len() >= 8
            && w[2] == b':'
            && w[5] == b'.'
            && w[7] == b']'
            && hex(&w[0..2])
            && hex(&w[3..5])
            && hex(&w[6..7])
        {
            return Some(format!(
                "0000:{}",
                String::from_utf8_lossy(&w[..7]).to_ascii_lowercase()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (message, DEVICE= value, expected category, expected address).
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<Category>,
        Option<&'static str>,
    );

    /// Real message formats, each with where it comes from.
    const CASES: &[Case] = &[
        // drivers/pci/pcie/aer.c (kernel-abi.md §7.6)
        ("pcieport 0000:00:1c.0: AER: Correctable error message received from 0000:03:00.0", Some("+pci:0000:00:1c.0"), Some(Category::Aer), Some("0000:00:1c.0")),
        ("nvme 0000:03:00.0: PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)", None, Some(Category::Aer), Some("0000:03:00.0")),
        ("nvme 0000:03:00.0:   device [144d:a808] error status/mask=00000001/00006000", None, Some(Category::Aer), Some("0000:03:00.0")),
        ("nvidia 0000:02:00.0:    [14] CmpltTO                (First)", None, Some(Category::Aer), Some("0000:02:00.0")),
        // drivers/pci/pcie/dpc.c
        ("pcieport 0000:00:1c.0: DPC: containment event, status:0x1f01 source:0x0000", None, Some(Category::Dpc), Some("0000:00:1c.0")),
        // drivers/iommu/intel/dmar.c dmar_fault_do_one()
        ("DMAR: [DMA Read NO_PASID] Request device [01:00.0] fault addr 0xfee00000 [fault reason 0x06] PTE Read access is not set", None, Some(Category::IommuFault), Some("0000:01:00.0")),
        ("DMAR: DRHD: handling fault status reg 2", None, Some(Category::IommuFault), None),
        // drivers/iommu/amd/iommu.c amd_iommu_report_page_fault()
        ("vfio-pci 0000:0b:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0xfd00000000 flags=0x0010]", None, Some(Category::IommuFault), Some("0000:0b:00.0")),
        // NVIDIA driver, as quoted in NVIDIA/NVSentinel issue #155
        ("NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus.", None, Some(Category::GpuXid), Some("0000:44:00.0")),
        ("NVRM: The NVIDIA GPU 0000:b3:00.0\nNVRM: (PCI ID: 10de:26b5) installed in this system has\nNVRM: fallen off the bus and is not responding to commands.", None, Some(Category::GpuXid), Some("0000:b3:00.0")),
        // drivers/pci/pci.c pci_dev_wait(), drivers/pci/pci.c pci_set_power_state()
        ("vfio-pci 0000:01:00.0: not ready 65535ms after FLR; giving up", None, Some(Category::Vfio), Some("0000:01:00.0")),
        ("vfio-pci 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible", None, Some(Category::Vfio), Some("0000:01:00.0")),
        ("vfio-pci 0000:01:00.0: resetting", None, Some(Category::Vfio), Some("0000:01:00.0")),
        // drivers/pci/hotplug/pciehp_ctrl.c, drivers/pci/pci.c __pcie_print_link_status()
        ("pcieport 0000:00:1c.0: pciehp: Slot(1): Link Down", None, Some(Category::PcieLink), Some("0000:00:1c.0")),
        ("pci 0000:01:00.0: 8.000 Gb/s available PCIe bandwidth, limited by 2.5 GT/s PCIe x4 link at 0000:00:1c.4 (capable of 126.016 Gb/s with 8.0 GT/s PCIe x16 link)", None, Some(Category::PcieLink), Some("0000:01:00.0")),
        // kernel/watchdog.c, kernel/watchdog_perf.c
        ("watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1:123]", None, Some(Category::Lockup), None),
        ("watchdog: Watchdog detected hard LOCKUP on cpu 5", None, Some(Category::Lockup), None),
        // kernel/hung_task.c
        ("INFO: task kworker/u64:2:1234 blocked for more than 122 seconds.", None, Some(Category::HungTask), None),
        // kernel/rcu/tree_stall.h
        ("rcu: INFO: rcu_sched self-detected stall on CPU", None, Some(Category::RcuStall), None),
        ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", None, Some(Category::RcuStall), None),
        // arch/x86/kernel/cpu/mce/core.c
        ("mce: [Hardware Error]: Machine check events logged", None, Some(Category::Mce), None),
        // unrelated, but names a PCI device
        ("nvme 0000:03:00.0: enabling device (0000 -> 0002)", None, Some(Category::Other), Some("0000:03:00.0")),
        // unrelated: dropped
        ("EXT4-fs (sda1): mounted filesystem with ordered data mode.", None, None, None),
        ("usb 1-1: new high-speed USB device number 2 using xhci_hcd", None, None, None),
    ];

    #[test]
    fn real_messages() {
        for (msg, dev, cat, addr) in CASES {
            let a = address(msg, *dev);
            assert_eq!(a.as_deref(), *addr, "{msg}");
            assert_eq!(classify(msg, a.as_deref()), *cat, "{msg}");
        }
    }
}
