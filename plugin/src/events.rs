//! Following `/dev/kmsg` in execd and `--interval` modes: each hardware event
//! is written the moment it is read, flushed, never inside a batch (both take
//! stdout's lock for a whole write). A storm is cut by a per-category rate
//! limit; what was dropped is counted and reported with the next batch.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_collector::kmsg::{Category, Reader};
use vigil_collector::read::ErrorKind;
use vigil_collector::{CollectorStatus, Root};

use crate::cli::Format;
use crate::metric::Metric;
use crate::{json, lineproto, log};

/// At most BURST events per category per WINDOW.
pub const WINDOW: Duration = Duration::from_secs(10);
pub const BURST: u32 = 20;

#[derive(Default)]
pub struct Limiter {
    windows: BTreeMap<Category, (Option<Instant>, u32)>,
    suppressed: BTreeMap<Category, u64>,
}

impl Limiter {
    pub fn admit(&mut self, c: Category, now: Instant) -> bool {
        let (start, n) = self.windows.entry(c).or_insert((None, 0));
        if start.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            *start = Some(now);
            *n = 0;
        }
        if *n < BURST {
            *n += 1;
            true
        } else {
            *self.suppressed.entry(c).or_default() += 1;
            false
        }
    }

    pub fn take_suppressed(&mut self) -> BTreeMap<Category, u64> {
        std::mem::take(&mut self.suppressed)
    }
}

/// What the follower reports into each batch's `vigil_collector` line.
#[derive(Default)]
pub struct FollowState {
    pub status: CollectorStatus,
}

pub struct Follower {
    pub limiter: Arc<Mutex<Limiter>>,
    pub state: Arc<Mutex<FollowState>>,
}

impl Follower {
    pub fn start(root: Root, format: Format) -> Follower {
        let limiter = Arc::new(Mutex::new(Limiter::default()));
        let state = Arc::new(Mutex::new(FollowState {
            status: CollectorStatus {
                success: true,
                ..CollectorStatus::default()
            },
        }));
        let (l2, s2) = (limiter.clone(), state.clone());
        std::thread::spawn(move || follow(&root, format, &l2, &s2));
        Follower { limiter, state }
    }
}

fn set_unavailable(state: &Mutex<FollowState>, why: &str) {
    if let Ok(mut s) = state.lock() {
        s.status.unavailable.insert(why.to_string());
    }
}

fn follow(root: &Root, format: Format, limiter: &Mutex<Limiter>, state: &Mutex<FollowState>) {
    let mut reader = match Reader::open(root, false) {
        Ok(r) => r,
        Err(e) => {
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
                ErrorKind::Absent => return,
                _ => {
                    log::warn(&e.to_string());
                    "unreadable"
                }
            };
            set_unavailable(state, why);
            return;
        }
    };
    let mut overruns = 0;
    loop {
        match reader.read_available() {
            Ok(events) => {
                if reader.overruns > overruns {
                    overruns = reader.overruns;
                    set_unavailable(state, "overrun");
                }
                let now = Instant::now();
                let admitted: Vec<Metric> = {
                    let Ok(mut lim) = limiter.lock() else { return };
                    events
                        .iter()
                        .filter(|e| lim.admit(e.category, now))
                        .map(crate::convert::event_metric)
                        .collect()
                };
                if !admitted.is_empty() {
                    let text = match format {
                        Format::Influx => lineproto::write(&admitted),
                        Format::Json => json::write(&admitted),
                    };
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(text.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return; // stdout gone: the main loop exits on its next write
                    }
                }
                if events.is_empty() && !reader.is_device() {
                    // A captured file: poll for appended records.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => {
                log::warn(&format!(
                    "{}: {e}; kernel event follower stopped",
                    reader.path().display()
                ));
                set_unavailable(state, "error");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storms_are_cut_and_counted() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let passed = (0..100).filter(|_| l.admit(Category::Aer, t0)).count();
        assert_eq!(passed, BURST as usize);
        assert!(
            l.admit(Category::Lockup, t0),
            "categories are limited separately"
        );
        assert_eq!(l.take_suppressed().get(&Category::Aer), Some(&80));
        assert!(l.take_suppressed().is_empty());
        assert!(
            l.admit(Category::Aer, t0 + WINDOW),
            "a new window admits again"
        );
    }
}
