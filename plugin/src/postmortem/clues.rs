//! What happened in the minutes before a silence: pure functions from the
//! series InfluxDB returned to clues (one observation, with its evidence).
//! Weights rank suspects: a change right before the silence outweighs a
//! state that held all along; a state that held all along is context.

use serde::Serialize;

use super::influx::{Row, Series};
use super::time::clock;

/// One observed value behind a clue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub measurement: String,
    pub field: String,
    pub value: String,
    /// RFC 3339 in JSON; None for a state that held the whole window.
    #[serde(serialize_with = "ser_time")]
    pub time: Option<i64>,
}

fn ser_time<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&super::time::rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// One observation about a device (`address`) or the whole node (`cause`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clue {
    pub address: Option<String>,
    pub cause: Option<String>,
    pub what: String,
    pub weight: u32,
    pub evidence: Vec<Evidence>,
}

/// A clue at or above this weight explains a silence (exit 0); below, it is context.
pub const EXPLAINS: u32 = 30;

fn ev(m: &str, field: &str, value: String, time: Option<i64>) -> Evidence {
    Evidence {
        measurement: m.into(),
        field: field.into(),
        value,
        time,
    }
}

fn device(address: &str, what: String, weight: u32, evidence: Vec<Evidence>) -> Clue {
    Clue {
        address: Some(address.into()),
        cause: None,
        what,
        weight,
        evidence,
    }
}

pub fn platform(cause: &str, what: String, weight: u32, evidence: Vec<Evidence>) -> Clue {
    Clue {
        address: None,
        cause: Some(cause.into()),
        what,
        weight,
        evidence,
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Each change of `field` along a series: (time, before, after).
fn transitions<T: PartialEq + Clone>(
    rows: &[Row<'_>],
    get: impl Fn(&Row<'_>) -> Option<T>,
) -> Vec<(i64, T, T)> {
    let mut out = Vec::new();
    let mut prev: Option<T> = None;
    for r in rows {
        let Some(v) = get(r) else { continue };
        if let Some(p) = &prev {
            if *p != v {
                out.push((r.time, p.clone(), v.clone()));
            }
        }
        prev = Some(v);
    }
    out
}

/// Link speed, width and state changes, and downgrades, of one device.
pub fn link(s: &Series) -> Vec<Clue> {
    let a = s.tag("address");
    let rows: Vec<Row> = s.rows().collect();
    let mut out = Vec::new();
    for (t, from, to) in transitions(&rows, |r| r.i64("link_up")) {
        let (what, w) = if to == 0 {
            ("link went down", 80)
        } else {
            ("link came back up", 40)
        };
        let e = ev("pcie_link", "link_up", format!("{from} -> {to}"), Some(t));
        out.push(device(a, format!("{what} at {}", clock(t)), w, vec![e]));
    }
    out.extend(speed_and_width(a, &rows));
    for field in ["speed_downgraded", "width_downgraded"] {
        out.extend(downgrade(a, &rows, field));
    }
    out
}

/// Speed and width changes, only while the link is up: a down link reads width 0.
fn speed_and_width(a: &str, rows: &[Row<'_>]) -> Vec<Clue> {
    let up: Vec<Row> = rows
        .iter()
        .copied()
        .filter(|r| r.i64("link_up") != Some(0) && r.i64("width") != Some(0))
        .collect();
    let mut out = Vec::new();
    for (field, unit) in [("speed_gts", " GT/s"), ("width", " lanes")] {
        for (t, from, to) in transitions(&up, |r| r.f64(field)) {
            let (dir, w) = if to < from {
                ("dropped", 55)
            } else {
                ("rose", 20)
            };
            let (f, n) = (fmt_num(from), fmt_num(to));
            let name = field.trim_end_matches("_gts");
            let what = format!("link {name} {dir} {f}{unit} -> {n}{unit} at {}", clock(t));
            out.push(device(
                a,
                what,
                w,
                vec![ev("pcie_link", field, format!("{f} -> {n}"), Some(t))],
            ));
        }
    }
    out
}

/// A downgrade flag that rose in the window (a clue) or held all along (context).
fn downgrade(a: &str, rows: &[Row<'_>], field: &str) -> Option<Clue> {
    let flags: Vec<i64> = rows.iter().filter_map(|r| r.i64(field)).collect();
    if !flags.contains(&1) {
        return None;
    }
    let (value, expected) = match field {
        "speed_downgraded" => ("speed_gts", "expected_speed_gts"),
        _ => ("width", "expected_width"),
    };
    let flagged = rows.iter().rev().find(|r| r.i64(field) == Some(1));
    let detail = match (
        flagged.and_then(|r| r.f64(value)),
        flagged.and_then(|r| r.f64(expected)),
    ) {
        (Some(n), Some(e)) => format!(" ({} of {} expected)", fmt_num(n), fmt_num(e)),
        _ => String::new(),
    };
    let (w, when, t) = if flags.iter().all(|f| *f == 1) {
        (15, "all window".to_string(), None)
    } else {
        let t = transitions(rows, |r| r.i64(field))
            .into_iter()
            .find(|x| x.2 == 1)
            .map(|x| x.0);
        (
            50,
            t.map_or_else(String::new, |t| format!("from {}", clock(t))),
            t,
        )
    };
    let what = format!("{field}{detail} {when}").trim().to_string();
    Some(device(
        a,
        what,
        w,
        vec![ev("pcie_link", field, "1".into(), t)],
    ))
}

/// AER counters that went up, per device and severity.
pub fn aer(s: &Series) -> Vec<Clue> {
    let a = s.tag("address");
    let sev = s.tag("severity");
    let rows: Vec<Row> = s.rows().collect();
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Vec::new();
    };
    let mut evidence = Vec::new();
    let mut total = 0;
    for col in s
        .columns
        .iter()
        .filter(|c| !matches!(c.as_str(), "time" | "rootport_total") && !s.tags.contains_key(*c))
    {
        let (Some(v0), Some(v1)) = (first.i64(col), last.i64(col)) else {
            continue;
        };
        if v1 <= v0 {
            continue;
        }
        let t = rows
            .iter()
            .find(|r| r.i64(col).is_some_and(|v| v > v0))
            .map(|r| r.time);
        if col == "total" {
            total = v1 - v0;
        }
        evidence.push(ev(
            "pcie_aer",
            col,
            format!("+{} ({v0} -> {v1})", v1 - v0),
            t,
        ));
    }
    if evidence.is_empty() {
        return Vec::new();
    }
    let w = match sev {
        "fatal" => 85,
        "nonfatal" => 65,
        _ => 35,
    };
    let named: Vec<&str> = evidence
        .iter()
        .map(|e| e.field.as_str())
        .filter(|f| *f != "total")
        .collect();
    let what = format!("{total} {sev} AER error(s) counted ({})", named.join(", "));
    vec![device(a, what, w, evidence)]
}

/// Device Status and AER status bits, and DPC triggers.
pub fn status(s: &Series) -> Vec<Clue> {
    let a = s.tag("address");
    let rows: Vec<Row> = s.rows().collect();
    let mut out = Vec::new();
    let bits = [
        ("dpc_triggered", "DPC contained (disabled) the link", 90, 25),
        (
            "devsta_fatal_err",
            "Device Status: fatal error detected",
            70,
            20,
        ),
        (
            "devsta_nonfatal_err",
            "Device Status: non-fatal error detected",
            55,
            15,
        ),
        (
            "devsta_unsupp_req",
            "Device Status: unsupported request",
            40,
            10,
        ),
        (
            "devsta_corr_err",
            "Device Status: correctable error detected",
            30,
            5,
        ),
    ];
    for (field, what, new_w, old_w) in bits {
        let vals: Vec<(i64, i64)> = rows
            .iter()
            .filter_map(|r| Some((r.time, r.i64(field)?)))
            .collect();
        if !vals.iter().any(|v| v.1 != 0) {
            continue;
        }
        let kind = if field == "devsta_corr_err" {
            "cor_status_names"
        } else {
            "uncor_status_names"
        };
        let names = rows
            .iter()
            .rev()
            .find_map(|r| r.str(kind).filter(|n| !n.is_empty()));
        let extra = names.map_or_else(String::new, |n| format!(" ({n})"));
        if vals[0].1 != 0 {
            out.push(device(
                a,
                format!("{what}{extra}, set all window"),
                old_w,
                vec![ev("pcie_aer_status", field, "1".into(), None)],
            ));
        } else if let Some((t, _)) = vals.iter().find(|v| v.1 != 0) {
            let mut e = vec![ev("pcie_aer_status", field, "0 -> 1".into(), Some(*t))];
            if let Some(n) = names {
                e.push(ev(
                    "pcie_aer_status",
                    "uncor_status_names/cor_status_names",
                    n.into(),
                    Some(*t),
                ));
            }
            out.push(device(
                a,
                format!("{what}{extra} at {}", clock(*t)),
                new_w,
                e,
            ));
        }
    }
    out
}

/// Power-state and driver changes; a device that stopped answering.
pub fn device_changes(s: &Series) -> Vec<Clue> {
    let a = s.tag("address");
    let rows: Vec<Row> = s.rows().collect();
    let mut out = Vec::new();
    for (field, w) in [("power_state", 40), ("driver", 40)] {
        for (t, from, to) in transitions(&rows, |r| r.str(field).map(str::to_string)) {
            out.push(device(
                a,
                format!("{field} {from} -> {to} at {}", clock(t)),
                w,
                vec![ev("pcie_device", field, format!("{from} -> {to}"), Some(t))],
            ));
        }
    }
    if let Some(r) = rows.iter().find(|r| r.i64("reachable") == Some(0)) {
        out.push(device(
            a,
            format!(
                "fell off the bus (config space read all ones) at {}",
                clock(r.time)
            ),
            95,
            vec![ev("pcie_device", "reachable", "0".into(), Some(r.time))],
        ));
    }
    out
}

/// Which VM held a passthrough device, and when that changed.
pub fn vfio(s: &Series) -> Vec<Clue> {
    let a = s.tag("address");
    let rows: Vec<Row> = s.rows().collect();
    let holder = |r: &Row<'_>| -> Option<String> {
        match r.i64("in_use") {
            Some(0) => Some("nobody".into()),
            Some(_) => Some(match (r.str("vmid"), r.str("holder")) {
                (Some(v), Some(h)) => format!("VM {v} ({h})"),
                (Some(v), None) => format!("VM {v}"),
                (None, Some(h)) => h.to_string(),
                (None, None) => "a process".into(),
            }),
            None => None,
        }
    };
    let mut out = Vec::new();
    for (t, from, to) in transitions(&rows, holder) {
        out.push(device(
            a,
            format!("holder changed at {}: {from} -> {to}", clock(t)),
            45,
            vec![ev(
                "vfio_device",
                "vmid/holder",
                format!("{from} -> {to}"),
                Some(t),
            )],
        ));
    }
    for (t, from, to) in transitions(&rows, |r| r.str("power_state").map(str::to_string)) {
        out.push(device(
            a,
            format!("passthrough device power {from} -> {to} at {}", clock(t)),
            40,
            vec![ev(
                "vfio_device",
                "power_state",
                format!("{from} -> {to}"),
                Some(t),
            )],
        ));
    }
    if let Some(last) = rows.last() {
        if let Some(h) = holder(last).filter(|h| h != "nobody") {
            let mut e = vec![ev("vfio_device", "in_use", "1".into(), Some(last.time))];
            if let Some(v) = last.str("vmid") {
                e.push(ev("vfio_device", "vmid", v.into(), Some(last.time)));
            }
            out.push(device(
                a,
                format!("passed through to {h} at the silence (circumstantial)"),
                10,
                e,
            ));
        }
    }
    out
}

/// Kernel hardware events: by device when they name one, else by category.
pub fn kernel_events(s: &Series) -> Vec<Clue> {
    s.rows()
        .map(|r| {
            let cat = r.str("category").unwrap_or("other");
            let msg = r.str("message").unwrap_or("");
            let w = match cat {
                "aer" | "dpc" | "mce" => 80,
                "gpu_xid" => 75,
                "pcie_link" | "lockup" | "hung_task" | "rcu_stall" => 70,
                "iommu_fault" => 65,
                "vfio" => 40,
                _ => 30,
            };
            let e = vec![ev("kernel_event", "message", msg.to_string(), Some(r.time))];
            let what = format!(
                "kernel {cat} at {}: {}",
                clock(r.time),
                msg.chars().take(120).collect::<String>()
            );
            match r.str("address").filter(|a| !a.is_empty()) {
                Some(a) => device(a, what, w, e),
                None => platform(&format!("kernel {cat}"), what, w, e),
            }
        })
        .collect()
}

/// A suspect: every clue about one device, or about one platform-wide cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    pub rank: usize,
    pub address: Option<String>,
    pub cause: Option<String>,
    pub name: Option<String>,
    pub score: u32,
    pub explains: bool,
    pub findings: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// Groups clues by device or cause; score = strongest clue plus a tenth of
/// the others, so corroborating evidence breaks ties without outvoting.
pub fn rank(mut clues: Vec<Clue>, name_of: impl Fn(&str) -> Option<String>) -> Vec<Suspect> {
    // Strongest first, so each suspect's findings and evidence read in that order.
    clues.sort_by_key(|c| std::cmp::Reverse(c.weight));
    let mut out: Vec<Suspect> = Vec::new();
    for c in clues {
        let key = (c.address.clone(), c.cause.clone());
        let i = match out
            .iter()
            .position(|s| (s.address.clone(), s.cause.clone()) == key)
        {
            Some(i) => i,
            None => {
                out.push(Suspect {
                    rank: 0,
                    name: c.address.as_deref().and_then(&name_of),
                    address: c.address.clone(),
                    cause: c.cause.clone(),
                    score: 0,
                    explains: false,
                    findings: Vec::new(),
                    evidence: Vec::new(),
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.findings.push(c.what);
        s.evidence.extend(c.evidence);
        s.score = (s.score.max(c.weight) + c.weight.min(s.score) / 10).min(100);
        s.explains |= c.weight >= EXPLAINS;
    }
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.address.cmp(&b.address))
    });
    for (i, s) in out.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn series(
        name: &str,
        tags: &[(&str, &str)],
        cols: &[&str],
        rows: Vec<serde_json::Value>,
    ) -> Series {
        Series {
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            values: rows
                .into_iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect(),
        }
    }
    const S: i64 = 1_000_000_000;

    #[test]
    fn a_link_that_narrows_then_drops_is_ranked_by_the_drop() {
        let s = series(
            "pcie_link",
            &[("address", "0000:01:00.0")],
            &[
                "time",
                "speed_gts",
                "width",
                "link_up",
                "width_downgraded",
                "expected_width",
            ],
            vec![
                json!([0, 16.0, 16, 1, 0, 16]),
                json!([10 * S, 16.0, 8, 1, 1, 16]),
                json!([20 * S, 2.5, 8, 1, 1, 16]),
                json!([30 * S, null, 0, 0, 0, 16]),
            ],
        );
        let clues = link(&s);
        let whats: Vec<&str> = clues.iter().map(|c| c.what.as_str()).collect();
        assert!(whats.contains(&"link went down at 00:00:30"), "{whats:?}");
        assert!(whats
            .iter()
            .any(|w| w.starts_with("link width dropped 16 lanes -> 8 lanes")));
        assert!(whats
            .iter()
            .any(|w| w.starts_with("link speed dropped 16 GT/s -> 2.5 GT/s")));
        assert!(
            whats
                .iter()
                .any(|w| w.starts_with("width_downgraded (8 of 16 expected) from 00:00:10")),
            "{whats:?}"
        );
        let ranked = rank(clues, |_| Some("GPU".into()));
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].name.as_deref(), Some("GPU"));
        assert!(ranked[0].score >= 80 && ranked[0].explains);
    }

    #[test]
    fn a_steady_link_says_nothing_and_a_standing_downgrade_is_context() {
        let steady = series(
            "pcie_link",
            &[("address", "a")],
            &["time", "speed_gts", "width", "link_up"],
            vec![json!([0, 8.0, 4, 1]), json!([10 * S, 8.0, 4, 1])],
        );
        assert!(link(&steady).is_empty());
        let standing = series(
            "pcie_link",
            &[("address", "a")],
            &["time", "width", "width_downgraded", "expected_width"],
            vec![json!([0, 4, 1, 16]), json!([10 * S, 4, 1, 16])],
        );
        let c = link(&standing);
        assert_eq!(c.len(), 1);
        assert!(c[0].weight < EXPLAINS);
    }

    #[test]
    fn aer_increases_name_the_counters_and_the_first_time() {
        let s = series(
            "pcie_aer",
            &[("address", "0000:00:01.0"), ("severity", "fatal")],
            &["time", "total", "surprise_down", "dlp"],
            vec![
                json!([0, 0, 0, 0]),
                json!([10 * S, 0, 0, 0]),
                json!([20 * S, 1, 1, 0]),
            ],
        );
        let c = aer(&s);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].weight, 85);
        assert_eq!(c[0].what, "1 fatal AER error(s) counted (surprise_down)");
        assert_eq!(c[0].evidence[0].time, Some(20 * S));
        let flat = series(
            "pcie_aer",
            &[("address", "x"), ("severity", "correctable")],
            &["time", "total"],
            vec![json!([0, 7]), json!([10 * S, 7])],
        );
        assert!(aer(&flat).is_empty());
    }

    #[test]
    fn status_bits_new_versus_latched_and_dpc() {
        let s = series(
            "pcie_aer_status",
            &[("address", "p")],
            &[
                "time",
                "devsta_corr_err",
                "devsta_fatal_err",
                "dpc_triggered",
                "uncor_status_names",
            ],
            vec![
                json!([0, 1, 0, 0, ""]),
                json!([10 * S, 1, 1, 1, "SurpDown"]),
            ],
        );
        let c = status(&s);
        let w: Vec<(u32, &str)> = c.iter().map(|c| (c.weight, c.what.as_str())).collect();
        assert!(
            w.contains(&(
                90,
                "DPC contained (disabled) the link (SurpDown) at 00:00:10"
            )),
            "{w:?}"
        );
        assert!(
            w.iter().any(|x| x.0 == 5),
            "latched CorrErr is context: {w:?}"
        );
    }

    #[test]
    fn vfio_holder_changes_and_the_holder_at_the_silence() {
        let s = series(
            "vfio_device",
            &[("address", "0000:01:00.0")],
            &["time", "in_use", "vmid", "holder", "power_state"],
            vec![
                json!([0, 0, null, null, "D3hot"]),
                json!([10 * S, 1, "101", "kvm", "D0"]),
                json!([20 * S, 1, "101", "kvm", "D0"]),
            ],
        );
        let c = vfio(&s);
        let whats: Vec<&str> = c.iter().map(|c| c.what.as_str()).collect();
        assert!(
            whats.contains(&"holder changed at 00:00:10: nobody -> VM 101 (kvm)"),
            "{whats:?}"
        );
        assert!(whats.contains(&"passthrough device power D3hot -> D0 at 00:00:10"));
        assert!(whats.contains(&"passed through to VM 101 (kvm) at the silence (circumstantial)"));
    }

    #[test]
    fn events_group_by_device_or_category_and_rank() {
        let s = series(
            "kernel_event",
            &[],
            &["time", "category", "address", "message"],
            vec![
                json!([
                    5 * S,
                    "gpu_xid",
                    "0000:01:00.0",
                    "NVRM: Xid 79, GPU has fallen off the bus."
                ]),
                json!([
                    6 * S,
                    "lockup",
                    null,
                    "watchdog: BUG: soft lockup - CPU#3 stuck for 22s!"
                ]),
            ],
        );
        let r = rank(kernel_events(&s), |_| None);
        assert_eq!(r[0].address.as_deref(), Some("0000:01:00.0"));
        assert_eq!(r[1].cause.as_deref(), Some("kernel lockup"));
        assert_eq!((r[0].rank, r[1].rank), (1, 2));
    }

    #[test]
    fn device_falls_off_the_bus() {
        let s = series(
            "pcie_device",
            &[("address", "g")],
            &["time", "driver", "power_state", "reachable"],
            vec![
                json!([0, "vfio-pci", "D0", 1]),
                json!([10 * S, "vfio-pci", "D0", 0]),
            ],
        );
        let c = device_changes(&s);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].weight, 95);
    }
}
