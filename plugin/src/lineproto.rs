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

/// Bytes that may be copied as they are, one table per context: printable
/// ASCII (a non-ASCII byte may start a C1 control character) less what the
/// context escapes.
const fn table(specials: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = true;
        b += 1;
    }
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = false;
        i += 1;
    }
    t
}

const KEY: [bool; 256] = table(b",= \\");
const MEASUREMENT: [bool; 256] = table(b", ");
const STRING: [bool; 256] = table(b"\"\\");

/// Nothing to escape or clean: nearly every name and value is plain, and is
/// copied as it is.
fn plain(s: &str, ok: &[bool; 256]) -> bool {
    s.bytes().all(|b| ok[usize::from(b)])
}

fn push_key(out: &mut String, s: &str) {
    if plain(s, &KEY) {
        out.push_str(s);
        return;
    }
    // A trailing backslash would escape the separator that follows it.
    for c in clean(s.trim_end_matches('\\')) {
        if matches!(c, ',' | '=' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn push_measurement(out: &mut String, s: &str) {
    if plain(s, &MEASUREMENT) {
        out.push_str(s);
        return;
    }
    for c in clean(s) {
        if matches!(c, ',' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    if plain(s, &STRING) {
        out.push_str(s);
        out.push('"');
        return;
    }
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
                push_int(out, *i);
                out.push('i');
            }
            Field::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Field::Str(s) => push_string(out, s),
        }
    }
    out.push(' ');
    push_int(out, m.time_unix_ns);
    out.push('\n');
}

/// Decimal, without the formatting machinery: most fields are integers.
fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
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

    #[test]
    fn integers_and_plain_text_match_the_general_path() {
        for v in [
            0,
            7,
            -1,
            10,
            -10,
            1_700_000_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            let mut s = String::new();
            push_int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        // Only printable ASCII is copied as is; C1 controls (U+0085) and
        // trailing backslashes still go through cleaning.
        assert!(plain("0000:01:00.0", &KEY));
        assert!(!plain("a\u{85}b", &KEY));
        assert!(!plain("caf\u{e9}", &KEY));
        let mut s = String::new();
        push_key(&mut s, "x\\");
        assert_eq!(s, "x");
        let mut s = String::new();
        push_key(&mut s, "caf\u{e9} \u{85}");
        assert_eq!(s, "caf\u{e9}\\ \\ ");
    }
}
