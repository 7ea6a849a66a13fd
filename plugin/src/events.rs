//! Following `/dev/kmsg` in execd and `--interval` modes: each hardware event
//! is written the moment it is read, flushed, never inside a batch (both take
//! stdout's lock for a whole write). A storm is cut by the library's limit (per
//! category and device, in kernel time; what matters always passes); what was
//! held back is summarised with the next batch.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_collector::kmsg::{Budget, Limiter, Reader, Stats, Suppressed};
use vigil_collector::read::ErrorKind;
use vigil_collector::{CollectorStatus, Root};

use crate::cli::Format;
use crate::metric::Metric;
use crate::{json, lineproto, log};

/// One read: a real ring replays in a few of these; `/dev/zero` cannot run away.
const READ_BUDGET: Budget = Budget {
    bytes: 1 << 20,
    records: 10_000,
};
/// Reads and bytes per second of wall time beyond which the follower sleeps out
/// the second. A real ring replays a few MiB at start; /dev/kmsg then trickles.
const MAX_READS_PER_S: u64 = 20_000;
const MAX_BYTES_PER_S: u64 = 4 << 20;

/// What the follower reports into the batches' `vigil_collector` line.
#[derive(Default)]
pub struct FollowState {
    /// Why the follower cannot run (permission, unreadable, stopped): every batch.
    lasting: CollectorStatus,
    /// What happened since the last batch (overruns, errors): that batch only.
    since_last: Stats,
    suppressed: Vec<Suppressed>,
}

impl FollowState {
    /// This batch's status and summaries; the per-batch part starts again.
    pub fn take(&mut self) -> (CollectorStatus, Vec<Suppressed>) {
        let mut st = self.lasting.clone();
        let stats = std::mem::take(&mut self.since_last);
        st.errors += stats.errors;
        st.unavailable
            .extend(stats.reasons().into_iter().map(str::to_string));
        (st, std::mem::take(&mut self.suppressed))
    }
}

pub struct Follower {
    pub state: Arc<Mutex<FollowState>>,
    limiter: Arc<Mutex<Limiter>>,
}

impl Follower {
    pub fn start(root: Root, format: Format) -> Follower {
        let limiter = Arc::new(Mutex::new(Limiter::default()));
        let state = Arc::new(Mutex::new(FollowState {
            lasting: CollectorStatus {
                success: true,
                ..CollectorStatus::default()
            },
            ..FollowState::default()
        }));
        // Opened here, not in the thread: a permission or other failure is
        // then in the state before the first batch can be written.
        if let Some(reader) = open(&root, &state) {
            let (l2, s2) = (limiter.clone(), state.clone());
            std::thread::spawn(move || follow(reader, format, &l2, &s2));
        }
        Follower { state, limiter }
    }

    /// Status and summaries for this batch (the limiter's held-back counts included).
    pub fn take(&self) -> (CollectorStatus, Vec<Suppressed>) {
        let held = self
            .limiter
            .lock()
            .map(|mut l| l.take_suppressed())
            .unwrap_or_default();
        let Ok(mut s) = self.state.lock() else {
            return (CollectorStatus::default(), held);
        };
        s.suppressed.extend(held);
        s.take()
    }
}

fn set_unavailable(state: &Mutex<FollowState>, why: &str) {
    if let Ok(mut s) = state.lock() {
        s.lasting.unavailable.insert(why.to_string());
    }
}

fn open(root: &Root, state: &Mutex<FollowState>) -> Option<Reader> {
    let e = match Reader::open(root, false) {
        Ok(r) => return Some(r),
        Err(e) => e,
    };
    let why = match e.kind {
        ErrorKind::Permission => {
            log::warn(&format!(
                "{}: permission denied: no kernel events (set kernel.dmesg_restrict=0 or grant CAP_SYSLOG, see README)",
                e.path.display()
            ));
            "permission"
        }
        // No kmsg (a capture without one, a container): nothing to follow,
        // as in --once, where absence is not a reason worth reporting.
        ErrorKind::Absent => return None,
        _ => {
            log::warn(&e.to_string());
            "unreadable"
        }
    };
    set_unavailable(state, why);
    None
}

fn follow(
    mut reader: Reader,
    format: Format,
    limiter: &Mutex<Limiter>,
    state: &Mutex<FollowState>,
) {
    let mut pace = Pace {
        since: Instant::now(),
        at: (0, 0),
    };
    loop {
        let events = match reader.read_available(READ_BUDGET) {
            Ok(events) => events,
            Err(e) => {
                log::warn(&format!(
                    "{}: {e}; kernel event follower stopped",
                    reader.path().display()
                ));
                set_unavailable(state, "error");
                return;
            }
        };
        let truncated = std::mem::take(&mut reader.stats.truncated);
        if let Ok(mut s) = state.lock() {
            let st = std::mem::take(&mut reader.stats);
            s.since_last.overruns += st.overruns;
            s.since_last.errors += st.errors;
            s.since_last.no_boot_time += st.no_boot_time;
        }
        let admitted: Vec<Metric> = {
            let Ok(mut lim) = limiter.lock() else { return };
            events
                .iter()
                .filter(|e| lim.admit(e))
                .map(crate::convert::event_metric)
                .collect()
        };
        if !admitted.is_empty() && !write(format, &admitted) {
            return; // stdout gone: the main loop exits on its next write
        }
        if events.is_empty() && !reader.is_device() && !truncated {
            // A captured file at its end: poll for appended records.
            std::thread::sleep(Duration::from_millis(100));
        }
        pace.keep(reader.read_total);
    }
}

/// Sleeps out the current second once it has seen too many reads or bytes: a
/// character device that never ends (`/dev/zero` in place of the ring) costs a
/// bounded share of a CPU.
struct Pace {
    since: Instant,
    at: (u64, u64),
}

impl Pace {
    fn keep(&mut self, total: (u64, u64)) {
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            *self = Pace {
                since: Instant::now(),
                at: total,
            };
            return;
        }
        let (bytes, reads) = (total.0 - self.at.0, total.1 - self.at.1);
        if bytes >= MAX_BYTES_PER_S || reads >= MAX_READS_PER_S {
            std::thread::sleep(Duration::from_secs(1).saturating_sub(elapsed));
            *self = Pace {
                since: Instant::now(),
                at: total,
            };
        }
    }
}

fn write(format: Format, metrics: &[Metric]) -> bool {
    let text = match format {
        // Prometheus runs --once only: no follower.
        Format::Influx | Format::Prometheus => lineproto::write(metrics),
        Format::Json => json::write(metrics),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_status_starts_again_but_lasting_reasons_stay() {
        let mut s = FollowState::default();
        s.lasting.unavailable.insert("permission".into());
        s.since_last.overruns = 1;
        s.since_last.errors = 3;
        let (first, _) = s.take();
        assert_eq!(first.errors, 3);
        assert!(first.unavailable.contains("overrun"));
        let (second, _) = s.take();
        assert_eq!(second.errors, 0);
        assert_eq!(
            second.unavailable.into_iter().collect::<Vec<_>>(),
            vec!["permission".to_string()]
        );
    }
}
