//! The node's readiness at the silence, from its last `crash_forensics` and
//! `pcie_platform` points: what evidence it could not keep, and the `vigil
//! doctor` findings (same ids, titles and fixes) that would have kept it.

use serde::Serialize;
use vigil_collector::forensics::findings::{findings, Finding, PlatformFacts};
use vigil_collector::forensics::setup::Setup;
use vigil_collector::forensics::Forensics;

use super::influx::Row;
use super::time::span;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Readiness {
    pub score: Option<i64>,
    pub finding_ids: Vec<String>,
    /// Evidence the node could not keep, in plain words.
    pub lost: Vec<String>,
    /// Crash records found after the reboot (pstore), when vigil saw them.
    pub pstore_records_after: Option<i64>,
}

fn flag(r: &Row<'_>, f: &str) -> Option<bool> {
    r.i64(f).map(|v| v != 0)
}

/// Rebuilds the facts the doctor judges from what was stored.
fn facts(cf: &Row<'_>, plat: Option<&Row<'_>>) -> (Forensics, PlatformFacts) {
    let s = |f: &str| cf.str(f).map(str::to_string);
    let f = Forensics {
        journal_storage: s("journal_storage").unwrap_or_else(|| "auto".into()),
        journal_persistent: flag(cf, "journal_persistent"),
        journal_fs: s("journal_fs"),
        var_log_in_ram: flag(cf, "var_log_in_ram"),
        ram_logger: s("ram_logger"),
        log_disk_sync_age_s: cf.i64("log_disk_sync_age_s"),
        remote_logging: s("remote_logging_via")
            .map(|v| {
                v.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        netconsole: flag(cf, "netconsole"),
        pstore_backend: s("pstore_backend"),
        pstore_records: cf.i64("pstore_records").map(|v| v.max(0) as u64),
        kdump_loaded: flag(cf, "kdump_loaded"),
        crashkernel_bytes: cf.i64("crashkernel_bytes").map(|v| v.max(0) as u64),
        hardlockup_panic: flag(cf, "hardlockup_panic"),
        panic_reboot_s: cf.i64("panic_reboot_s"),
        hw_watchdog: flag(cf, "hw_watchdog"),
        ..Forensics::default()
    };
    let p = PlatformFacts {
        cmdline: plat.and_then(|p| p.str("cmdline")).map(str::to_string),
        aer_cmdline_disabled: plat.and_then(|p| flag(p, "aer_cmdline_disabled")),
        aer_native: plat.and_then(|p| flag(p, "aer_native")),
        aspm_cmdline: plat.and_then(|p| p.str("aspm_cmdline")).map(str::to_string),
        hw_aspm_enabled: Vec::new(),
    };
    (f, p)
}

/// A `vigil doctor` finding as the node reported it then, in the doctor's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    pub id: String,
    pub title: String,
    pub why: String,
    pub fix: Vec<String>,
}

/// The findings vigil reported then (`finding_ids`), worded by `vigil doctor`
/// from the facts stored beside them (what the node had installed is not
/// stored, so the fixes are the generic ones).
pub fn fixes(cf: Option<&Row<'_>>, plat: Option<&Row<'_>>) -> Vec<Fix> {
    let Some(cf) = cf else { return Vec::new() };
    let (f, p) = facts(cf, plat);
    let rebuilt = findings(&f, &p);
    let setup = Setup::default();
    ids(cf)
        .into_iter()
        .map(|id| {
            let prose = match rebuilt.iter().find(|x| x.id == id) {
                Some(found) => crate::doctor::prose(found, Some(&f), &setup),
                None => {
                    // The doctor words findings by id; one it does not know gets its fallback.
                    let id: &'static str = Box::leak(id.clone().into_boxed_str());
                    crate::doctor::prose(
                        &Finding {
                            id,
                            weight: 0,
                            seen: Vec::new(),
                        },
                        Some(&f),
                        &setup,
                    )
                }
            };
            Fix {
                id,
                title: prose.title,
                why: prose.why.to_string(),
                fix: prose.fix,
            }
        })
        .collect()
}

fn ids(cf: &Row<'_>) -> Vec<String> {
    cf.str("finding_ids")
        .unwrap_or("")
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn readiness(
    cf: Option<&Row<'_>>,
    plat: Option<&Row<'_>>,
    after: Option<&Row<'_>>,
) -> Readiness {
    let mut r = Readiness {
        pstore_records_after: after.and_then(|a| a.i64("pstore_records")),
        ..Readiness::default()
    };
    if let Some(cf) = cf {
        r.score = cf.i64("readiness_score");
        r.finding_ids = ids(cf);
        r.lost = lost(cf, plat);
    }
    if r.pstore_records_after == Some(0) {
        r.lost
            .push("after the reboot: no pstore record of the crash".into());
    }
    r
}

fn lost(cf: &Row<'_>, plat: Option<&Row<'_>>) -> Vec<String> {
    let mut out = Vec::new();
    match (cf.str("ram_logger"), cf.i64("log_disk_sync_age_s")) {
        (Some(l), Some(a)) => out.push(format!(
            "logs in RAM ({l}): the last {} had not reached the disk",
            span(a)
        )),
        (Some(l), None) => out.push(format!("logs in RAM ({l})")),
        _ if flag(cf, "var_log_in_ram") == Some(true) => out.push("/var/log in RAM".into()),
        _ => {}
    }
    if flag(cf, "journal_persistent") == Some(false) {
        out.push("journal not on a disk".into());
    }
    if flag(cf, "remote_logging") == Some(false) {
        out.push("no log left the node".into());
    }
    if flag(cf, "kdump_loaded") == Some(false) {
        out.push("no kdump: no crash dump".into());
    }
    if cf.str("pstore_backend") == Some("none") {
        out.push("no pstore backend: no panic record".into());
    }
    if plat.and_then(|p| flag(p, "aer_cmdline_disabled")) == Some(true) {
        out.push("pci=noaer: PCIe errors were neither counted nor logged".into());
    }
    out
}
