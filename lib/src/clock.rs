//! The collection's clock: wall time for the timestamp, a stopwatch for
//! durations, or one fixed instant for reproducible output.

use std::time::Instant;

/// Wall clock and stopwatch. `Fixed` makes output reproducible: one timestamp,
/// zero durations (goldens, `--fake-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed { unix_ns: i64 },
}

impl Clock {
    pub fn now_unix_ns(self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            Clock::Fixed { unix_ns } => unix_ns,
        }
    }
    pub fn start(self) -> Stopwatch {
        Stopwatch {
            start: Instant::now(),
            fixed: matches!(self, Clock::Fixed { .. }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    start: Instant,
    fixed: bool,
}

impl Stopwatch {
    pub fn elapsed_us(&self) -> u64 {
        if self.fixed {
            0
        } else {
            u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
        }
    }
}
