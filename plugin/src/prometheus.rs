//! Prometheus text exposition format (0.0.4), what node_exporter's textfile
//! collector reads: `vigil_` + measurement + field, units spelt out as
//! suffixes (`_seconds`, `_bytes`, `_gigatransfers_per_second`), AER counts as
//! `_total` counters, tags as labels, and each measurement's string fields as
//! labels of one `vigil_<measurement>_info` gauge of value 1 (the pattern of
//! `node_uname_info`). No timestamps: the textfile collector refuses them.
//! Kernel events are a stream, not a state: only their count per category in
//! the ring buffer is written (`vigil_kernel_events`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::metric::{Field, Metric};

const IDENTITY: [&str; 5] = ["vendor_id", "device_id", "class_id", "vendor", "device"];

struct Family {
    help: String,
    kind: &'static str,
    /// Label set (written) -> value (written), in arrival order.
    samples: Vec<(String, String)>,
}

#[derive(Default)]
struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn add(
        &mut self,
        name: String,
        kind: &'static str,
        help: String,
        labels: String,
        value: String,
    ) {
        let f = self.families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            samples: Vec::new(),
        });
        // One series once: a duplicate would fail the whole scrape.
        if !f.samples.iter().any(|(l, _)| *l == labels) {
            f.samples.push((labels, value));
        }
    }
}

/// Metric family prefix of a measurement.
fn prefix(measurement: &str) -> String {
    if measurement.starts_with("vigil") {
        measurement.to_string()
    } else {
        format!("vigil_{measurement}")
    }
}

/// `pcie_link` + `link_up` reads `vigil_pcie_link_up`, not `..._link_link_up`.
fn strip_repeat<'k>(measurement: &str, field: &'k str) -> &'k str {
    let last = measurement.rsplit('_').next().unwrap_or(measurement);
    match field.strip_prefix(last).and_then(|r| r.strip_prefix('_')) {
        Some(rest) if measurement.contains('_') && !rest.is_empty() => rest,
        _ => field,
    }
}

/// Name and scale of a numeric field: units from the contract's suffixes.
fn unit_name(field: &str) -> (String, f64, &'static str) {
    for (suffix, unit, scale, note) in [
        ("_gts", "_gigatransfers_per_second", 1.0, " (GT/s)"),
        (
            "_us",
            "_seconds",
            1e-6,
            " (seconds; vigil's field is in microseconds)",
        ),
        ("_s", "_seconds", 1.0, " (seconds)"),
        ("_bytes", "_bytes", 1.0, " (bytes)"),
        (
            "_mb",
            "_bytes",
            1_048_576.0,
            " (bytes; vigil's field is in MiB)",
        ),
    ] {
        if let Some(stem) = field.strip_suffix(suffix) {
            return (format!("{stem}{unit}"), scale, note);
        }
    }
    (field.to_string(), 1.0, "")
}

fn push_label(out: &mut String, k: &str, v: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(k);
    out.push_str("=\"");
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn help_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: &Field, scale: f64) -> Option<String> {
    match v {
        Field::Int(i) if scale == 1.0 => Some(i.to_string()),
        // Counts and microseconds stay exact up to 2^53.
        Field::Int(i) => Some(format!("{}", *i as f64 * scale)),
        Field::Float(f) if f.is_finite() => Some(format!("{}", f * scale)),
        _ => None,
    }
}

fn add_metric(x: &mut Exposition, m: &Metric, events: &mut BTreeMap<String, u64>) {
    if m.name == "kernel_event" {
        if let Some(c) = m.tags.get("category") {
            *events.entry(c.to_string()).or_default() += 1;
        }
        return;
    }
    // Identity (IDs, names) labels only the `_info` series: a query joins it
    // on `address` (`* on(address) group_left(device) vigil_pcie_device_info`).
    let mut base = String::new();
    let mut info = String::new();
    for (k, v) in &m.tags {
        if !IDENTITY.contains(k) {
            push_label(&mut base, k, v);
        }
        push_label(&mut info, k, v);
    }
    let pre = prefix(m.name);
    let mut has_info = m.tags.keys().any(|k| IDENTITY.contains(k));
    for (k, v) in &m.fields {
        if let Field::Str(s) = v {
            // A string field named like a tag keeps both.
            let label = if m.tags.contains_key(k.as_ref()) {
                format!("field_{k}")
            } else {
                k.to_string()
            };
            push_label(&mut info, &label, s);
            has_info = true;
            continue;
        }
        if m.name == "pcie_aer" {
            add_aer(x, &pre, &base, k, v);
            continue;
        }
        // EDAC's `*_count` fields count errors since the controller's reset.
        if m.name.starts_with("edac_") {
            if let (Some(stem), Some(val)) = (k.strip_suffix("_count"), number(v, 1.0)) {
                let help = format!(
                    "vigil {}.{k}: errors counted by EDAC; docs/metrics.md",
                    m.name
                );
                x.add(
                    format!("{pre}_{stem}_errors_total"),
                    "counter",
                    help,
                    base.clone(),
                    val,
                );
                continue;
            }
        }
        let (name, scale, unit) = unit_name(strip_repeat(m.name, k));
        if let Some(val) = number(v, scale) {
            let help = format!("vigil {}.{k}{unit}; docs/metrics.md", m.name);
            x.add(format!("{pre}_{name}"), "gauge", help, base.clone(), val);
        }
    }
    if has_info {
        let help = format!(
            "vigil {}: its text fields as labels (value always 1); docs/metrics.md",
            m.name
        );
        x.add(format!("{pre}_info"), "gauge", help, info, "1".into());
    }
}

/// AER: the kernel's totals and each named counter, all monotonic counters.
fn add_aer(x: &mut Exposition, pre: &str, base: &str, k: &str, v: &Field) {
    let Some(val) = number(v, 1.0) else {
        return;
    };
    let (name, help, labels) = match k {
        "total" => (
            format!("{pre}_errors_total"),
            "AER errors the kernel counted for this device and severity (TOTAL_ERR_*)".to_string(),
            base.to_string(),
        ),
        "rootport_total" => (
            format!("{pre}_rootport_errors_total"),
            "AER errors reported to this root port or RCEC (aer_rootport_total_err_*)".to_string(),
            base.to_string(),
        ),
        counter => {
            let mut l = base.to_string();
            push_label(&mut l, "counter", counter);
            (
                format!("{pre}_counter_total"),
                "AER error bits the kernel counted, by counter (snake_case of its name)"
                    .to_string(),
                l,
            )
        }
    };
    x.add(name, "counter", help, labels, val);
}

/// The whole batch as one exposition.
pub fn write(metrics: &[Metric]) -> String {
    let mut x = Exposition::default();
    let mut events = BTreeMap::new();
    for m in metrics {
        add_metric(&mut x, m, &mut events);
    }
    for (c, n) in events {
        let mut l = String::new();
        push_label(&mut l, "category", &c);
        x.add(
            "vigil_kernel_events".into(),
            "gauge",
            "kernel hardware events in the kernel's ring buffer at collection, by category".into(),
            l,
            n.to_string(),
        );
    }
    let mut out = String::new();
    for (name, f) in &x.families {
        let _ = writeln!(out, "# HELP {name} {}", help_text(&f.help));
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        for (labels, value) in &f.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_labels_and_escapes() {
        let mut link = Metric::new("pcie_link", 1);
        link.tag("address", "0000:01:00.0");
        link.field("speed_gts", Field::Float(2.5));
        link.field("width", Field::Int(16));
        let mut dev = Metric::new("pcie_device", 1);
        dev.tag("address", "0000:01:00.0");
        dev.tag("device", "Say \"hi\" \\ x");
        dev.field("driver", Field::str("vfio-pci"));
        dev.field("d_state", Field::Int(0));
        let mut hb = Metric::new("vigil", 1);
        hb.field("duration_us", Field::Int(1500));
        hb.field("uptime_s", Field::Float(12.5));
        let mut aer = Metric::new("pcie_aer", 1);
        aer.tag("address", "0000:01:00.0");
        aer.tag("severity", "correctable");
        aer.field("total", Field::Int(3));
        aer.field("rx_err", Field::Int(2));
        let text = write(&[aer, dev, link, hb]);
        for want in [
            "# TYPE vigil_pcie_link_speed_gigatransfers_per_second gauge\n",
            "vigil_pcie_link_speed_gigatransfers_per_second{address=\"0000:01:00.0\"} 2.5\n",
            "vigil_pcie_link_width{address=\"0000:01:00.0\"} 16\n",
            "vigil_pcie_device_info{address=\"0000:01:00.0\",device=\"Say \\\"hi\\\" \\\\ x\",driver=\"vfio-pci\"} 1\n",
            "vigil_duration_seconds 0.0015\n",
            "vigil_uptime_seconds 12.5\n",
            "# TYPE vigil_pcie_aer_errors_total counter\n",
            "vigil_pcie_aer_errors_total{address=\"0000:01:00.0\",severity=\"correctable\"} 3\n",
            "vigil_pcie_aer_counter_total{address=\"0000:01:00.0\",severity=\"correctable\",counter=\"rx_err\"} 2\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains(" 1\n1"), "no timestamps");
    }
}
