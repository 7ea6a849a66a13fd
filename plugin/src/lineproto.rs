//! InfluxDB line protocol, escaped as Telegraf's parser expects:
//! measurement escapes `,` and space; tag keys, tag values and field keys escape
//! `,`, `=` and space; string field values escape `\` and `"`. Control
//! characters cannot be written safely anywhere and become spaces. A point
//! without fields is not written (Telegraf rejects it).

use std::fmt::Write as _;

use crate::metric::{Field, Metric};

fn clean(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().map(|c| if c.is_control() { ' ' } else { c })
}

fn push_key(out: &mut String, s: &str) {
    // A trailing backslash would escape the separator that follows it.
    for c in clean(s.trim_end_matches('\\')) {
        if matches!(c, ',' | '=' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn push_measurement(out: &mut String, s: &str) {
    for c in clean(s) {
        if matches!(c, ',' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in clean(s) {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

pub fn write_metric(out: &mut String, m: &Metric) {
    if m.fields.is_empty() {
        return;
    }
    push_measurement(out, m.name);
    for (k, v) in &m.tags {
        if v.trim_end_matches('\\').is_empty() {
            continue;
        }
        out.push(',');
        push_key(out, k);
        out.push('=');
        push_key(out, v);
    }
    let mut sep = ' ';
    for (k, v) in &m.fields {
        out.push(sep);
        sep = ',';
        push_key(out, k);
        out.push('=');
        match v {
            Field::Int(i) => {
                let _ = write!(out, "{i}i");
            }
            Field::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Field::Str(s) => push_string(out, s),
        }
    }
    let _ = writeln!(out, " {}", m.time_unix_ns);
}

pub fn write(metrics: &[Metric]) -> String {
    let mut out = String::with_capacity(metrics.len() * 160);
    for m in metrics {
        write_metric(&mut out, m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_telegraf() {
        let mut m = Metric::new("pcie device", 5);
        m.tag("vendor", "Foo, Inc.=x");
        m.tag("empty", "");
        m.field("msg", Field::Str("say \"hi\" \\ now\nthen".into()));
        m.field("n", Field::Int(-3));
        m.field("f", Field::Float(2.5));
        m.field("nan", Field::Float(f64::NAN));
        assert_eq!(
            write(&[m]),
            "pcie\\ device,vendor=Foo\\,\\ Inc.\\=x f=2.5,msg=\"say \\\"hi\\\" \\\\ now then\",n=-3i 5\n"
        );
    }

    #[test]
    fn fieldless_points_are_not_written() {
        let mut m = Metric::new("x", 1);
        m.field("inf", Field::Float(f64::INFINITY));
        assert_eq!(write(&[m]), "");
    }
}
