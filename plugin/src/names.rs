//! The output's names for values the library returns as enums, bits and
//! kernel strings: event categories, AER severities, AER counter field names
//! and the register bits of `pcie_aer_status`. With `convert.rs` (measurement,
//! tag and field names) and the collector table (`vigil_collector::collector`,
//! collector names) this is every name vigil writes.

use vigil_collector::kmsg::Category;
use vigil_collector::pci::Severity;

/// `kernel_event,category=...`.
pub fn category(c: Category) -> &'static str {
    match c {
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
        Category::Panic => "panic",
        Category::Other => "other",
    }
}

/// `pcie_aer,severity=...`.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Correctable => "correctable",
        Severity::Nonfatal => "nonfatal",
        Severity::Fatal => "fatal",
    }
}

/// The contract's field name for an AER counter (metrics.md `pcie_aer`):
/// split before an upper-case letter that follows a lower-case letter or digit,
/// and between an acronym and a following capitalised word; spaces become `_`;
/// `dev_*_errs_bit[N]` becomes `bit_N`.
pub fn aer_field_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("dev_") {
        if let Some(open) = rest.find("_bit[") {
            let n = rest[open + 5..].trim_end_matches(']');
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
                return format!("bit_{n}");
            }
        }
    }
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('_');
        }
    }
    // Collapse runs and trim so names stay `^[a-z][a-z0-9_]*$`-like.
    let mut clean = String::with_capacity(out.len());
    for c in out.chars() {
        if c == '_' && (clean.is_empty() || clean.ends_with('_')) {
            continue;
        }
        clean.push(c);
    }
    while clean.ends_with('_') {
        clean.pop();
    }
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert_str(0, "n_");
    }
    clean
}

/// lspci's names for Uncorrectable Error Status bits (UESta), by bit.
pub const UNCOR_NAMES: [(u32, &str); 21] = [
    (4, "DLP"),
    (5, "SDES"),
    (12, "TLP"),
    (13, "FCP"),
    (14, "CmpltTO"),
    (15, "CmpltAbrt"),
    (16, "UnxCmplt"),
    (17, "RxOF"),
    (18, "MalfTLP"),
    (19, "ECRC"),
    (20, "UnsupReq"),
    (21, "ACSViol"),
    (22, "UncorrIntErr"),
    (23, "BlockedTLP"),
    (24, "AtomicOpBlocked"),
    (25, "TLPBlockedErr"),
    (26, "PoisonTLPBlocked"),
    (27, "DMWrReqBlocked"),
    (28, "IDECheck"),
    (29, "MisIDETLP"),
    (30, "PCRC_CHECK"),
];

/// lspci's names for Correctable Error Status bits (CESta), by bit.
pub const COR_NAMES: [(u32, &str); 8] = [
    (0, "RxErr"),
    (6, "BadTLP"),
    (7, "BadDLLP"),
    (8, "Rollover"),
    (12, "Timeout"),
    (13, "AdvNonFatalErr"),
    (14, "CorrIntErr"),
    (15, "HeaderOF"),
];

/// Names of the set bits, comma-separated, in bit order; unnamed bits as `bitN`.
pub fn bit_names(value: u32, names: &[(u32, &str)]) -> String {
    let mut out = String::new();
    for bit in 0..32 {
        if value & (1 << bit) == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match names.iter().find(|(b, _)| *b == bit) {
            Some((_, n)) => out.push_str(n),
            None => {
                out.push_str("bit");
                out.push_str(&bit.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aer_names_follow_the_contract() {
        for (k, want) in [
            ("RxErr", "rx_err"),
            ("BadTLP", "bad_tlp"),
            ("BadDLLP", "bad_dllp"),
            ("Rollover", "rollover"),
            ("Timeout", "timeout"),
            ("NonFatalErr", "non_fatal_err"),
            ("CorrIntErr", "corr_int_err"),
            ("HeaderOF", "header_of"),
            ("CmpltTO", "cmplt_to"),
            ("UnsupReq", "unsup_req"),
            ("dev_fatal_errs_bit[27]", "bit_27"),
            ("dev_cor_errs_bit[3]", "bit_3"),
            ("Receiver Error", "receiver_error"),
            ("TLPBlockedErr", "tlp_blocked_err"),
            ("PoisonTLPBlocked", "poison_tlp_blocked"),
            ("PCRC_CHECK", "pcrc_check"),
            ("DMWrReqBlocked", "dm_wr_req_blocked"),
            ("ACSViol", "acs_viol"),
            ("RELAY_NUM Rollover", "relay_num_rollover"),
            ("Undefined", "undefined"),
        ] {
            assert_eq!(aer_field_name(k), want, "{k}");
        }
    }
}
