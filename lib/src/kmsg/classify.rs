//! Which kernel messages are hardware events, and how bad they are.
//!
//! Rules match the *shape* of an error as the kernel prints it: each one names
//! the kernel file and function whose format string it follows (or the public
//! log it was seen in). Initialisation and enumeration lines (`AER: enabled with
//! IRQ`, `DPC: error containment capabilities`, `NMI watchdog: Enabled`,
//! `mce: CPU supports 22 MCE banks`, BAR assignment...) match no rule. A record
//! from userspace (syslog facility != 0) is never an event. Anything else that
//! names a PCI device becomes `other` only at warning level or worse, and only
//! when it is not a boot-time resource or firmware complaint.
//!
//! Addresses are found by [`address`]; the record's `DEVICE=` continuation is
//! resolved by the reader (it may need sysfs).

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
    Panic,
    Other,
}

/// What the text alone says: a category, and whether the event must never be
/// rate-limited (uncorrectable/fatal errors, containment, lockups, panics, Xid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub category: Category,
    pub critical: bool,
}

const fn v(category: Category, critical: bool) -> Verdict {
    Verdict { category, critical }
}

/// One rule: every needle must occur. First match wins, so narrow rules come first.
struct Rule {
    verdict: Verdict,
    all: &'static [&'static str],
}

const fn rule(category: Category, critical: bool, all: &'static [&'static str]) -> Rule {
    Rule {
        verdict: v(category, critical),
        all,
    }
}

use Category::*;

/// The table. Each group names the kernel source of the format strings it matches.
const RULES: &[Rule] = &[
    // drivers/pci/pcie/dpc.c dpc_process_error() / dpc_handler(): "DPC: containment
    // event, status:%#06x source:%#06x"; 4.x: "DPC containment event, ..."; "DPC: %s
    // detected" (unmasked uncorrectable error, ERR_FATAL, ERR_NONFATAL);
    // dpc_process_rp_pio_error(): "rp_pio_status: ...", "RP PIO severity=...". Not
    // dpc_probe()'s "DPC: error containment capabilities: ..." nor its "RP PIO log
    // size %u is invalid" (a firmware value read at boot).
    rule(Dpc, true, &["DPC", "containment event"]),
    rule(Dpc, true, &["DPC", " detected"]),
    rule(Dpc, true, &["RP PIO severity="]),
    rule(Dpc, true, &["RP PIO TLP Header"]),
    rule(Dpc, true, &["RP PIO ImpSpec"]),
    rule(Dpc, true, &["rp_pio_status"]),
    // drivers/pci/pcie/aer.c aer_print_port_info(): "%s%s error message received from
    // %s" (6.x), "%s%s error received: %04x:%02x:%02x.%d" (4.19-6.x), "%s%s error
    // received: id=%04x" (<= 4.18); aer_isr_one_error(): "can't find device of ID%04x".
    rule(Aer, false, &["error message received from"]),
    rule(Aer, false, &["AER", "error received"]),
    rule(Aer, false, &["can't find device of ID"]),
    // aer.c aer_print_error() / cper_print_aer(): "PCIe Bus Error: severity=%s,
    // type=%s, (%s)", "  device [%04x:%04x] error status/mask=%08x/%08x",
    // "  TLP Header: ...", "  Error of this Agent is reported first";
    // cper_print_aer(): "aer_status: 0x%08x, aer_mask: 0x%08x", "aer_layer=%s,
    // aer_agent=%s", "aer_uncor_severity: 0x%08x".
    rule(Aer, false, &["PCIe Bus Error:"]),
    rule(Aer, false, &["error status/mask="]),
    rule(Aer, false, &["TLP Header:"]),
    rule(Aer, false, &["Error of this Agent"]),
    rule(Aer, false, &["aer_status:"]),
    rule(Aer, false, &["aer_layer="]),
    rule(Aer, false, &["aer_uncor_severity"]),
    // drivers/pci/pcie/err.c pcie_do_recovery() / report_*(): "AER: broadcast %s
    // message", "device recovery successful/failed", "Root Port link has been reset".
    rule(Aer, false, &["AER: broadcast "]),
    rule(Aer, false, &["AER", "evice recovery "]),
    rule(Aer, false, &["Root Port link has been reset"]),
    rule(Aer, false, &["can't recover (no error_detected callback)"]),
    // arch/x86/kernel/nmi.c pci_serr_error(): "NMI: PCI system error (SERR) for reason
    // %02x on CPU %d." -- a PCI error signalled through the platform, not AER.
    rule(Aer, true, &["PCI system error (SERR)"]),
    // drivers/iommu/intel/dmar.c dmar_fault_do_one(): 3.x/4.x "DMAR:[%s] Request device
    // [%02x:%02x.%d] fault addr %llx", "DMAR:[fault reason %02d] %s"; 5.x/6.x "[%s
    // NO_PASID] Request device [...] fault addr 0x%llx [fault reason 0x%02x] %s",
    // "[INTR-REMAP] Request device [...] fault index ..."; dmar_fault(): "DRHD:
    // handling fault status reg %x"; qi_check_fault(): "VT-d detected Invalidation
    // Time-out/Queue/Completion Error".
    rule(IommuFault, false, &["Request device ["]),
    rule(IommuFault, false, &["DMAR", "fault reason"]),
    rule(IommuFault, false, &["DRHD: handling fault"]),
    rule(IommuFault, false, &["VT-d detected Invalidation"]),
    // drivers/iommu/amd/iommu.c iommu_print_event() / amd_iommu_report_page_fault():
    // "Event logged [IO_PAGE_FAULT device=%04x:%02x:%02x.%x domain=... ]" (old kernels
    // "device=%02x:%02x.%x", and the event name sometimes on its own line after a
    // split "AMD-Vi: Event logged ["); wait_on_sem(): "Completion-Wait loop timed out";
    // iommu_poll_events(): "IOMMU event log overflow".
    rule(IommuFault, false, &["IO_PAGE_FAULT"]),
    rule(IommuFault, false, &["ILLEGAL_DEV_TABLE_ENTRY"]),
    rule(IommuFault, false, &["DEV_TAB_HARDWARE_ERROR"]),
    rule(IommuFault, false, &["PAGE_TAB_HARDWARE_ERROR"]),
    rule(IommuFault, false, &["ILLEGAL_COMMAND_ERROR"]),
    rule(IommuFault, false, &["COMMAND_HARDWARE_ERROR"]),
    rule(IommuFault, false, &["IOTLB_INV_TIMEOUT"]),
    rule(IommuFault, false, &["INVALID_DEVICE_REQUEST"]),
    rule(IommuFault, false, &["INVALID_PPR_REQUEST"]),
    rule(IommuFault, false, &["RMP_PAGE_FAULT"]),
    rule(IommuFault, false, &["RMP_HW_ERROR"]),
    rule(IommuFault, false, &["AMD-Vi: Event logged"]),
    rule(IommuFault, false, &["Completion-Wait loop timed out"]),
    rule(IommuFault, false, &["event log overflow"]),
    // drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c arm_smmu_evtq_thread(): "event 0x%02x
    // received:" (<= 6.12), "event: %s client: %s sid: %#x ..." (6.13+), "EVTQ
    // overflow detected -- events lost", "CMD_SYNC timeout"; arm-smmu.c
    // arm_smmu_context_fault(): "Unhandled context fault: fsr=...", "Blocked unknown
    // Stream ID".
    rule(IommuFault, false, &["smmu", "event 0x", "received"]),
    rule(IommuFault, false, &["smmu", "event: ", "sid: "]),
    rule(IommuFault, false, &["EVTQ overflow"]),
    rule(IommuFault, false, &["CMD_SYNC timeout"]),
    rule(IommuFault, false, &["Unhandled context fault"]),
    rule(IommuFault, false, &["Blocked unknown Stream ID"]),
    // NVIDIA driver (nv.c / osapi.c as logged): "NVRM: Xid (PCI:%04x:%02x:%02x): %d,
    // ..." (>= 340), "NVRM: Xid (%04x:%02x:%02x): %d, ..." (older); "NVRM: The NVIDIA
    // GPU %04x:%02x:%02x.%x ... has fallen off the bus"; "RmInitAdapter failed!".
    rule(GpuXid, true, &["NVRM: Xid"]),
    rule(GpuXid, true, &["fallen off the bus"]),
    rule(GpuXid, false, &["NVRM", "RmInitAdapter failed"]),
    // kernel/watchdog.c watchdog_timer_fn(): "BUG: soft lockup - CPU#%d stuck for
    // %us! [%s:%d]" (prefix "NMI watchdog: " on 4.x); kernel/watchdog_perf.c and
    // watchdog.c watchdog_hardlockup_check(): "Watchdog detected hard LOCKUP on cpu
    // %d", "CPU%u: Watchdog detected hard LOCKUP on other CPUs", buddy: "CPU%u
    // self-detected hard LOCKUP @ %pS". Not "NMI watchdog: Enabled..." at boot.
    rule(Lockup, true, &["soft lockup - CPU"]),
    rule(Lockup, true, &["hard LOCKUP"]),
    // kernel/hung_task.c check_hung_task(): "INFO: task %s:%d blocked for more than
    // %ld seconds."
    rule(HungTask, false, &["INFO: task ", "blocked for more than"]),
    // 6.15 hung_task.c debug_show_blocker(): "INFO: task %s:%d is blocked on a mutex
    // likely owned by task %s:%d." (and semaphore, rwsem).
    rule(HungTask, false, &["INFO: task ", "is blocked on a"]),
    // kernel/rcu/tree_stall.h print_other_cpu_stall() / print_cpu_stall(): "INFO: %s
    // detected stalls on CPUs/tasks:", "INFO: %s self-detected stall on CPU";
    // tree_exp.h synchronize_rcu_expedited_wait(): "INFO: %s detected expedited stalls
    // on CPUs/tasks: {"; rcu_check_gp_kthread_starvation(): "%s kthread starved for
    // %ld jiffies!"; rcu_check_gp_kthread_expired_fqs_timer(): "%s kthread timer
    // wakeup didn't happen for %ld jiffies!".
    rule(RcuStall, false, &["rcu", "detected stall"]),
    rule(RcuStall, false, &["rcu", "detected expedited stall"]),
    rule(RcuStall, false, &["rcu", "self-detected stall"]),
    rule(RcuStall, false, &["kthread starved for"]),
    rule(
        RcuStall,
        false,
        &["rcu", "kthread timer wakeup didn't happen"],
    ),
    // arch/x86/kernel/cpu/mce/core.c: every report line carries HW_ERR
    // "[Hardware Error]: " ("CPU %d: Machine Check%s: %Lx Bank %d: %016Lx", "Machine
    // check events logged", "Run the above through 'mcelog --ascii'"); GHES/CPER
    // lines are handled before this table (see `cper`).
    rule(Mce, true, &["[Hardware Error]", "Machine Check Exception"]),
    rule(Mce, true, &["[Hardware Error]", "Machine check: "]),
    rule(Mce, false, &["[Hardware Error]"]),
    rule(Mce, false, &["Machine check events logged"]),
    // drivers/edac/edac_mc.c edac_raw_mc_handle_error(): "EDAC MC%d: %d %s %s error%s
    // on %s (...)" with CE/UE/Fatal; skx/i10nm "EDAC skx MC%d: HANDLING MCE MEMORY
    // ERROR". Not "EDAC MC0: Giving out device to module ..." at boot.
    rule(Mce, true, &["EDAC", " UE "]),
    rule(Mce, true, &["EDAC", "Fatal"]),
    rule(Mce, false, &["EDAC", " CE "]),
    rule(Mce, false, &["EDAC", "MEMORY ERROR"]),
    // sb_edac.c / skx_common.c: "CPU %d: Machine Check Event: %Lu Bank %d: %016Lx".
    rule(Mce, false, &["EDAC", "Machine Check Event"]),
    // drivers/pci/hotplug/pciehp_ctrl.c pciehp_handle_presence_or_link_change() and
    // pciehp_handle_button_press(): "Slot(%s): Link Down", "Slot(%s): Link Up",
    // "Slot(%s): Card present", "Slot(%s): Card not present", "Slot(%s): Attention
    // button pressed", "Slot(%s): Powering off/on due to button press";
    // pciehp_hpc.c: "Timeout on hotplug command", "Cannot train link",
    // pciehp_check_link_status(): "link training error". Not pciehp_probe()'s
    // "Slot #%d AttnBtn%c PwrCtrl%c ..." line.
    rule(PcieLink, false, &["Slot(", "): Link "]),
    rule(PcieLink, false, &["Slot(", "): Card "]),
    // 3.x pciehp_ctrl.c: "Card present on Slot(%s)", "Card not present on Slot(%s)",
    // "Link Down event for Slot(%s)"... (the slot after the event).
    rule(PcieLink, false, &["on Slot(", "Card "]),
    rule(PcieLink, false, &["for Slot(", "Link "]),
    rule(PcieLink, false, &["Failed to check link status"]),
    rule(PcieLink, false, &["Slot(", "): Attention button"]),
    rule(PcieLink, false, &["Slot(", "): Powering "]),
    rule(PcieLink, false, &["Slot(", "): Button "]),
    rule(PcieLink, false, &["Timeout on hotplug command"]),
    rule(PcieLink, false, &["ink training error"]),
    rule(PcieLink, false, &["Cannot train link"]),
    // drivers/pci/pci.c pcie_wait_for_link_status(): "Data Link Layer Link Active not
    // set in %d msec"; quirks.c pcie_failed_link_retrain(): "retraining failed",
    // "broken device, retraining non-functional downstream link at 2.5GT/s".
    rule(PcieLink, false, &["Link Active not set"]),
    rule(PcieLink, false, &["retraining"]),
    // drivers/net/ethernet/intel/{igb,ixgbe,ice}: "PCIe link lost, device now detached",
    // "PCIe link lost".
    rule(PcieLink, false, &["PCIe link lost"]),
];

/// drivers/pci/pci.c pci_dev_wait(), pci_power_up(), pci_set_low_power_state(),
/// pcie_flr(); drivers/vfio/pci/vfio_pci_config.c vfio_bar_restore(): a function
/// that did not come back from a reset or power change. `vfio` when vfio-pci
/// owns it (a guest's device), otherwise `other`.
const RESET_OR_POWER_FAILURE: &[&str] = &[
    "not ready ",
    "change power state",
    "device inaccessible",
    "timed out waiting for pending transaction",
    "reset recovery - restoring BARs",
    "failed to reset",
    "reset failed",
];

/// GPU failures that drivers log at info or notice level (so the warning-level rule
/// for `other` would miss them): i915 i915_capture_error_state() "GPU HANG: ecode
/// %d:%d:%08x, in %s [%d]", intel_gt_reset() "Resetting chip for %s"; amdgpu
/// amdgpu_device_gpu_recover() "GPU reset begin!".
const GPU_FAILURE_AT_INFO: &[&str] = &["GPU HANG", "GPU reset begin", "Resetting chip for"];

/// Lines that name a PCI device on every ordinary boot, at warning level on some
/// kernels and drivers. None is a fault in the hardware the way the rules above are.
const BOOT_NOISE: &[&str] = &[
    // drivers/pci/probe.c pci_setup_device(), pci_scan_bridge_extend(), pci_configure_*():
    // "[%04x:%04x] type %02x class %#08x", "PCI bridge to", "PTM enabled", "supports D1",
    // "Primary bus is hard wired", "enabling Extended Tags", "PME# supported";
    // controller/vmd.c "PCI host bridge to bus", "Bound to PCI domain".
    "] type 0",
    "PCI bridge to",
    "PCI host bridge",
    "Bound to PCI domain",
    "PTM enabled",
    "supports D1",
    "hard wired",
    "Extended Tags",
    "PME#",
    // drivers/pci/setup-res.c, setup-bus.c: resource assignment.
    "BAR ",
    "bridge window",
    "can't claim",
    "can't reserve",
    "failed to assign",
    // drivers/acpi/pci_irq.c: "PCI INT %c: no GSI", "can't derive routing for PCI INT".
    "PCI INT ",
    // Port services coming up: pcie/aer.c aer_probe() "enabled with IRQ", pme.c
    // "Signaling with IRQ", dpc.c dpc_probe() "error containment capabilities", "RP PIO
    // log size %u is invalid", pciehp_hpc.c "Slot #%d AttnBtn...".
    "with IRQ",
    "error containment capabilities",
    "RP PIO log size",
    "Slot #",
    // IOMMU set-up: "Adding to iommu group", amd/init.c "Found IOMMU", perf counters;
    // vfio_pci_config.c "vfio_ecap_init: ... hiding ecap"; a VM start: vfio-pci /
    // pci.c "resetting", "reset done"; SR-IOV "Enabled %d VFs".
    "iommu group",
    "Found IOMMU",
    "counters supported",
    "hiding ecap",
    "resetting",
    "reset done",
    " VFs",
    "SR-IOV",
    // edac_mc.c edac_mc_add_mc_with_groups(): "Giving out device to module ...".
    "Giving out device",
    // pci.c __pcie_print_link_status() at probe: the link's state is the `pcie_link`
    // measurement's business, not an event.
    "available PCIe bandwidth",
    // A device named only as an ancestor in a sysfs or USB path ("input: ... as
    // /devices/pci0000:00/...", "hid-generic ...: ... on usb-0000:0b:00.3-1/input0").
    "/devices/pci",
    " on usb-",
    // Driver start-up chatter and firmware/BIOS complaints, vgaarb, component binding,
    // ASPM policy (r8169 "can't disable ASPM; OS doesn't have ASPM control"), quirks.
    "[drm] Initialized",
    "bound 0000:",
    "pci function",
    "enabling device",
    "[Firmware",
    "Direct firmware load",
    "firmware: failed to load",
    "irmware version",
    "BIOS",
    "ASPM",
    "vgaarb",
    "quirk",
    "Max Payload",
    "_OSC",
    "ROM",
    "not supported",
    "unsupported",
    "deprecated",
    "taint",
    "MSI",
    "Disabling",
    "disabling",
];

/// AER and CPER reports span several records; what one record means can depend on
/// the ones before it. Small and bounded.
#[derive(Debug, Default)]
pub struct Context {
    /// Devices whose last `PCIe Bus Error: severity=` was uncorrectable: their
    /// following status, bit and TLP lines are as critical as the header.
    uncorrectable: Vec<String>,
    /// The GHES/CPER record being printed (`{N}[Hardware Error]: ...`).
    cper: Option<CperBlock>,
    /// The section of a block whose first lines are being judged after it.
    preset: Option<(String, bool)>,
}

#[derive(Debug, Default)]
struct CperBlock {
    tag: String,
    section_seen: bool,
    pcie: bool,
    critical: bool,
    address: Option<String>,
}

const MAX_TRACKED: usize = 64;

impl Context {
    fn set_uncorrectable(&mut self, address: Option<&str>, yes: bool) {
        let Some(a) = address else { return };
        self.uncorrectable.retain(|x| x != a);
        if yes {
            if self.uncorrectable.len() >= MAX_TRACKED {
                self.uncorrectable.remove(0);
            }
            self.uncorrectable.push(a.to_string());
        }
    }

    /// `message` is a block's `section_type:` line, read before the block's first
    /// lines are judged (the reader held them back until it knew the section).
    pub fn preset_cper_section(&mut self, message: &str) {
        if let (Some(tag), Some((_, ty))) =
            (cper_tag(message), message.split_once("section_type: "))
        {
            self.preset = Some((
                tag.to_string(),
                ty.trim().eq_ignore_ascii_case("PCIe error"),
            ));
        }
    }

    fn is_uncorrectable(&self, address: Option<&str>) -> bool {
        address.is_some_and(|a| self.uncorrectable.iter().any(|x| x == a))
    }
}

/// The verdict on one kernel record (facility 0), given the address already found
/// for it; `address` may be replaced (a CPER block names its device on a later
/// line than its first). `None`: not an event.
pub fn classify(
    ctx: &mut Context,
    level: u8,
    message: &str,
    address: &mut Option<String>,
) -> Option<Verdict> {
    // drivers/acpi/apei/bert.c: errors of an *earlier* boot, replayed by firmware at
    // every start; stamped with this boot's time they would say the wrong thing.
    if message.starts_with("BERT: ") {
        return None;
    }
    if let Some(verdict) = cper(ctx, message, address) {
        return Some(verdict);
    }
    if let Some(verdict) = panic(message) {
        return Some(verdict);
    }
    if let Some(verdict) = aer_bit_line(message).filter(|_| address.is_some()) {
        return Some(aer_severity(ctx, message, address.as_deref(), verdict));
    }
    if let Some(r) = RULES
        .iter()
        .find(|r| r.all.iter().all(|n| message.contains(n)))
    {
        let verdict = match r.verdict.category {
            Aer => aer_severity(ctx, message, address.as_deref(), r.verdict),
            _ => r.verdict,
        };
        return Some(verdict);
    }
    if RESET_OR_POWER_FAILURE.iter().any(|n| message.contains(n))
        && address.is_some()
        && !message.contains("; waiting")
    {
        let cat = if message.starts_with("vfio") {
            Vfio
        } else {
            Other
        };
        return Some(v(cat, false));
    }
    if address.is_some() && GPU_FAILURE_AT_INFO.iter().any(|n| message.contains(n)) {
        return Some(v(Other, false));
    }
    if level <= 4 && address.is_some() && !BOOT_NOISE.iter().any(|n| message.contains(n)) {
        return Some(v(Other, false));
    }
    None
}

/// Whether a record that matched no rule would be `other` if it named a device:
/// the reader looks its `DEVICE=` up in sysfs only then.
pub fn could_be_other(level: u8, message: &str) -> bool {
    level <= 4 || GPU_FAILURE_AT_INFO.iter().any(|n| message.contains(n))
}

/// kernel/panic.c panic(): "Kernel panic - not syncing: %s". Filed under its cause
/// where the cause is one of ours (watchdog.c "Hard LOCKUP", "softlockup: hung
/// tasks"; hung_task.c "hung_task: blocked tasks"; mce/core.c "Fatal machine
/// check", "Timeout: Not all CPUs entered broadcast exception handler"; ghes.c
/// "Fatal hardware error!"; tree_stall.h "RCU Stall"),
/// else `panic`. Always critical.
fn panic(message: &str) -> Option<Verdict> {
    let (_, cause) = message.split_once("Kernel panic - not syncing")?;
    let lower = cause.to_ascii_lowercase();
    let cat = if lower.contains("lockup") {
        Lockup
    } else if lower.contains("hung") || lower.contains("blocked tasks") {
        HungTask
    } else if [
        "machine check",
        "mce",
        "hardware error",
        "exception handler",
    ]
    .iter()
    .any(|n| lower.contains(n))
    {
        Mce
    } else if lower.contains("rcu") {
        RcuStall
    } else {
        Panic
    };
    Some(v(cat, true))
}

/// aer.c __aer_print_error(): one line per status bit, "   [%2d] %-22s%s" with
/// " (First)" on the first error only (3.x: "  [%2d] %s"), e.g.
/// "nvme 0000:03:00.0:    [ 8] Rollover" or, 5.x on, "nvme 0000:03:00.0: AER:
/// [ 8] Rollover". The text after the device prefix (and "AER:") starts with `[`,
/// one or two digits, `]`, a name.
fn aer_bit_line(message: &str) -> Option<Verdict> {
    let mut body = message.trim_start();
    // Skip a "driver 0000:00:00.0: " prefix when there is one, then the "AER:" that
    // 5.x and later kernels put before every aer.c line.
    if let Some(i) = body.find(": ") {
        if !body[..i].contains('[') {
            body = body[i + 2..].trim_start();
        }
    }
    if let Some(rest) = body.strip_prefix("AER:") {
        body = rest.trim_start();
    }
    let rest = body.strip_prefix('[')?;
    let close = rest.find(']')?;
    let num = rest[..close].trim();
    let is_bit = (1..=2).contains(&num.len()) && num.bytes().all(|b| b.is_ascii_digit());
    let after = &rest[close + 1..];
    let named =
        after.starts_with(' ') && after.trim().chars().next().is_some_and(char::is_alphabetic);
    (is_bit && named).then_some(v(Aer, false))
}

/// An AER line's criticality: its own severity where it states one, else that of
/// the last header for the same device.
fn aer_severity(
    ctx: &mut Context,
    message: &str,
    address: Option<&str>,
    verdict: Verdict,
) -> Verdict {
    let states = message.contains("severity=")
        || message.contains("error message received from")
        || message.contains("error received");
    if states {
        let bad = message.contains("Uncorrect") || message.contains("Fatal");
        if message.contains("severity=") {
            ctx.set_uncorrectable(address, bad);
        }
        return v(Aer, verdict.critical || bad);
    }
    v(Aer, verdict.critical || ctx.is_uncorrectable(address))
}

/// drivers/acpi/apei/ghes.c ghes_print_estatus() and drivers/firmware/efi/cper.c
/// cper_estatus_print(): a firmware-reported error, every line prefixed
/// "{N}[Hardware Error]: " — "Hardware error from APEI Generic Hardware Error
/// Source: %d", "event severity: %s", " Error %d, type: %s", "  section_type: %s";
/// cper-pcie (cper.c cper_print_pcie()): "  device_id: %04x:%02x:%02x.%x". A PCIe
/// section is an AER event of that device, anything else a machine-check-class
/// (`mce`) hardware error. Fatal and uncorrected-recoverable blocks are critical.
fn cper(ctx: &mut Context, message: &str, address: &mut Option<String>) -> Option<Verdict> {
    let tag = cper_tag(message)?;
    let fresh = message.contains("Hardware error from APEI")
        || ctx.cper.as_ref().is_none_or(|b| b.tag != tag);
    if fresh {
        let preset = ctx.preset.take().filter(|(t, _)| t == tag);
        ctx.cper = Some(CperBlock {
            tag: tag.to_string(),
            section_seen: preset.is_some(),
            pcie: preset.is_some_and(|p| p.1),
            ..CperBlock::default()
        });
    }
    let block = ctx.cper.as_mut()?;
    if let Some((_, sev)) = message.split_once("severity: ") {
        let sev = sev.trim().to_ascii_lowercase();
        block.critical |= sev.starts_with("fatal") || sev.starts_with("recoverable");
    }
    if let Some((_, ty)) = message.split_once("section_type: ") {
        block.pcie = ty.trim().eq_ignore_ascii_case("PCIe error");
        block.section_seen = true;
    }
    if block.pcie {
        if let Some((_, id)) = message.split_once("device_id: ") {
            if let Some(a) = address_in(id) {
                block.address = Some(a);
            }
        }
        if block.address.is_some() {
            address.clone_from(&block.address);
        }
    }
    let (cat, critical) = (if block.pcie { Aer } else { Mce }, block.critical);
    if block.pcie && critical {
        let a = block.address.clone();
        ctx.set_uncorrectable(a.as_deref(), true);
    }
    Some(v(cat, critical))
}

/// A GHES/CPER line printed before its block's `section_type:` line: what it
/// is about is not known yet, so the reader holds it until the section is.
pub fn cper_section_pending(ctx: &Context, message: &str) -> bool {
    let Some(tag) = cper_tag(message) else {
        return false;
    };
    if message.contains("section_type: ") {
        return false;
    }
    let same = ctx
        .cper
        .as_ref()
        .is_some_and(|b| b.tag == tag && b.section_seen);
    !same || message.contains("Hardware error from APEI")
}

/// `{N}` of "{N}[Hardware Error]: " (ghes.c GHES_PFX / HW_ERR with a sequence).
fn cper_tag(message: &str) -> Option<&str> {
    let i = message.find("[Hardware Error]")?;
    let head = &message[..i];
    let open = head.rfind('{')?;
    head[open..].ends_with('}').then(|| &head[open..])
}

/// The PCI address a message is about, in the forms the kernel prints:
/// `DDDD:BB:DD.F` (4 to 8 hex digits of domain: Intel VMD domains are
/// `10000:e1:00.0`); DMAR's `[BB:DD.F]` and `[0xBB:0xDD.F]` (segment 0); AMD-Vi's
/// `device=BB:DD.F` (segment 0 on kernels that omit it); NVRM's `Xid (PCI:DDDD:BB:DD)`
/// and `Xid (DDDD:BB:DD)` (function 0). Lowercase, domain at least 4 digits.
pub fn address_in(message: &str) -> Option<String> {
    full_bdf(message)
        .or_else(|| short_after(message, "device="))
        .or_else(|| bracketed(message))
        .or_else(|| nvrm(message))
}

fn hex(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_hexdigit)
}

/// `DDDD:BB:DD.F` not embedded in a longer hex run.
fn full_bdf(message: &str) -> Option<String> {
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_hexdigit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if (4..=8).contains(&run) {
            if let Some(a) = bdf_at(b, i + run).map(|rest| (i, rest)) {
                let domain = std::str::from_utf8(&b[i..i + run]).ok()?;
                return Some(format!("{:0>4}{}", domain, a.1).to_ascii_lowercase());
            }
        }
        i += run.max(1);
    }
    None
}

/// `:BB:DD.F` at `at`, not followed by a letter or digit.
fn bdf_at(b: &[u8], at: usize) -> Option<String> {
    let w = b.get(at..at + 8)?;
    let ok = w[0] == b':'
        && hex(&w[1..3])
        && w[3] == b':'
        && hex(&w[4..6])
        && w[6] == b'.'
        && (b'0'..=b'7').contains(&w[7]);
    let end = b.get(at + 8).is_none_or(|c| !c.is_ascii_alphanumeric());
    (ok && end).then(|| String::from_utf8_lossy(w).into_owned())
}

/// `KEY BB:DD.F` (no domain: segment 0).
fn short_after(message: &str, key: &str) -> Option<String> {
    message.match_indices(key).find_map(|(i, _)| {
        let rest = &message.as_bytes()[i + key.len()..];
        let w = rest.get(..7)?;
        let ok = hex(&w[0..2])
            && w[2] == b':'
            && hex(&w[3..5])
            && w[5] == b'.'
            && (b'0'..=b'7').contains(&w[6]);
        let end = rest
            .get(7)
            .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b':');
        (ok && end).then(|| format!("0000:{}", String::from_utf8_lossy(w).to_ascii_lowercase()))
    })
}

/// DMAR: `[05:00.0]` or `[0x05:0x00.0]`.
fn bracketed(message: &str) -> Option<String> {
    message.match_indices('[').find_map(|(i, _)| {
        let inner = &message[i + 1..];
        let inner = &inner[..inner.find(']')?];
        let (bus, rest) = inner.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let strip = |s: &str| s.strip_prefix("0x").unwrap_or(s).to_string();
        let (bus, dev) = (strip(bus), strip(dev));
        let ok = bus.len() == 2
            && hex(bus.as_bytes())
            && dev.len() == 2
            && hex(dev.as_bytes())
            && func.len() == 1
            && (b'0'..=b'7').contains(&func.as_bytes()[0]);
        ok.then(|| format!("0000:{bus}:{dev}.{func}").to_ascii_lowercase())
    })
}

/// NVRM: `Xid (PCI:0000:03:00)`, `Xid (0000:03:00)`, `GPU at PCI:0000:03:00`.
fn nvrm(message: &str) -> Option<String> {
    let i = message.find("NVRM")?;
    let rest = &message[i..];
    let start = rest
        .find("PCI:")
        .map(|p| p + 4)
        .or_else(|| rest.find("Xid (").map(|p| p + 5))?;
    let w = rest.as_bytes().get(start..start + 10)?;
    let ok = hex(&w[0..4]) && w[4] == b':' && hex(&w[5..7]) && w[7] == b':' && hex(&w[8..10]);
    let end = rest
        .as_bytes()
        .get(start + 10)
        .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'.');
    (ok && end).then(|| format!("{}.0", String::from_utf8_lossy(w).to_ascii_lowercase()))
}

/// `+pci:DDDD:BB:DD.F` of a `DEVICE=` continuation (any domain width).
pub fn pci_device_field(device: &str) -> Option<String> {
    let a = device.strip_prefix("+pci:")?;
    let split = a.len().checked_sub(8)?;
    let domain = a.get(..split)?;
    let ok = (4..=8).contains(&domain.len()) && hex(domain.as_bytes());
    let rest = bdf_at(a.as_bytes(), split).filter(|_| ok)?;
    Some(format!("{domain:0>4}{rest}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_form_the_kernel_prints() {
        let cases = [
            ("pcieport 0000:00:1c.0: AER: x", Some("0000:00:1c.0")),
            (
                "nvme 10000:e1:00.0: PCI INT A: no GSI",
                Some("10000:e1:00.0"),
            ),
            (
                "dpc 0000:00:03.2:pcie008: DPC containment event",
                Some("0000:00:03.2"),
            ),
            (
                "DMAR:[DMA Write] Request device [05:00.0] fault addr ffdf0000",
                Some("0000:05:00.0"),
            ),
            (
                "DMAR: [DMA Read NO_PASID] Request device [0x00:0x02.0] fault",
                Some("0000:00:02.0"),
            ),
            (
                "AMD-Vi: Event logged [IO_PAGE_FAULT device=00:00.1 domain=0x0000",
                Some("0000:00:00.1"),
            ),
            (
                "NVRM: Xid (PCI:0000:03:00): 79, pid=1",
                Some("0000:03:00.0"),
            ),
            (
                "NVRM: Xid (0000:03:00): 13, 0003 00000000",
                Some("0000:03:00.0"),
            ),
            ("pci_bus 10000:e0: root bus resource [bus e0-ff]", None),
            ("hid-generic 0003:534D:2109.0011: hidraw2", None),
            ("EXT4-fs (sda1): mounted filesystem", None),
            ("x 0000:00:1c.8: not a function number", None),
        ];
        for (msg, want) in cases {
            assert_eq!(address_in(msg).as_deref(), want, "{msg}");
        }
        assert_eq!(
            pci_device_field("+pci:10000:E1:00.0").as_deref(),
            Some("10000:e1:00.0")
        );
        assert_eq!(
            pci_device_field("+pci:0000:01:00.0").as_deref(),
            Some("0000:01:00.0")
        );
        assert_eq!(pci_device_field("+pci:0000:01:00.0x"), None);
        assert_eq!(pci_device_field("+usb:1-1"), None);
    }

    fn judge(ctx: &mut Context, level: u8, msg: &str) -> (Option<Verdict>, Option<String>) {
        let mut a = address_in(msg);
        (classify(ctx, level, msg, &mut a), a)
    }

    #[test]
    fn status_and_bit_lines_of_an_uncorrectable_report_are_critical() {
        let mut ctx = Context::default();
        let d = "nvme 0000:03:00.0:";
        let (h, _) = judge(&mut ctx, 3, &format!("{d} PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Requester ID)"));
        assert_eq!(h, Some(v(Aer, true)));
        let (b, _) = judge(
            &mut ctx,
            3,
            &format!("{d}    [14] CmpltTO                (First)"),
        );
        assert_eq!(b, Some(v(Aer, true)));
        let (c, _) = judge(
            &mut ctx,
            4,
            &format!("{d} PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)"),
        );
        assert_eq!(c, Some(v(Aer, false)));
        let (b, _) = judge(&mut ctx, 4, &format!("{d}    [ 0] RxErr"));
        assert_eq!(b, Some(v(Aer, false)));
    }

    #[test]
    fn a_cper_pcie_section_names_its_device_on_the_lines_after_it() {
        let mut ctx = Context::default();
        for (msg, cat, addr) in [
            ("{3}[Hardware Error]:   section_type: PCIe error", Aer, None),
            (
                "{3}[Hardware Error]:   device_id: 0000:40:01.2",
                Aer,
                Some("0000:40:01.2"),
            ),
            (
                "{3}[Hardware Error]:   class_code: 060400",
                Aer,
                Some("0000:40:01.2"),
            ),
            (
                "{4}[Hardware Error]:   section_type: memory error",
                Mce,
                None,
            ),
        ] {
            let (got, a) = judge(&mut ctx, 3, msg);
            assert_eq!(got.map(|g| g.category), Some(cat), "{msg}");
            assert_eq!(a.as_deref(), addr, "{msg}");
        }
    }

    #[test]
    fn boot_lines_and_bert_are_not_events_at_any_level() {
        for msg in [
            "pcieport 0000:00:1c.0: AER: enabled with IRQ 122",
            "pcieport 0000:00:1c.0: DPC: error containment capabilities: Int Msg #0, RPExt+ PoisonedTLP+ SwTrigger+ RP PIO Log 4, DL_ActiveErr+",
            "NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.",
            "mce: CPU supports 22 MCE banks",
            "BERT: [Hardware Error]: Skipped 1 error records",
            "pci 0000:00:1c.0: [8086:a110] type 01 class 0x060400 PCIe Root Port",
        ] {
            let mut ctx = Context::default();
            assert_eq!(judge(&mut ctx, 3, msg).0, None, "{msg}");
        }
    }
}
