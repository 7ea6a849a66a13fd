//! What a long-running process leaves out of a collection because the
//! previous ones already said it, without hiding anything a query looks for.
//!
//! - **Facts** (configuration and identity-like values: link maxima, masks,
//!   ASPM settings, the kernel command line...) are written when they change
//!   and at least every `refresh`; a `last()` over any window of `refresh` or
//!   more finds them. Each series refreshes on its own phase, so no
//!   collection carries all of them at once.
//! - **State** (what alerts, rates and `fill(previous)` panels read) is
//!   written every collection.
//! - **Counters** of `pcie_aer` are left off while zero (see
//!   `convert::AerDetail`). A counter that appears would hide its first
//!   increase from `non_negative_derivative`, `spread` and `increase()`; so the
//!   collection in which it appears also writes it as 0 at the previous
//!   collection's time, the point the previous collection already wrote
//!   (InfluxDB merges the field into it).
//!
//! The first collection of a process (and `--once`) writes everything.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

use crate::metric::{Field, Metric};

/// Fields written on change and at the refresh, per measurement; the rest
/// are written every collection. Alerts and rate panels read only the rest.
pub fn facts(measurement: &str) -> &'static [&'static str] {
    match measurement {
        "pcie_device" => &[
            "d3cold_allowed",
            "driver",
            "enabled",
            "iommu_group",
            "link_skipped",
            "numa_node",
            "power_state",
            "runtime_status",
            "upstream_port",
        ],
        "pcie_link" => &[
            "autonomous_bw_status",
            "bw_mgmt_status",
            "dll_link_active",
            "expected_speed_gts",
            "expected_width",
            "link_training",
            "max_speed_gts",
            "max_width",
            "target_speed_gts",
        ],
        "pcie_aspm" => &[
            "clkpm",
            "enabled",
            "l0s",
            "l1",
            "l1_1",
            "l1_1_pcipm",
            "l1_2",
            "l1_2_pcipm",
            "lnkcap_l0s",
            "lnkcap_l1",
            "lnkctl_clkpm",
            "lnkctl_l0s",
            "lnkctl_l1",
            "source",
        ],
        "pcie_aer_status" => &[
            "cor_mask",
            "cor_status_names",
            "dpc_status",
            "dpc_trigger_enabled",
            "dpc_trigger_reason",
            "uncor_mask",
            "uncor_severity",
            "uncor_status_names",
        ],
        "vfio_device" => &[
            "configured_vmids",
            "driver",
            "group_viable",
            "host_companion_addresses",
            "host_companions",
            "intended",
            "intended_by",
            "power_state",
            "reset_method",
        ],
        "iommu_group" => &[
            "bridges",
            "devices",
            "members",
            "other_devices",
            "type",
            "vfio_devices",
        ],
        "pcie_platform" => &["cmdline"],
        _ => &[],
    }
}

/// Fields of a counter measurement that are ours, always written.
const AER_TOTALS: [&str; 2] = ["total", "rootport_total"];

struct Seen {
    /// Hash of the facts last written.
    facts: u64,
    /// Next refresh (collection time, ns).
    due: i64,
    /// The collection that last wrote this series.
    batch: u64,
    /// `pcie_aer`: the counters written last time, when `total` was written too.
    counters: Option<Vec<Cow<'static, str>>>,
}

pub struct Thinner {
    /// False for a single batch (`--once`): nothing comes after it, so
    /// nothing is remembered and every point passes as it is.
    remember: bool,
    refresh_ns: i64,
    batch: u64,
    t: i64,
    prev_t: Option<i64>,
    /// The series the last collection wrote, in the order it wrote them:
    /// the contract's order, so the next collection asks for them in the
    /// same order, and each is looked for where the last one was found
    /// (a walk through memory, not a hash probe per point).
    last: Vec<Option<(String, Seen)>>,
    /// Where the last one was found.
    cursor: usize,
    /// Position in `last` by key: built at the first miss of a collection
    /// (a device came or went), for the rest of it.
    index: Option<HashMap<String, usize, BuildHasherDefault<Fold>>>,
    /// The series this collection wrote, in order: `last` for the next.
    now: Vec<Option<(String, Seen)>>,
    key: String,
}

/// A multiply per word instead of SipHash's rounds, for the series map and
/// the facts hash: every point of a warm collection hashes both, the keys
/// are our own series names (no adversary picks them), and the facts hash
/// only has to tell this collection's facts from the last ones.
#[derive(Default)]
struct Fold(u64);

impl Fold {
    /// The high and low halves of a 128-bit product, folded: each output
    /// bit depends on every input bit.
    fn mix(&mut self, word: u64) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let x = u128::from(self.0 ^ word) * u128::from(K);
        self.0 = (x as u64) ^ ((x >> 64) as u64);
    }
}

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        // The length first and zeros after a short tail: two different
        // byte strings never feed the same words.
        self.mix(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            // Shifted in, not copied to a buffer and read back: a short
            // copy is a call, and the wide read waits for its stores.
            let word = tail.iter().rev().fold(0, |w, &b| (w << 8) | u64::from(b));
            self.mix(word);
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    fn write_i64(&mut self, v: i64) {
        self.mix(v as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Thinner {
    /// `refresh` zero: every fact every collection (AER zeros still backfilled).
    pub fn new(refresh: std::time::Duration) -> Thinner {
        Thinner {
            remember: true,
            refresh_ns: i64::try_from(refresh.as_nanos()).unwrap_or(i64::MAX),
            batch: 0,
            t: 0,
            prev_t: None,
            last: Vec::new(),
            cursor: 0,
            index: None,
            now: Vec::new(),
            key: String::new(),
        }
    }

    /// For a process that writes one batch: what the first batch of a
    /// long-running one writes (everything), without the bookkeeping.
    pub fn single_batch() -> Thinner {
        Thinner {
            remember: false,
            ..Thinner::new(std::time::Duration::ZERO)
        }
    }

    pub fn begin(&mut self, t: i64) {
        self.batch += 1;
        self.t = t;
    }

    /// Forget series this collection did not write (a device removed): the
    /// memory follows the host, and a device that comes back starts afresh.
    pub fn end(&mut self) {
        std::mem::swap(&mut self.last, &mut self.now);
        self.now.clear();
        self.cursor = 0;
        self.index = None;
        self.prev_t = Some(self.t);
    }

    /// The last collection's record of the series in `self.key`, taken
    /// out of `last` (a series is written once per collection).
    fn take_last(&mut self) -> Option<(String, Seen)> {
        let key = self.key.as_str();
        let at_cursor = self.last.get(self.cursor).and_then(|e| e.as_ref());
        let i = match at_cursor {
            Some((k, _)) if k == key => self.cursor,
            _ => {
                let last = &self.last;
                let index = self.index.get_or_insert_with(|| {
                    let keys = last.iter().enumerate();
                    (keys.filter_map(|(i, e)| e.as_ref().map(|(k, _)| (k.clone(), i)))).collect()
                });
                *index.get(key)?
            }
        };
        self.cursor = i + 1;
        self.last[i].take()
    }

    /// Hand `m` to `out` with the names of the fields that need not be
    /// repeated (to be left out); before it, the zeros of counters that
    /// just appeared. A point left with no field is not handed on.
    pub fn apply(&mut self, m: &Metric, out: &mut dyn FnMut(&Metric, &[&str])) {
        let facts = facts(m.name);
        let counters = m.name == "pcie_aer";
        if !self.remember || (facts.is_empty() && !counters) {
            return out(m, &[]);
        }
        series_key(&mut self.key, m);
        let (hash, others) = facts_hash(m, facts);
        let (batch, t, refresh) = (self.batch, self.t, self.refresh_ns);
        let written: Option<Vec<Cow<'static, str>>> = (counters && m.fields.contains_key("total"))
            .then(|| {
                m.fields
                    .keys()
                    .filter(|k| !AER_TOTALS.contains(&k.as_ref()))
                    .cloned()
                    .collect()
            });
        let Some((key, mut s)) = self.take_last() else {
            let phase = phase(&self.key, refresh);
            let s = Seen {
                facts: hash,
                due: t.saturating_add(refresh.saturating_sub(phase)),
                batch,
                counters: written,
            };
            self.now.push(Some((self.key.clone(), s)));
            return out(m, &[]);
        };
        if let (Some(before), Some(now), Some(pt)) = (&s.counters, &written, self.prev_t) {
            if s.batch + 1 == batch {
                backfill_zeros(m, before, now, pt, out);
            }
        }
        s.counters = written;
        s.batch = batch;
        let changed = s.facts != hash;
        s.facts = hash;
        let due = t >= s.due;
        while s.due <= t && refresh > 0 {
            s.due = s.due.saturating_add(refresh);
        }
        self.now.push(Some((key, s)));
        if changed || due || refresh <= 0 || facts.is_empty() {
            return out(m, &[]);
        }
        // The writer leaves the facts out: no pruned copy of the point.
        if others {
            out(m, facts);
        }
    }
}

/// The counters in `now` that `before` did not have were zero then (the
/// total was written and the detail leaves off only zeros): say so at `pt`.
fn backfill_zeros(
    m: &Metric,
    before: &[Cow<'static, str>],
    now: &[Cow<'static, str>],
    pt: i64,
    out: &mut dyn FnMut(&Metric, &[&str]),
) {
    let new: Vec<&Cow<'static, str>> = now.iter().filter(|k| !before.contains(k)).collect();
    if new.is_empty() {
        return;
    }
    let mut z = Metric::new(m.name, pt);
    z.tags = m.tags.clone();
    for k in new {
        z.field(k.clone(), Field::Int(0));
    }
    out(&z, &[]);
}

fn series_key(key: &mut String, m: &Metric) {
    key.clear();
    key.push_str(m.name);
    for (k, v) in &m.tags {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
}

/// Each field value of `m` and, if the field is one of `facts`, its place
/// there. Both are in key order, so one walk through the two answers it,
/// not a search of `facts` per field.
fn fact_places<'m>(
    m: &'m Metric,
    facts: &'static [&'static str],
) -> impl Iterator<Item = (&'m Field<'m>, Option<usize>)> {
    let mut rest = facts.iter().enumerate().peekable();
    m.fields.iter().map(move |(k, v)| {
        let k_str: &str = k;
        while rest.next_if(|(_, f)| **f < k_str).is_some() {}
        let place = rest.peek().filter(|(_, f)| **f == k_str).map(|(i, _)| *i);
        (v, place)
    })
}

/// A hash of `m`'s facts (each by its place in `facts` and its value: the
/// place says the name), and whether `m` has any other field.
fn facts_hash(m: &Metric, facts: &'static [&'static str]) -> (u64, bool) {
    let mut h = Fold::default();
    let mut others = false;
    for (v, place) in fact_places(m, facts) {
        let Some(place) = place else {
            others = true;
            continue;
        };
        h.write_u64(place as u64);
        match v {
            Field::Int(i) => (0u8, i).hash(&mut h),
            Field::Float(f) => (1u8, f.to_bits()).hash(&mut h),
            Field::Str(s) => (2u8, s.as_ref()).hash(&mut h),
        }
    }
    (h.finish(), others)
}

/// Where in the refresh period this series' first refresh falls: spread by
/// its key, the same in every run.
fn phase(key: &str, refresh: i64) -> i64 {
    if refresh <= 0 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    i64::try_from(h.finish() % refresh.unsigned_abs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: i64 = 1_000_000_000;

    fn aer(t: i64, fields: &[(&'static str, i64)]) -> Metric<'static> {
        let mut m = Metric::new("pcie_aer", t);
        m.tag("address", "0000:01:00.0");
        m.tag("severity", "correctable");
        for (k, v) in fields {
            m.field(*k, Field::Int(*v));
        }
        m
    }

    fn link(t: i64, max_width: i64, width: i64) -> Metric<'static> {
        let mut m = Metric::new("pcie_link", t);
        m.tag("address", "0000:01:00.0");
        m.field("max_width", Field::Int(max_width));
        m.field("width", Field::Int(width));
        m
    }

    fn batch(th: &mut Thinner, t: i64, ms: &[Metric]) -> Vec<Metric<'static>> {
        let mut got = Vec::new();
        th.begin(t);
        for m in ms {
            th.apply(m, &mut |m, omit| {
                let mut kept = m.to_static();
                kept.fields.retain(|k, _| !omit.contains(&k.as_ref()));
                got.push(kept);
            });
        }
        th.end();
        got
    }

    fn keys(m: &Metric) -> Vec<String> {
        m.fields.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn facts_are_written_on_change_and_at_least_every_refresh() {
        let mut th = Thinner::new(Duration::from_secs(300));
        let first = batch(&mut th, 0, &[link(0, 16, 16)]);
        assert_eq!(keys(&first[0]), ["max_width", "width"]);
        let mut last_fact = 0;
        for i in 1..=120 {
            let t = i * 10 * S;
            let got = batch(&mut th, t, &[link(t, 16, 16)]);
            assert_eq!(got.len(), 1, "state every collection");
            if got[0].fields.contains_key("max_width") {
                assert!(t - last_fact <= 300 * S, "refresh gap at {t}");
                last_fact = t;
            }
        }
        assert!(last_fact > 0 && 1200 * S - last_fact <= 300 * S);
        let got = batch(&mut th, 1210 * S, &[link(1210 * S, 8, 8)]);
        assert_eq!(
            keys(&got[0]),
            ["max_width", "width"],
            "a change is written at once"
        );
    }

    #[test]
    fn a_counter_that_appears_is_zero_at_the_previous_collection() {
        let mut th = Thinner::new(Duration::from_secs(300));
        batch(&mut th, 10 * S, &[aer(10 * S, &[("total", 0)])]);
        let got = batch(
            &mut th,
            20 * S,
            &[aer(20 * S, &[("total", 1), ("rx_err", 1)])],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].time_unix_ns, 10 * S);
        assert_eq!(got[0].fields.get("rx_err"), Some(&Field::Int(0)));
        assert_eq!(got[0].tags, got[1].tags);
        assert_eq!(keys(&got[1]), ["rx_err", "total"]);
        // Already there: nothing more.
        let got = batch(
            &mut th,
            30 * S,
            &[aer(30 * S, &[("total", 2), ("rx_err", 2)])],
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn no_zero_without_a_total_or_after_a_gap() {
        let mut th = Thinner::new(Duration::from_secs(300));
        // First sight: the previous process may have written it; no guess.
        let got = batch(
            &mut th,
            10 * S,
            &[aer(10 * S, &[("total", 3), ("rx_err", 3)])],
        );
        assert_eq!(got.len(), 1);
        // The series missed a collection: its previous point is not the previous collection's.
        batch(&mut th, 20 * S, &[]);
        let got = batch(
            &mut th,
            30 * S,
            &[aer(30 * S, &[("total", 4), ("bad_tlp", 1)])],
        );
        assert_eq!(got.len(), 1);
        // No total: zeros are not left off, so nothing appears from zero.
        let mut th = Thinner::new(Duration::from_secs(300));
        batch(&mut th, 10 * S, &[aer(10 * S, &[("rx_err", 0)])]);
        let got = batch(
            &mut th,
            20 * S,
            &[aer(20 * S, &[("rx_err", 0), ("bad_tlp", 1)])],
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn series_are_known_whatever_their_order() {
        let dev = |address: &'static str, t| {
            let mut m = link(t, 16, 16);
            m.tag("address", address);
            m
        };
        let mut th = Thinner::new(Duration::from_secs(300));
        batch(&mut th, 0, &[dev("a", 0), dev("b", 0), dev("c", 0)]);
        // Reordered, one gone, one new: the known keep their facts back.
        let got = batch(&mut th, 1, &[dev("c", 1), dev("d", 1), dev("a", 1)]);
        let got: Vec<_> = got.iter().map(keys).collect();
        assert_eq!(
            got,
            [vec!["width"], vec!["max_width", "width"], vec!["width"]]
        );
        // The one gone was forgotten: it comes back whole.
        let got = batch(
            &mut th,
            2,
            &[dev("a", 2), dev("b", 2), dev("c", 2), dev("d", 2)],
        );
        let got: Vec<_> = got.iter().map(keys).collect();
        assert_eq!(
            got,
            [
                vec!["width"],
                vec!["max_width", "width"],
                vec!["width"],
                vec!["width"]
            ]
        );
    }

    #[test]
    fn a_single_batch_writes_every_point_whole() {
        let mut th = Thinner::single_batch();
        for t in [10 * S, 20 * S] {
            let got = batch(&mut th, t, &[link(t, 16, 16), aer(t, &[("total", 0)])]);
            assert_eq!(got.len(), 2);
            assert_eq!(keys(&got[0]), ["max_width", "width"]);
        }
    }

    #[test]
    fn the_fold_hash_tells_byte_strings_apart() {
        let hash = |parts: &[&str]| {
            let mut h = Fold::default();
            parts.iter().for_each(|p| p.hash(&mut h));
            h.finish()
        };
        assert_ne!(hash(&["ab"]), hash(&["ab\0"]));
        assert_ne!(hash(&["a", "b"]), hash(&["ab"]));
        assert_ne!(hash(&["12345678"]), hash(&["12345679"]));
        assert_eq!(hash(&["x", "y"]), hash(&["x", "y"]));
    }

    #[test]
    fn facts_are_in_key_order() {
        let measurements = [
            "pcie_device",
            "pcie_link",
            "pcie_aspm",
            "pcie_aer_status",
            "vfio_device",
            "iommu_group",
            "pcie_platform",
        ];
        for name in measurements {
            assert!(
                facts(name).is_sorted(),
                "{name}: fact_places walks them in order"
            );
        }
    }

    #[test]
    fn refresh_zero_writes_every_fact() {
        let mut th = Thinner::new(Duration::ZERO);
        batch(&mut th, 0, &[link(0, 16, 16)]);
        let got = batch(&mut th, 10 * S, &[link(10 * S, 16, 16)]);
        assert_eq!(keys(&got[0]), ["max_width", "width"]);
    }
}
