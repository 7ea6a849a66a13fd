//! Pure parsers for PCI sysfs attributes: `&str` in, typed value out.
//! Formats and their history are in kernel-abi.md §1.2, §2.2, §3, §5.

use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

type R<T> = Result<T, ParseError>;

fn bad<T>(what: &str, s: &str) -> R<T> {
    let shown: String = s.chars().take(40).collect();
    Err(ParseError(format!("expected {what}, found {shown:?}")))
}

/// `vendor`/`device`: `0x10de` -> 0x10de.
pub fn hex_u16(s: &str) -> R<u16> {
    let t = s.trim();
    let h = t.strip_prefix("0x").unwrap_or(t);
    if h.is_empty() || h.len() > 4 {
        return bad("a 16-bit hex id", s);
    }
    u16::from_str_radix(h, 16).or_else(|_| bad("a 16-bit hex id", s))
}

/// `class`: `0x030000` -> 0x030000 (base, subclass, prog-if).
pub fn class_code(s: &str) -> R<u32> {
    let t = s.trim();
    let h = t.strip_prefix("0x").unwrap_or(t);
    if h.is_empty() || h.len() > 6 {
        return bad("a 24-bit class code", s);
    }
    u32::from_str_radix(h, 16).or_else(|_| bad("a 24-bit class code", s))
}

/// A link speed, in GT/s. `None` is the kernel's own "unknown"
/// (`Unknown`, `Unknown speed`); any other shape is an error.
/// Accepts every historical form: `8 GT/s`, `8.0 GT/s PCIe`, `2.5 GT/s`.
pub fn link_speed(s: &str) -> R<Option<f64>> {
    let t = s.trim();
    if t == "Unknown" || t == "Unknown speed" {
        return Ok(None);
    }
    let num = t
        .strip_suffix(" PCIe")
        .unwrap_or(t)
        .strip_suffix(" GT/s")
        .ok_or_else(|| ParseError(format!("expected a link speed, found {t:?}")))?;
    let ok_chars = !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '.');
    match num.parse::<f64>() {
        Ok(v) if ok_chars && v.is_finite() && v > 0.0 && v < 1000.0 => Ok(Some(v)),
        _ => bad("a link speed", s),
    }
}

/// What a width attribute says about the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Width {
    Lanes(u8),
    /// `63`: the register read returned all-ones, the device is not answering.
    AllOnes,
}

pub fn link_width(s: &str) -> R<Width> {
    match s.trim().parse::<u32>() {
        Ok(63) => Ok(Width::AllOnes),
        Ok(n) if n <= 32 => Ok(Width::Lanes(n as u8)),
        _ => bad("a link width (0..32)", s),
    }
}

/// `power_state` (kernel-abi §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PowerState {
    D0,
    D1,
    D2,
    D3hot,
    D3cold,
    Unknown,
    Error,
    /// A value a newer kernel may print.
    Other(String),
}

impl PowerState {
    pub fn parse(s: &str) -> PowerState {
        match s.trim() {
            "D0" => PowerState::D0,
            "D1" => PowerState::D1,
            "D2" => PowerState::D2,
            "D3hot" => PowerState::D3hot,
            "D3cold" => PowerState::D3cold,
            "unknown" => PowerState::Unknown,
            "error" => PowerState::Error,
            other => PowerState::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            PowerState::D0 => "D0",
            PowerState::D1 => "D1",
            PowerState::D2 => "D2",
            PowerState::D3hot => "D3hot",
            PowerState::D3cold => "D3cold",
            PowerState::Unknown => "unknown",
            PowerState::Error => "error",
            PowerState::Other(s) => s,
        }
    }
    /// Numeric twin for alerting: D3hot=3, D3cold=4.
    pub fn d_state(&self) -> Option<i64> {
        match self {
            PowerState::D0 => Some(0),
            PowerState::D1 => Some(1),
            PowerState::D2 => Some(2),
            PowerState::D3hot => Some(3),
            PowerState::D3cold => Some(4),
            _ => None,
        }
    }
}

/// `power/runtime_status` (kernel-abi §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RuntimeStatus {
    Active,
    Suspended,
    Suspending,
    Resuming,
    Error,
    Unsupported,
    Other(String),
}

impl RuntimeStatus {
    pub fn parse(s: &str) -> RuntimeStatus {
        match s.trim() {
            "active" => RuntimeStatus::Active,
            "suspended" => RuntimeStatus::Suspended,
            "suspending" => RuntimeStatus::Suspending,
            "resuming" => RuntimeStatus::Resuming,
            "error" => RuntimeStatus::Error,
            "unsupported" => RuntimeStatus::Unsupported,
            other => RuntimeStatus::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            RuntimeStatus::Active => "active",
            RuntimeStatus::Suspended => "suspended",
            RuntimeStatus::Suspending => "suspending",
            RuntimeStatus::Resuming => "resuming",
            RuntimeStatus::Error => "error",
            RuntimeStatus::Unsupported => "unsupported",
            RuntimeStatus::Other(s) => s,
        }
    }
}

/// `0`/`1` attributes (`enable`, `d3cold_allowed`, `link/*_aspm`). `enable`
/// is a usage count on some kernels (`2`): anything above zero is enabled.
pub fn flag(s: &str) -> R<bool> {
    match s.trim().parse::<u32>() {
        Ok(n) => Ok(n > 0),
        Err(_) => bad("0 or 1", s),
    }
}

/// `numa_node`: `-1` means "no node" and becomes `None`.
pub fn numa_node(s: &str) -> R<Option<i64>> {
    match s.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) if (0..=65535).contains(&n) => Ok(Some(n)),
        _ => bad("a NUMA node", s),
    }
}

/// `driver_override`: `(null)` and empty mean unset.
pub fn driver_override(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t == "(null)" {
        None
    } else {
        Some(t.to_string())
    }
}

/// An unsigned decimal counter (`aer_rootport_total_err_cor`).
pub fn counter(s: &str) -> R<u64> {
    s.trim()
        .parse::<u64>()
        .or_else(|_| bad("an unsigned counter", s))
}

/// Counter name -> count, sorted by name, each name once. A host has
/// thousands of these small maps, and they all live until the batch is
/// written: a name from [`AER_KERNEL_NAMES`] is one bit, its count 8 bytes
/// (a vector of names and counts took 32 bytes a counter, 3 MB on a
/// 2,000-function tree). Other names (legacy kernels) are kept whole.
/// Serialised as a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bit i: [`AER_KERNEL_NAMES`]`[i]` was given.
    seen: u64,
    /// The counts of the names in `seen`, in table order, then of `others`.
    counts: Box<[u64]>,
    /// Names outside the table, sorted.
    others: Box<[Box<str>]>,
}

impl Counters {
    /// From lines in any order; a name given twice keeps its last count.
    #[cfg(test)]
    fn from_lines(mut v: Vec<(Cow<'static, str>, u64)>) -> Counters {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        // Stable sort: equal names stay in file order, and the later wins.
        v.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        let (mut seen, mut known) = (0u64, [0u64; AER_KERNEL_NAMES.len()]);
        let mut others = Vec::new();
        for (name, count) in v {
            match aer_index(name.as_bytes()) {
                Some(i) => {
                    seen |= 1 << i;
                    known[i] = count;
                }
                None => others.push((name, count)),
            }
        }
        Counters::from_parts(seen, &known, others)
    }

    /// `known` by table index where `seen` has the bit; `others` sorted.
    fn from_parts(seen: u64, known: &[u64], others: Vec<(Cow<'static, str>, u64)>) -> Counters {
        // Sized up front: a filtered iterator does not know its length, and
        // collecting it grew the vector and shrank it again (four
        // allocations an AER file, three files a function).
        let mut counts = Vec::with_capacity(seen.count_ones() as usize + others.len());
        counts.extend(
            (0..AER_KERNEL_NAMES.len())
                .filter(|i| seen & (1 << i) != 0)
                .map(|i| known[i]),
        );
        counts.extend(others.iter().map(|(_, c)| *c));
        let counts = counts.into_boxed_slice();
        let others = others.into_iter().map(|(n, _)| n.into()).collect();
        Counters {
            seen,
            counts,
            others,
        }
    }

    fn known_len(&self) -> usize {
        self.seen.count_ones() as usize
    }

    pub fn get(&self, name: &str) -> Option<&u64> {
        if let Some(i) = aer_index(name.as_bytes()) {
            let below = self.seen & ((1u64 << i) - 1);
            return (self.seen & (1 << i) != 0).then(|| &self.counts[below.count_ones() as usize]);
        }
        let j = self.others.binary_search_by(|n| (**n).cmp(name)).ok()?;
        self.counts.get(self.known_len() + j)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// Names and counts in name order: the table's names and the others
    /// are each sorted, and merged here.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &u64)> {
        let known = (0..AER_KERNEL_NAMES.len())
            .filter(|i| self.seen & (1 << i) != 0)
            .map(|i| AER_KERNEL_NAMES[i])
            .zip(self.counts.iter());
        let others = self
            .others
            .iter()
            .map(|n| &**n)
            .zip(self.counts[self.known_len()..].iter());
        Merge {
            a: known.peekable(),
            b: others.peekable(),
        }
    }
}

/// Two iterators sorted by name, merged in order.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (&'a str, &'a u64)>,
    B: Iterator<Item = (&'a str, &'a u64)>,
{
    type Item = (&'a str, &'a u64);
    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            _ => self.b.next(),
        }
    }
}

impl<'a> IntoIterator for &'a Counters {
    type Item = (&'a str, &'a u64);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a u64)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// One `aer_dev_{correctable,nonfatal,fatal}` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AerCounters {
    /// Counter name as the kernel printed it (`RxErr`, `dev_fatal_errs_bit[27]`,
    /// legacy `Receiver Error`) -> count. Unknown names are kept, never dropped;
    /// known ones borrow from [`AER_KERNEL_NAMES`] (about 25,000 counters on a
    /// 460-function host: no allocation each).
    pub counters: Counters,
    /// The `TOTAL_ERR_*` line, as printed; never recomputed (kernel totals
    /// count messages, the per-bit counters count bits).
    pub total: Option<u64>,
}

/// Every counter name the kernel prints in `aer_dev_*` (kernel-abi.md §2.2,
/// through 6.18), sorted.
pub const AER_KERNEL_NAMES: [&str; 31] = [
    "ACSViol",
    "AtomicOpBlocked",
    "BadDLLP",
    "BadTLP",
    "BlockedTLP",
    "CmpltAbrt",
    "CmpltTO",
    "CorrIntErr",
    "DLP",
    "DMWrReqBlocked",
    "ECRC",
    "FCP",
    "HeaderOF",
    "IDECheck",
    "MalfTLP",
    "MisIDETLP",
    "NonFatalErr",
    "PCRC_CHECK",
    "PoisonTLPBlocked",
    "Rollover",
    "RxErr",
    "RxOF",
    "SDES",
    "TLP",
    "TLPBlockedErr",
    "TLPXlatBlocked",
    "Timeout",
    "UncorrIntErr",
    "Undefined",
    "UnsupReq",
    "UnxCmplt",
];

const AER_SLOTS: usize = 128;

// `AerLines::seen` has a bit per name.
const _: () = assert!(AER_KERNEL_NAMES.len() <= 64);

/// Where a non-empty kernel counter name may sit in [`AER_NAME_SLOTS`]:
/// from its length and first and last bytes, which tell the table's names
/// apart.
const fn aer_slot(name: &[u8]) -> usize {
    let (first, last) = (name[0] as usize, name[name.len() - 1] as usize);
    (name.len() + 10 * first + 6 * last) % AER_SLOTS
}

/// Slot -> index in [`AER_KERNEL_NAMES`] (`u8::MAX`: none). A name added
/// to the table that lands on a taken slot fails the build: change the
/// multipliers in [`aer_slot`] until none do.
const AER_NAME_SLOTS: [u8; AER_SLOTS] = {
    let mut slots = [u8::MAX; AER_SLOTS];
    let mut i = 0;
    while i < AER_KERNEL_NAMES.len() {
        let slot = aer_slot(AER_KERNEL_NAMES[i].as_bytes());
        assert!(slots[slot] == u8::MAX, "two AER names share a slot");
        slots[slot] = i as u8;
        i += 1;
    }
    slots
};

/// The index in [`AER_KERNEL_NAMES`] of a non-empty name: one table load
/// and one comparison, where a `match` compares with name after name. This
/// runs for every line of every AER file.
fn aer_index(name: &[u8]) -> Option<usize> {
    let i = usize::from(AER_NAME_SLOTS[aer_slot(name)]);
    AER_KERNEL_NAMES
        .get(i)
        .filter(|known| known.as_bytes() == name)
        .map(|_| i)
}

/// A line in the kernel's own shape, `NAME COUNT`: a name of printable
/// ASCII without spaces, one space, up to 19 digits (no u64 overflow).
/// Such a line means what [`AerLines::other`] would make of it, found in
/// one pass over its bytes and without UTF-8 or whitespace rules.
fn kernel_line(line: &[u8]) -> Option<(&[u8], u64)> {
    let space = line.iter().rposition(|&b| b == b' ')?;
    let (name, digits) = (&line[..space], &line[space + 1..]);
    let name_ok = !name.is_empty() && name.iter().all(|&b| b > b' ' && b < 0x7f);
    if !name_ok || digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
        .map(|count| (name, count))
}

/// What an AER file has said so far. Known names are counted by their
/// index in [`AER_KERNEL_NAMES`] (sorted, so index order is name order, and
/// a repeated name overwrites its count: no sort, no dedup); only other
/// names go to a list.
struct AerLines {
    known: [u64; AER_KERNEL_NAMES.len()],
    /// Bit i: `known[i]` was given.
    seen: u64,
    others: Vec<(Cow<'static, str>, u64)>,
    total: Option<u64>,
    errs: Vec<ParseError>,
}

impl AerLines {
    fn new() -> AerLines {
        AerLines {
            known: [0; AER_KERNEL_NAMES.len()],
            seen: 0,
            others: Vec::new(),
            total: None,
            errs: Vec::new(),
        }
    }

    /// A non-empty name, as bytes of valid UTF-8: known names need no check.
    fn count(&mut self, name: &[u8], count: u64) {
        if let Some(i) = aer_index(name) {
            self.known[i] = count;
            self.seen |= 1 << i;
        } else if name.starts_with(b"TOTAL_ERR_") {
            self.total = Some(count);
        } else {
            let name = String::from_utf8_lossy(name).into_owned();
            self.others.push((Cow::Owned(name), count));
        }
    }

    /// A line of any other shape (legacy names with spaces, stray
    /// whitespace, garbage): split at the last space; a malformed line is
    /// reported and the rest of the file is still used.
    fn other(&mut self, line: &str) {
        let line = line.trim_end();
        if line.trim().is_empty() {
            return;
        }
        let Some((name, count)) = line.rsplit_once(' ') else {
            let e = format!("AER line without a count: {line:?}");
            return self.errs.push(ParseError(e));
        };
        let name = name.trim();
        let Ok(count) = count.parse::<u64>() else {
            let e = format!("AER count is not a number: {line:?}");
            return self.errs.push(ParseError(e));
        };
        if name.is_empty() {
            let e = format!("AER line without a name: {line:?}");
            return self.errs.push(ParseError(e));
        }
        self.count(name.as_bytes(), count);
    }

    fn finish(mut self) -> (AerCounters, Vec<ParseError>) {
        // Known names are in order and unique already; others sorted, the
        // last count of a name given twice kept.
        self.others.sort_by(|a, b| a.0.cmp(&b.0));
        self.others.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        let counters = Counters::from_parts(self.seen, &self.known, self.others);
        let total = self.total;
        (AerCounters { counters, total }, self.errs)
    }
}

/// Parse an AER counter file. Each line is `NAME COUNT`, split at the last
/// space (legacy names contain spaces). A malformed line is reported and the
/// rest of the file is still used; a name given twice keeps its last count.
pub fn aer_file(s: &str) -> (AerCounters, Vec<ParseError>) {
    let mut lines = AerLines::new();
    let mut rest = s;
    while !rest.is_empty() {
        // Lines are a few bytes long: a plain scan beats a searcher's setup.
        let (line, next) = match rest.bytes().position(|b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        match kernel_line(line.as_bytes()) {
            Some((name, count)) => lines.count(name, count),
            None => lines.other(line),
        }
        rest = next;
    }
    lines.finish()
}

/// `/sys/module/pcie_aspm/parameters/policy`: the bracketed entry of
/// `[default] performance powersave powersupersave ` (trailing space, and no
/// newline before ~5.8).
pub fn aspm_policy(s: &str) -> R<String> {
    s.split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ParseError(format!("no [active] policy in {:?}", s.trim())))
}

/// A PCI address `DDDD:BB:DD.F` as the kernel names devices (`%04x:%02x:%02x.%d`):
/// the domain has at least four hex digits and more where the number needs them,
/// as behind Intel VMD (`10000:e1:00.0`, domains from 0x10000).
pub fn is_bdf(s: &str) -> bool {
    let Some((domain, rest)) = s.split_once(':') else {
        return false;
    };
    let hex = |t: &str| t.bytes().all(|c| c.is_ascii_hexdigit());
    let r = rest.as_bytes();
    (4..=8).contains(&domain.len())
        && hex(domain)
        && r.len() == 7
        && r[2] == b':'
        && r[5] == b'.'
        && hex(&rest[..2])
        && hex(&rest[3..5])
        && hex(&rest[6..])
}

/// The slot part of an address (`10000:e1:00` of `10000:e1:00.0`).
pub fn slot_of(address: &str) -> &str {
    address.rsplit_once('.').map_or(address, |(slot, _)| slot)
}

/// The domain part of an address (`10000` of `10000:e1:00.0`).
pub fn domain_of(address: &str) -> &str {
    address.split_once(':').map_or(address, |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_in_every_historical_format() {
        // >= 5.7 (pci_speed_string)
        assert_eq!(link_speed("2.5 GT/s PCIe\n"), Ok(Some(2.5)));
        assert_eq!(link_speed("16.0 GT/s PCIe"), Ok(Some(16.0)));
        assert_eq!(link_speed("64.0 GT/s PCIe"), Ok(Some(64.0)));
        // 4.13 - 5.6
        assert_eq!(link_speed("8 GT/s"), Ok(Some(8.0)));
        assert_eq!(link_speed("5 GT/s"), Ok(Some(5.0)));
        assert_eq!(link_speed("2.5 GT/s"), Ok(Some(2.5)));
        // future speeds keep the shape
        assert_eq!(link_speed("128.0 GT/s PCIe"), Ok(Some(128.0)));
        assert_eq!(link_speed("Unknown"), Ok(None));
        assert_eq!(link_speed("Unknown speed"), Ok(None));
        assert!(link_speed("").is_err());
        assert!(link_speed("fast").is_err());
        assert!(link_speed("NaN GT/s").is_err());
        assert!(link_speed("inf GT/s PCIe").is_err());
        assert!(link_speed("-8 GT/s").is_err());
    }

    #[test]
    fn widths_and_the_all_ones_read() {
        assert_eq!(link_width("16\n"), Ok(Width::Lanes(16)));
        assert_eq!(link_width("0"), Ok(Width::Lanes(0)));
        assert_eq!(link_width("63"), Ok(Width::AllOnes));
        assert!(link_width("x16").is_err());
        assert!(link_width("40").is_err());
    }

    #[test]
    fn ids_and_class() {
        assert_eq!(hex_u16("0x10de\n"), Ok(0x10de));
        assert_eq!(class_code("0x030000"), Ok(0x030000));
        assert!(hex_u16("0x").is_err());
        assert!(hex_u16("0x123456").is_err());
        assert!(class_code("zz").is_err());
    }

    #[test]
    fn power_and_flags() {
        assert_eq!(PowerState::parse("D3cold\n"), PowerState::D3cold);
        assert_eq!(PowerState::parse("D3cold").d_state(), Some(4));
        assert_eq!(PowerState::parse("D3hot").d_state(), Some(3));
        assert_eq!(PowerState::parse("unknown").d_state(), None);
        assert_eq!(PowerState::parse("D4").as_str(), "D4");
        assert_eq!(
            RuntimeStatus::parse("suspended\n"),
            RuntimeStatus::Suspended
        );
        assert_eq!(flag("1\n"), Ok(true));
        assert_eq!(flag("2"), Ok(true));
        assert!(flag("yes").is_err());
        assert_eq!(numa_node("-1"), Ok(None));
        assert_eq!(numa_node("1"), Ok(Some(1)));
        assert_eq!(driver_override("(null)\n"), None);
        assert_eq!(driver_override("vfio-pci\n"), Some("vfio-pci".into()));
    }

    #[test]
    fn aer_file_current_kernel() {
        // kernel-abi.md §2.2 sample, Linux >= 4.19
        let (c, e) = aer_file(
            "RxErr 2\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 2\n",
        );
        assert!(e.is_empty());
        assert_eq!(c.counters.get("RxErr"), Some(&2));
        assert_eq!(c.counters.len(), 8);
        assert!(c.counters.keys().all(|k| AER_KERNEL_NAMES.contains(&k)));
        assert_eq!(c.total, Some(2));
    }

    #[test]
    fn aer_file_legacy_bits_and_garbage() {
        let (c, e) =
            aer_file("Receiver Error 3\ndev_fatal_errs_bit[27] 2\nBogus\nDLP x\nTOTAL_ERR_FATAL 7");
        assert_eq!(c.counters.get("Receiver Error"), Some(&3));
        assert_eq!(c.counters.get("dev_fatal_errs_bit[27]"), Some(&2));
        // A name printed twice keeps its last count.
        let (twice, _) = aer_file("RxErr 1\nBadTLP 2\nRxErr 5\nTOTAL_ERR_COR 8\n");
        assert_eq!(twice.counters.get("RxErr"), Some(&5));
        assert_eq!(twice.counters.len(), 2);
        for (i, n) in AER_KERNEL_NAMES.iter().enumerate() {
            assert_eq!(aer_index(n.as_bytes()), Some(i), "{n}");
        }
        for other in ["Receiver Error", "RxErx", "R", "TOTAL_ERR_COR", "rxerr"] {
            assert_eq!(aer_index(other.as_bytes()), None, "{other}");
        }
        // Sorted, so a name is easy to find and a duplicate shows.
        let mut sorted = AER_KERNEL_NAMES;
        sorted.sort_unstable();
        assert_eq!(sorted, AER_KERNEL_NAMES, "keep the table sorted");
        assert_eq!(c.total, Some(7));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn table_names_and_others_come_out_in_one_name_order() {
        let (c, e) = aer_file("Zeta 4\nRxErr 1\nReceiver Error 3\nBadTLP 2\nRxErr 6\n");
        assert!(e.is_empty());
        let got: Vec<(&str, u64)> = c.counters.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(
            got,
            [
                ("BadTLP", 2),
                ("Receiver Error", 3),
                ("RxErr", 6),
                ("Zeta", 4)
            ]
        );
        for (k, v) in &got {
            assert_eq!(c.counters.get(k), Some(v), "{k}");
        }
        assert_eq!(c.counters.get("Timeout"), None);
        assert_eq!(c.counters.get("Nope"), None);
        assert_eq!(
            serde_json::to_string(&c.counters).expect("json"),
            r#"{"BadTLP":2,"Receiver Error":3,"RxErr":6,"Zeta":4}"#
        );
    }

    /// The parser as first written, line by line with `str` methods: the
    /// one-pass parser must agree with it on any text.
    fn reference(s: &str) -> (AerCounters, Vec<ParseError>) {
        let mut out = AerCounters::default();
        let mut errs = Vec::new();
        let mut counters = Vec::new();
        for line in s.lines() {
            let line = line.trim_end();
            if line.trim().is_empty() {
                continue;
            }
            let Some((name, count)) = line.rsplit_once(' ') else {
                errs.push(ParseError(format!("AER line without a count: {line:?}")));
                continue;
            };
            let name = name.trim();
            let Ok(count) = count.parse::<u64>() else {
                errs.push(ParseError(format!("AER count is not a number: {line:?}")));
                continue;
            };
            if name.is_empty() {
                errs.push(ParseError(format!("AER line without a name: {line:?}")));
            } else if name.starts_with("TOTAL_ERR_") {
                out.total = Some(count);
            } else {
                counters.push((Cow::Owned(name.to_string()), count));
            }
        }
        out.counters = Counters::from_lines(counters);
        (out, errs)
    }

    proptest::proptest! {
        #[test]
        fn one_pass_aer_parser_agrees_with_the_line_rules(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    // The kernel's shape, repeats and other names included.
                    3 => "(RxErr|BadTLP|Timeout|UnxCmplt|TOTAL_ERR_COR|bit\\[27\\]) [0-9]{1,3}",
                    // Near misses: stray whitespace, signs, long or no numbers.
                    2 => "(RxErr|TOTAL_ERR_COR|Receiver Error|x)?[ \t\r\u{a0}\u{85}]{0,2}[0-9+]{0,21}[ \r]?",
                    1 => "\\PC{0,12}",
                ],
                0..12,
            ),
            end in "\n?",
        ) {
            let text = lines.join("\n") + &end;
            proptest::prop_assert_eq!(aer_file(&text), reference(&text));
        }
    }

    #[test]
    fn aspm_policy_all_kernel_shapes() {
        assert_eq!(
            aspm_policy("[default] performance powersave powersupersave \n"),
            Ok("default".into())
        );
        assert_eq!(
            aspm_policy("default performance [powersave] "),
            Ok("powersave".into())
        );
        assert!(aspm_policy("default performance").is_err());
    }

    #[test]
    fn bdf_shape() {
        assert!(is_bdf("0000:01:00.0"));
        // Intel VMD: the kernel numbers its domains from 0x10000.
        assert!(is_bdf("10000:e1:00.0"));
        assert!(is_bdf("1000a:00:02.0"));
        assert!(!is_bdf("000:01:00.0"));
        assert!(!is_bdf("0000:1:00.0"));
        assert!(!is_bdf("0000:01:00.0.1"));
        assert!(!is_bdf("0000:01:0g.0"));
        assert!(!is_bdf("pci0000:00"));
        assert!(!is_bdf("pci10000:e0"));
        assert!(!is_bdf("0000:00:0e.0:pcie002"));
        assert_eq!(slot_of("10000:e1:00.0"), "10000:e1:00");
        assert_eq!(domain_of("10000:e1:00.0"), "10000");
    }
}
