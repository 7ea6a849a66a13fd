//! `/dev/kmsg` records (Documentation/ABI/testing/dev-kmsg, kernel-abi.md §7.6):
//! `prio,seq,usec,flags[,more];message\n` then continuation lines ` KEY=value\n`.
//! Non-printable bytes in the text arrive escaped as `\xNN`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Syslog level, 0 (emerg) .. 7 (debug).
    pub level: u8,
    pub facility: u32,
    pub seq: u64,
    /// Monotonic microseconds since boot.
    pub usec: u64,
    /// Text with `\xNN` escapes decoded (invalid UTF-8 replaced).
    pub message: String,
    /// `DEVICE=` continuation value (`+pci:0000:01:00.0`, `b8:0`, `n2`...).
    pub device: Option<String>,
    pub subsystem: Option<String>,
}

/// Parse one record (header line plus its continuation lines).
pub fn parse(raw: &[u8]) -> Option<Record> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n');
    let head = lines.next()?;
    let (prefix, msg) = head.split_once(';')?;
    let mut f = prefix.split(',');
    let prio: u32 = f.next()?.trim().parse().ok()?;
    let seq: u64 = f.next()?.trim().parse().ok()?;
    let usec: u64 = f.next()?.trim().parse().ok()?;
    let mut r = Record {
        level: (prio & 7) as u8,
        facility: prio >> 3,
        seq,
        usec,
        message: unescape(msg),
        device: None,
        subsystem: None,
    };
    for l in lines {
        let Some(kv) = l.strip_prefix(' ') else {
            continue;
        };
        match kv.split_once('=') {
            Some(("DEVICE", v)) => r.device = Some(unescape(v)),
            Some(("SUBSYSTEM", v)) => r.subsystem = Some(unescape(v)),
            _ => {}
        }
    }
    Some(r)
}

/// `\xNN` -> byte; anything else verbatim.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split a byte stream (a capture file) into records: a record is its header
/// line plus following lines that start with a space. Returns the complete
/// records and how many bytes they used; the rest waits for more data unless
/// `at_eof`.
pub fn split_stream(buf: &[u8], at_eof: bool) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|c| *c == b'\n') {
        let end = i + nl + 1;
        match buf.get(end) {
            Some(b' ') => i = end, // a continuation line follows
            Some(_) => {
                out.push(&buf[start..end]);
                start = end;
                i = end;
            }
            None => {
                if at_eof {
                    out.push(&buf[start..end]);
                    start = end;
                }
                break;
            }
        }
    }
    (out, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_record_with_continuations() {
        // kernel-abi.md §7.6 example (aer.c source-ID message)
        let r = parse(b"6,1432,58234122,-;pcieport 0000:00:1c.0: AER: Correctable error message received from 0000:03:00.0\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n").expect("record");
        assert_eq!(
            (r.level, r.facility, r.seq, r.usec),
            (6, 0, 1432, 58_234_122)
        );
        assert_eq!(r.device.as_deref(), Some("+pci:0000:00:1c.0"));
        assert_eq!(r.subsystem.as_deref(), Some("pci"));
        assert!(r.message.starts_with("pcieport 0000:00:1c.0: AER:"));
    }

    #[test]
    fn caller_field_escapes_and_garbage() {
        let r = parse(b"4,7,1000,c,caller=T123;a\\x0ab \\xzz \\x\n").expect("record");
        assert_eq!(r.message, "a\nb \\xzz \\x");
        assert_eq!(r.level, 4);
        assert!(parse(b"garbage without semicolon\n").is_none());
        assert!(parse(b"x,y,z,-;text\n").is_none());
        let bad = parse(b"3,9,10,-;bytes \xff\xfe end\n").expect("lossy");
        assert!(bad.message.contains('\u{fffd}'));
    }

    #[test]
    fn stream_split_waits_for_continuations() {
        let buf = b"6,1,1,-;one\n DEVICE=+pci:0000:01:00.0\n6,2,2,-;two\n";
        let (recs, used) = split_stream(buf, false);
        assert_eq!(recs.len(), 1);
        assert_eq!(used, 38);
        let (recs, used) = split_stream(buf, true);
        assert_eq!((recs.len(), used), (2, buf.len()));
        let (recs, used) = split_stream(b"6,3,3,-;half a rec", true);
        assert_eq!((recs.len(), used), (0, 0));
    }
}
