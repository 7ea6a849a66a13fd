//! InfluxDB line protocol, escaped as Telegraf's parser expects:
//! measurement escapes `,` and space; tag keys, tag values and field keys escape
//! `,`, `=` and space; string field values escape `\` and `"`. Control
//! characters cannot be written safely anywhere and become spaces. A point
//! without fields is not written (Telegraf rejects it).

use std::fmt::Write as _;

use crate::metric::{Field, Metric};

/// The ASCII bytes a context escapes with a backslash.
const fn specials(list: &[u8]) -> [bool; 128] {
    let mut t = [false; 128];
    let mut i = 0;
    while i < list.len() {
        t[list[i] as usize] = true;
        i += 1;
    }
    t
}

const KEY: [bool; 128] = specials(b",= ");
const MEASUREMENT: [bool; 128] = specials(b", ");
const STRING: [bool; 128] = specials(b"\"\\");

/// Append `s`, escaping `special` bytes with a backslash and turning control
/// characters (C0, DEL, and the C1 range U+0080..U+009F, which UTF-8 spells
/// `C2 80`..`C2 9F`) into spaces, themselves escaped where the context
/// escapes a space. One pass over the bytes; runs of plain text are copied
/// whole, and every split falls on a character boundary.
fn push_escaped(out: &mut String, s: &str, special: &[bool; 128], stops: &[bool; 256]) {
    if plain(s, stops) {
        out.push_str(s);
        return;
    }
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        let c = b[i];
        let (control, width) = if c < 0x20 || c == 0x7f {
            (true, 1)
        } else if c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) {
            (true, 2)
        } else {
            (false, 1)
        };
        let escape = !control && c < 0x80 && special[usize::from(c)];
        if control || escape {
            out.push_str(&s[start..i]);
            let c = if control { b' ' } else { c };
            if special[usize::from(c)] {
                out.push('\\');
            }
            out.push(char::from(c));
            start = i + width;
        }
        i += width;
    }
    out.push_str(&s[start..]);
}

/// Bytes that stop a copy-as-is in a context: controls, DEL, every
/// non-ASCII byte (it may start a C1 control) and the context's specials.
const fn stops(special: &[bool; 128]) -> [bool; 256] {
    let mut t = [true; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = special[b];
        b += 1;
    }
    t
}

const KEY_STOPS: [bool; 256] = stops(&KEY);
const MEASUREMENT_STOPS: [bool; 256] = stops(&MEASUREMENT);
const STRING_STOPS: [bool; 256] = stops(&STRING);

/// Nothing to escape or clean: the common case, copied whole. One table
/// load per byte and no early exit: names and values are short.
fn plain(s: &str, stops: &[bool; 256]) -> bool {
    !s.bytes()
        .fold(false, |stop, b| stop | stops[usize::from(b)])
}

fn push_key(out: &mut String, s: &str) {
    // A trailing backslash would escape the separator that follows it.
    push_escaped(out, s.trim_end_matches('\\'), &KEY, &KEY_STOPS);
}

fn push_measurement(out: &mut String, s: &str) {
    push_escaped(out, s, &MEASUREMENT, &MEASUREMENT_STOPS);
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s, &STRING, &STRING_STOPS);
    out.push('"');
}

pub fn write_metric(out: &mut String, m: &Metric) {
    write_metric_except(out, m, &[]);
}

/// `m` without the fields named in `omit` (what the Thinner leaves out),
/// written from the point itself rather than from a pruned copy of it.
pub fn write_metric_except(out: &mut String, m: &Metric, omit: &[&str]) {
    let kept = |(k, _): &(&std::borrow::Cow<'static, str>, &Field)| !omit.contains(&k.as_ref());
    if !m.fields.iter().any(|f| kept(&f)) {
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
    for (k, v) in m.fields.iter().filter(kept) {
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
    // Digit by digit: a handful of pushes cost less than checking the
    // digits are UTF-8 to push them as one string.
    out.reserve(buf.len() - i);
    buf[i..].iter().for_each(|&d| out.push(char::from(d)));
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
        m.field("msg", Field::str("say \"hi\" \\ now\nthen"));
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

    /// The escaping rules written the obvious way, char by char: the
    /// byte-level writer must agree with it on any text.
    fn reference(s: &str, special: &[char]) -> String {
        let mut out = String::new();
        for c in s.chars() {
            let c = if c.is_control() { ' ' } else { c };
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn byte_level_escaping_agrees_with_the_char_rules(s in "\\PC*|[\\x00-\\x{a0},= \"\\\\a\u{e9}]*") {
            let mut k = String::new();
            push_key(&mut k, &s);
            proptest::prop_assert_eq!(k, reference(s.trim_end_matches('\\'), &[',', '=', ' ']));
            let mut m = String::new();
            push_measurement(&mut m, &s);
            proptest::prop_assert_eq!(m, reference(&s, &[',', ' ']));
            let mut v = String::new();
            push_string(&mut v, &s);
            proptest::prop_assert_eq!(v, format!("\"{}\"", reference(&s, &['"', '\\'])));
        }
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
        // Controls (C0, DEL, C1 U+0085) become spaces, escaped in keys;
        // other non-ASCII text is copied; trailing backslashes are dropped.
        let mut s = String::new();
        push_key(&mut s, "a\u{85}b\tc=\u{7f}");
        assert_eq!(s, "a\\ b\\ c\\=\\ ");
        let mut s = String::new();
        push_string(&mut s, "a\u{85}\\\"\u{e9}\u{c2}");
        assert_eq!(s, "\"a \\\\\\\"\u{e9}\u{c2}\"");
        let mut s = String::new();
        push_key(&mut s, "x\\");
        assert_eq!(s, "x");
        let mut s = String::new();
        push_key(&mut s, "caf\u{e9} \u{85}");
        assert_eq!(s, "caf\u{e9}\\ \\ ");
    }
}
