//! The standard Telegraf inputs in the minutes before a silence, read as the
//! investigation read them by hand: one short verdict per resource.

use serde::Serialize;

use super::clues::{platform, Clue, Evidence};
use super::influx::Series;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub resource: &'static str,
    /// `normal`, `anomalous`, or `absent` (the input was not collected).
    pub verdict: &'static str,
    pub summary: String,
}

fn one(s: &[Series]) -> Option<super::influx::Row<'_>> {
    s.first()?.rows().next()
}

fn verdict(resource: &'static str, bad: bool, summary: String) -> Verdict {
    Verdict {
        resource,
        verdict: if bad { "anomalous" } else { "normal" },
        summary,
    }
}

fn absent(resource: &'static str) -> Verdict {
    Verdict {
        resource,
        verdict: "absent",
        summary: "not collected".into(),
    }
}

/// `cpu` (cpu-total): saturated when idle stays under 5% or ends under 2%,
/// or iowait over 30%.
pub fn cpu(s: &[Series]) -> Verdict {
    let Some(r) = one(s) else {
        return absent("cpu");
    };
    let (Some(idle), Some(min)) = (r.f64("idle"), r.f64("idle_min")) else {
        return absent("cpu");
    };
    let last = r.f64("idle_last").unwrap_or(idle);
    let iowait = r.f64("iowait_max").unwrap_or(0.0);
    let bad = idle < 5.0 || last < 2.0 || iowait > 30.0;
    verdict(
        "cpu",
        bad,
        format!("idle {idle:.1}% mean, lowest {min:.2}%; iowait max {iowait:.1}%"),
    )
}

pub fn mem(s: &[Series]) -> Verdict {
    let Some(r) = one(s) else {
        return absent("mem");
    };
    let Some(used) = r.f64("used") else {
        return absent("mem");
    };
    let max = r.f64("used_max").unwrap_or(used);
    let avail = r.f64("avail_min");
    let bad = max > 95.0 || avail.is_some_and(|a| a < 3.0);
    let a = avail.map_or_else(String::new, |a| format!(", available at least {a:.1}%"));
    verdict(
        "mem",
        bad,
        format!("used {used:.1}% mean, max {max:.1}%{a}"),
    )
}

pub fn system(s: &[Series]) -> Verdict {
    let Some(r) = one(s) else {
        return absent("system");
    };
    let Some(load) = r.f64("load_max") else {
        return absent("system");
    };
    let cpus = r.f64("cpus");
    let bad = cpus.is_some_and(|c| c > 0.0 && load > 4.0 * c);
    let c = cpus.map_or_else(String::new, |c| format!(" on {c:.0} CPUs"));
    verdict("system", bad, format!("load1 max {load:.2}{c}"))
}

/// `net` per interface: errors are anomalous; drops and traffic are reported.
pub fn net(s: &[Series], window_s: f64) -> Verdict {
    let mut rx = 0.0;
    let mut tx = 0.0;
    let mut errs = Vec::new();
    let mut drops = 0.0;
    let mut any = false;
    for series in s {
        let Some(r) = series.rows().next() else {
            continue;
        };
        any = true;
        rx += r.f64("rx").unwrap_or(0.0);
        tx += r.f64("tx").unwrap_or(0.0);
        drops += r.f64("di").unwrap_or(0.0) + r.f64("dout").unwrap_or(0.0);
        let e = r.f64("ei").unwrap_or(0.0) + r.f64("eo").unwrap_or(0.0);
        if e > 0.0 {
            errs.push(format!("{} +{e:.0} errors", series.tag("interface")));
        }
    }
    if !any {
        return absent("net");
    }
    let rate = |b: f64| b * 8.0 / window_s / 1e6;
    let mut summary = format!(
        "{:.2} Mbit/s in, {:.2} Mbit/s out, {drops:.0} drops",
        rate(rx),
        rate(tx)
    );
    if !errs.is_empty() {
        summary.push_str(&format!("; {}", errs.join(", ")));
    }
    verdict("net", !errs.is_empty(), summary)
}

/// `diskio` per device: a disk busy over 95% of the window is anomalous.
pub fn diskio(s: &[Series], window_s: f64) -> Verdict {
    let mut busiest: Option<(String, f64)> = None;
    for series in s {
        let Some(r) = series.rows().next() else {
            continue;
        };
        let busy = r.f64("busy_ms").unwrap_or(0.0) / 10.0 / window_s;
        if busiest.as_ref().is_none_or(|b| busy > b.1) {
            busiest = Some((series.tag("name").to_string(), busy));
        }
    }
    match busiest {
        None => absent("diskio"),
        Some((name, busy)) => verdict(
            "diskio",
            busy > 95.0,
            format!("busiest disk {name} {busy:.1}% busy"),
        ),
    }
}

/// Anomalous resources become platform-wide clues.
pub fn clues(verdicts: &[Verdict]) -> Vec<Clue> {
    verdicts
        .iter()
        .filter(|v| v.verdict == "anomalous")
        .map(|v| {
            let w = match v.resource {
                "mem" => 60,
                "cpu" => 45,
                _ => 35,
            };
            let e = Evidence {
                measurement: v.resource.into(),
                field: "window".into(),
                value: v.summary.clone(),
                time: None,
            };
            platform(
                &format!("{} exhausted", v.resource),
                format!("{}: {}", v.resource, v.summary),
                w,
                vec![e],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(cols: &[&str], row: serde_json::Value, tags: &[(&str, &str)]) -> Series {
        Series {
            name: "x".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            values: vec![row.as_array().cloned().unwrap_or_default()],
        }
    }

    #[test]
    fn the_incident_resources_are_normal() {
        let c = cpu(&[s(
            &["time", "idle", "idle_min", "idle_last", "iowait_max"],
            json!([0, 99.81, 99.78, 99.85, 0.02]),
            &[],
        )]);
        assert_eq!(
            (c.verdict, c.summary.as_str()),
            ("normal", "idle 99.8% mean, lowest 99.78%; iowait max 0.0%")
        );
        let m = mem(&[s(
            &["time", "used", "used_max", "avail_min"],
            json!([0, 7.4, 7.41, 91.2]),
            &[],
        )]);
        assert_eq!(m.verdict, "normal");
        let n = net(
            &[s(
                &["time", "rx", "tx", "ei", "eo", "di", "dout"],
                json!([0, 7.5e6, 3.0e6, 0, 0, 2, 0]),
                &[("interface", "vmbr0")],
            )],
            600.0,
        );
        assert_eq!(
            (n.verdict, n.summary.as_str()),
            ("normal", "0.10 Mbit/s in, 0.04 Mbit/s out, 2 drops")
        );
        assert_eq!(diskio(&[], 600.0).verdict, "absent");
        assert!(clues(&[c, m, n]).is_empty());
    }

    #[test]
    fn exhaustion_is_anomalous_and_a_clue() {
        let m = mem(&[s(
            &["time", "used", "used_max", "avail_min"],
            json!([0, 90.0, 99.5, 0.4]),
            &[],
        )]);
        assert_eq!(m.verdict, "anomalous");
        let c = cpu(&[s(
            &["time", "idle", "idle_min", "idle_last"],
            json!([0, 40.0, 0.0, 0.5]),
            &[],
        )]);
        assert_eq!(c.verdict, "anomalous");
        let l = system(&[s(&["time", "load_max", "cpus"], json!([0, 200.0, 24]), &[])]);
        assert_eq!(l.verdict, "anomalous");
        let d = diskio(
            &[s(
                &["time", "busy_ms"],
                json!([0, 599_000]),
                &[("name", "sda")],
            )],
            600.0,
        );
        assert_eq!(d.verdict, "anomalous");
        let k = clues(&[m, c, l, d]);
        assert_eq!(k.len(), 4);
        assert_eq!(k[0].cause.as_deref(), Some("mem exhausted"));
    }
}
