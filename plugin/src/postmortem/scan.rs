//! Finding silences without pulling months of heartbeats: count heartbeats per
//! `GROUP BY time()` bucket, keep the buckets short of beats or where the boot
//! changes, refine those with narrower buckets, and read raw beats only there.

use super::influx::{quote, Client, Series};
use super::silence::{gaps, suspicious_ranges, threshold, usual_interval, Beat, Bucket, Gap, NS};

/// At most this many raw heartbeats in one read; wider ranges are bucketed.
const RAW_MAX: i64 = 4000;
const WIDTHS_S: [i64; 8] = [
    60,
    300,
    900,
    3600,
    6 * 3600,
    86_400,
    7 * 86_400,
    28 * 86_400,
];

pub struct Scan<'a> {
    pub client: &'a Client,
    pub host: String,
    pub now: i64,
}

fn beats(series: &[Series]) -> Vec<Beat> {
    let mut out: Vec<Beat> = series
        .iter()
        .flat_map(|s| s.rows())
        .map(|r| Beat {
            t: r.time,
            uptime_s: r.f64("uptime_s"),
            boot_id: r.str("boot_id").map(str::to_string),
            stopping: r.i64("stopping").unwrap_or(0) != 0,
        })
        .collect();
    out.sort_by_key(|b| b.t);
    out
}

impl Scan<'_> {
    fn host_is(&self) -> String {
        format!("\"host\" = {}", quote(&self.host))
    }

    fn beats_where(
        &self,
        cond: &str,
        order: &str,
        limit: Option<i64>,
    ) -> Result<Vec<Beat>, String> {
        let lim = limit.map_or_else(String::new, |l| format!(" LIMIT {l}"));
        let q = format!(
            "SELECT \"uptime_s\", \"boot_id\", \"stopping\" FROM \"vigil\" WHERE {} AND {cond} ORDER BY time {order}{lim}",
            self.host_is()
        );
        Ok(beats(&self.client.query(&[q])?.remove(0)))
    }

    /// The newest heartbeat at or before `t`.
    pub fn beat_before(&self, t: i64) -> Result<Option<Beat>, String> {
        Ok(self
            .beats_where(&format!("time <= {t}"), "DESC", Some(1))?
            .pop())
    }

    /// The first heartbeat after `t`.
    pub fn beat_after(&self, t: i64) -> Result<Option<Beat>, String> {
        Ok(self
            .beats_where(
                &format!("time > {t} AND time <= {}", self.now),
                "ASC",
                Some(1),
            )?
            .pop())
    }

    /// The usual heartbeat interval near `t`: the median step of up to 100 beats before it.
    pub fn interval(&self, t: i64) -> Result<Option<i64>, String> {
        let b = self.beats_where(&format!("time <= {t}"), "DESC", Some(100))?;
        Ok(usual_interval(&b.iter().map(|b| b.t).collect::<Vec<_>>()))
    }

    /// The newest stop mark before `t`: proof that this host's vigil marks its stops.
    pub fn last_stop_mark(&self, t: i64) -> Result<Option<i64>, String> {
        let q = format!(
            "SELECT last(\"stopping\") FROM \"vigil\" WHERE {} AND time < {t}",
            self.host_is()
        );
        let r = self.client.query(&[q])?;
        Ok(r[0].first().and_then(|s| s.rows().next()).map(|r| r.time))
    }

    fn buckets(&self, lo: i64, hi: i64, width_s: i64) -> Result<Vec<Bucket>, String> {
        let q = format!(
            "SELECT count(\"uptime_s\") AS n, first(\"boot_id\") AS b0, last(\"boot_id\") AS b1 FROM \"vigil\" WHERE {} AND time >= {lo} AND time < {hi} GROUP BY time({width_s}s)",
            self.host_is()
        );
        let r = self.client.query(&[q])?;
        Ok(r[0]
            .iter()
            .flat_map(|s| s.rows())
            .map(|r| Bucket {
                start: r.time,
                count: r.i64("n").unwrap_or(0),
                first_boot: r.str("b0").map(str::to_string),
                last_boot: r.str("b1").map(str::to_string),
            })
            .collect())
    }

    /// Contiguous runs of raw heartbeats, (lo, beats), covering every possible
    /// silence in [lo, hi).
    fn segments(
        &self,
        lo: i64,
        hi: i64,
        iv: i64,
        depth: u32,
        out: &mut Vec<(i64, Vec<Beat>)>,
    ) -> Result<(), String> {
        if (hi - lo) / iv <= RAW_MAX || depth >= 4 {
            let b = self.beats_where(
                &format!("time >= {lo} AND time < {hi}"),
                "ASC",
                Some(RAW_MAX * 50),
            )?;
            out.push((lo, b));
            return Ok(());
        }
        let width_s = WIDTHS_S
            .iter()
            .copied()
            .find(|w| (hi - lo) / (w * NS) <= 2000 && w * NS >= 20 * iv)
            .unwrap_or(WIDTHS_S[WIDTHS_S.len() - 1]);
        let buckets = self.buckets(lo, hi, width_s)?;
        for (a, b) in suspicious_ranges(&buckets, width_s * NS, (lo, hi), iv, threshold(iv)) {
            // A range that did not narrow is read raw rather than bucketed again.
            let next = if (a, b) == (lo, hi) { 4 } else { depth + 1 };
            self.segments(a, b, iv, next, out)?;
        }
        Ok(())
    }

    /// Every silence overlapping [lo, hi), each closed by the first beat after
    /// it when there is one. Empty when the host has no heartbeat at all.
    pub fn silences(&self, lo: i64, hi: i64) -> Result<Vec<Gap>, String> {
        let hi = hi.min(self.now + 1);
        let Some(iv) = self.interval(hi)? else {
            return Ok(Vec::new());
        };
        let thr = threshold(iv);
        let mut segs = Vec::new();
        self.segments(lo, hi, iv, 0, &mut segs)?;
        let mut out: Vec<Gap> = Vec::new();
        for (seg_lo, mut seg) in segs {
            // The beats just outside the segment close a silence that crosses its edges.
            if let Some(b) = self.beat_before(seg_lo - 1)? {
                seg.insert(0, b);
            }
            let Some(last) = seg.last().map(|b| b.t) else {
                continue;
            };
            // Only the newest beat of all can start a silence still going on.
            let after = self.beat_after(last)?;
            let open_at = after.is_none().then_some(self.now);
            seg.extend(after);
            for gap in gaps(&seg, thr, open_at) {
                if !out.iter().any(|o| o.last.t == gap.last.t) {
                    out.push(gap);
                }
            }
        }
        out.retain(|g| g.next.as_ref().is_none_or(|n| n.t >= lo) && g.last.t < hi);
        out.sort_by_key(|g| g.last.t);
        Ok(out)
    }
}
