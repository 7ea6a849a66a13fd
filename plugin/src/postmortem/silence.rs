//! Silences in the heartbeat: pure functions over `vigil` points.
//!
//! vigil writes one `vigil` point per collection (`uptime_s`, `boot_id`), and
//! a last one with `stopping=1` when Telegraf stops it. A silence is a gap
//! much longer than the usual interval, or a change of `boot_id` (a reboot,
//! however fast). What ended it tells how the node went down: a stop mark is
//! an orderly shutdown; no mark on a host whose vigil marks its stops is a
//! reset (power, reset button, watchdog, panic reboot); no mark from a host
//! that has never written one cannot be told apart.

use serde::Serialize;

pub const NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Beat {
    #[serde(skip)]
    pub t: i64,
    pub uptime_s: Option<f64>,
    pub boot_id: Option<String>,
    pub stopping: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reboot {
    /// vigil marked its last heartbeat: the node was shut down.
    Orderly,
    /// A new boot without the stop mark, on a host whose vigil marks stops.
    Reset,
    /// A new boot (or none yet), and nothing tells how it went down.
    Unknown,
    /// The same boot continued: the node kept running, the data did not arrive.
    None,
}

impl Reboot {
    pub fn name(self) -> &'static str {
        match self {
            Reboot::Orderly => "orderly",
            Reboot::Reset => "reset",
            Reboot::Unknown => "unknown",
            Reboot::None => "none",
        }
    }
}

/// A gap: the last heartbeat before it and the first after (None: still silent).
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub last: Beat,
    pub next: Option<Beat>,
}

impl Gap {
    pub fn new_boot(&self) -> bool {
        match (&self.next, &self.last.boot_id) {
            (Some(n), Some(a)) => n.boot_id.as_ref().is_some_and(|b| b != a),
            _ => false,
        }
    }

    /// When the next boot started: first heartbeat time minus its uptime.
    pub fn boot_at(&self) -> Option<i64> {
        let n = self.next.as_ref()?;
        if !self.new_boot() {
            return None;
        }
        let up = n.uptime_s.filter(|u| u.is_finite() && *u >= 0.0)?;
        Some(n.t - (up * NS as f64) as i64)
    }

    pub fn classify(&self, host_marks_stops: bool) -> Reboot {
        if self.next.is_some() && !self.new_boot() {
            return Reboot::None;
        }
        if self.last.stopping {
            Reboot::Orderly
        } else if self.next.is_some() && host_marks_stops {
            Reboot::Reset
        } else {
            Reboot::Unknown
        }
    }
}

/// The usual spacing of heartbeats: the median positive step.
pub fn usual_interval(times: &[i64]) -> Option<i64> {
    let mut steps: Vec<i64> = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_unstable();
    Some(steps[steps.len() / 2])
}

/// How long a gap must be to count as a silence: five intervals, at least a minute.
pub fn threshold(interval_ns: i64) -> i64 {
    (5 * interval_ns).max(60 * NS)
}

/// Every silence in time-ordered heartbeats; a last one still open when
/// the last beat is the newest there is and `now` is a threshold past it.
pub fn gaps(beats: &[Beat], threshold: i64, now: Option<i64>) -> Vec<Gap> {
    let mut out: Vec<Gap> = beats
        .windows(2)
        .filter(|w| {
            let boot_changed =
                matches!((&w[0].boot_id, &w[1].boot_id), (Some(a), Some(b)) if a != b);
            w[1].t - w[0].t >= threshold || boot_changed
        })
        .map(|w| Gap {
            last: w[0].clone(),
            next: Some(w[1].clone()),
        })
        .collect();
    if let (Some(l), Some(now)) = (beats.last(), now) {
        if now - l.t >= threshold {
            out.push(Gap {
                last: l.clone(),
                next: None,
            });
        }
    }
    out
}

/// One `GROUP BY time()` bucket of heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: i64,
    pub count: i64,
    pub first_boot: Option<String>,
    pub last_boot: Option<String>,
}

/// The parts of `range` that may hold a silence, judged from bucket counts
/// and boot ids: a bucket short of beats or where the boot changes, widened
/// by a neighbour each side so the beats around the gap are included.
pub fn suspicious_ranges(
    buckets: &[Bucket],
    width: i64,
    range: (i64, i64),
    interval: i64,
    threshold: i64,
) -> Vec<(i64, i64)> {
    let tolerance = (threshold / interval / 2).max(1) as f64;
    let mut marked = vec![false; buckets.len()];
    for (i, b) in buckets.iter().enumerate() {
        let covered = (b.start + width).min(range.1) - b.start.max(range.0);
        let expected = covered as f64 / interval as f64;
        let short = (b.count as f64) + tolerance < expected;
        let changed = b.first_boot != b.last_boot && b.count > 0;
        if short || changed {
            marked[i] = true;
        }
        if let Some(n) = buckets.get(i + 1) {
            if let (Some(a), Some(z)) = (&b.last_boot, &n.first_boot) {
                if a != z {
                    marked[i] = true;
                    marked[i + 1] = true;
                }
            }
        }
    }
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (i, b) in buckets.iter().enumerate().filter(|(i, _)| marked[*i]) {
        let lo = if i > 0 { buckets[i - 1].start } else { b.start }.max(range.0);
        let hi = (b.start + 2 * width).min(range.1);
        match out.last_mut() {
            Some(last) if lo < last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(t: i64, up: f64, boot: &str) -> Beat {
        Beat {
            t: t * NS,
            uptime_s: Some(up),
            boot_id: Some(boot.into()),
            stopping: false,
        }
    }

    /// The incident: 10 s heartbeats up to uptime 202,913 s at 15:54:50, then
    /// a new boot seen first at 19:12:00 with uptime 1,089 s.
    fn incident() -> Vec<Beat> {
        let last = 1_770_652_490;
        let mut v: Vec<Beat> = (0..30)
            .map(|i| beat(last - 290 + i * 10, 202_623.0 + i as f64 * 10.0, "a"))
            .collect();
        let back = 1_770_663_120;
        v.extend((0..5).map(|i| beat(back + i * 10, 1089.0 + i as f64 * 10.0, "b")));
        v
    }

    #[test]
    fn the_incident_is_one_silence_ended_by_a_new_boot() {
        let beats = incident();
        let iv = usual_interval(&beats.iter().map(|b| b.t).collect::<Vec<_>>()).expect("interval");
        assert_eq!(iv, 10 * NS);
        let g = gaps(
            &beats,
            threshold(iv),
            Some(beats.last().expect("beats").t + 10 * NS),
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].last.t, 1_770_652_490 * NS);
        assert_eq!(g[0].last.uptime_s, Some(202_913.0));
        assert_eq!(g[0].next.as_ref().expect("back").t, 1_770_663_120 * NS);
        // 19:12:00 minus 1,089 s: booted at 18:53:51.
        assert_eq!(g[0].boot_at(), Some(1_770_662_031 * NS));
        assert_eq!(g[0].classify(true), Reboot::Reset);
        assert_eq!(g[0].classify(false), Reboot::Unknown);
    }

    #[test]
    fn a_stop_mark_is_an_orderly_reboot_and_a_fast_reboot_still_counts() {
        let mut beats = vec![beat(0, 500.0, "a"), beat(10, 510.0, "a")];
        beats[1].stopping = true;
        beats.push(beat(40, 12.0, "b")); // 30 s: shorter than the threshold
        let g = gaps(&beats, threshold(10 * NS), Some(50 * NS));
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].classify(false), Reboot::Orderly);
    }

    #[test]
    fn same_boot_gaps_and_open_silences() {
        let beats = vec![
            beat(0, 100.0, "a"),
            beat(10, 110.0, "a"),
            beat(400, 500.0, "a"),
        ];
        let g = gaps(&beats, threshold(10 * NS), Some(1000 * NS));
        // Not the newest beats: no open silence at the end.
        assert_eq!(gaps(&beats, threshold(10 * NS), None).len(), 1);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].classify(true), Reboot::None);
        assert_eq!(g[0].boot_at(), None);
        assert!(g[1].next.is_none());
        assert_eq!(g[1].classify(true), Reboot::Unknown);
        // Live host: nothing open.
        assert_eq!(gaps(&beats, threshold(10 * NS), Some(420 * NS)).len(), 1);
        assert!(gaps(&[], 60 * NS, Some(0)).is_empty());
    }

    #[test]
    fn jitter_is_not_a_silence() {
        let beats: Vec<Beat> = [0, 10, 21, 30, 41, 50, 75, 80]
            .iter()
            .map(|t| beat(*t, 0.0, "a"))
            .collect();
        assert!(gaps(&beats, threshold(10 * NS), Some(80 * NS)).is_empty());
    }

    fn bucket(start: i64, count: i64, a: &str, b: &str) -> Bucket {
        let s = |x: &str| (!x.is_empty()).then(|| x.to_string());
        Bucket {
            start: start * NS,
            count,
            first_boot: s(a),
            last_boot: s(b),
        }
    }

    #[test]
    fn buckets_short_of_beats_or_changing_boot_are_refined_with_neighbours() {
        let h = 3600;
        let b = vec![
            bucket(0, 360, "a", "a"),
            bucket(h, 359, "a", "a"), // one beat lost: noise
            bucket(2 * h, 200, "a", "a"),
            bucket(3 * h, 0, "", ""),
            bucket(4 * h, 360, "b", "b"),
            bucket(5 * h, 360, "b", "b"),
            bucket(6 * h, 360, "b", "c"), // fast reboot inside a full bucket
            bucket(7 * h, 360, "c", "c"),
            bucket(8 * h, 360, "c", "c"),
        ];
        let r = suspicious_ranges(&b, h * NS, (0, 9 * h * NS), 10 * NS, 60 * NS);
        assert_eq!(r, vec![(h * NS, 5 * h * NS), (5 * h * NS, 8 * h * NS)]);
        // Partial first and last buckets expect proportionally fewer beats.
        let p = vec![bucket(0, 180, "a", "a"), bucket(h, 90, "a", "a")];
        assert!(
            suspicious_ranges(&p, h * NS, (h / 2 * NS, (h + h / 4) * NS), 10 * NS, 60 * NS)
                .is_empty()
        );
    }
}
