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
    /// Nanoseconds since the start or the last lap, and a new lap begins:
    /// one clock read per boundary between the parts of a loop, and
    /// nothing lost to rounding each part down to a microsecond (at 2,000
    /// devices, parts of a microsecond each summed to zero).
    pub fn lap_ns(&mut self) -> u64 {
        if self.fixed {
            return 0;
        }
        let now = Instant::now();
        let ns = now.saturating_duration_since(self.start).as_nanos();
        self.start = now;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    pub fn elapsed_us(&self) -> u64 {
        if self.fixed {
            0
        } else {
            u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Laps lose nothing between them: their sum is the time from the start
    /// to the last lap, to the nanosecond, however short each one is.
    #[test]
    fn laps_add_up_to_the_whole() {
        let mut sw = Clock::System.start();
        let begun = sw.start;
        let sum: u64 = (0..10_000).map(|_| sw.lap_ns()).sum();
        assert_eq!(u128::from(sum), sw.start.duration_since(begun).as_nanos());
        let mut fixed = Clock::Fixed { unix_ns: 1 }.start();
        assert_eq!(
            fixed.lap_ns(),
            0,
            "a fixed clock: reproducible zero durations"
        );
    }
}
