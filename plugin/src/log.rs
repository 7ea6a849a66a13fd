//! stderr for Telegraf: every line starts with `E! `, `W! `, `I! ` or `D! `
//! (execd maps them to log levels). Repeated warnings are rate-limited: the
//! same problem is told once per [`REPEAT_AFTER`], and at most [`PER_BATCH`]
//! lines per collection, so a broken device cannot flood Telegraf's log.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub const REPEAT_AFTER: Duration = Duration::from_secs(600);
pub const PER_BATCH: usize = 5;

pub fn error(msg: &str) {
    line('E', msg);
}
pub fn warn(msg: &str) {
    line('W', msg);
}
pub fn info(msg: &str) {
    line('I', msg);
}

fn line(level: char, msg: &str) {
    // One line per message: an embedded newline would lose its prefix.
    let msg: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(4000)
        .collect();
    let _ = writeln!(std::io::stderr().lock(), "{level}! {msg}");
}

#[derive(Default)]
pub struct Limiter {
    last: HashMap<String, Instant>,
}

impl Limiter {
    /// Warn about this batch's problems, subject to the limits.
    pub fn warn_batch<'a>(&mut self, msgs: impl Iterator<Item = &'a str>) {
        let now = Instant::now();
        let mut told = 0;
        let mut held = 0;
        for m in msgs {
            // Numbers change between batches (counts, offsets); the shape is the problem.
            let key: String = m.chars().filter(|c| !c.is_ascii_digit()).collect();
            let fresh = self
                .last
                .get(&key)
                .is_none_or(|t| now.duration_since(*t) >= REPEAT_AFTER);
            if !fresh {
                continue;
            }
            if told < PER_BATCH {
                line('W', m);
                self.last.insert(key, now);
                told += 1;
            } else {
                held += 1;
            }
        }
        if held > 0 {
            line(
                'W',
                &format!(
                    "{held} more problems this collection not shown (see vigil_collector errors)"
                ),
            );
        }
        // Bound the memory of what was said.
        if self.last.len() > 4096 {
            self.last
                .retain(|_, t| now.duration_since(*t) < REPEAT_AFTER);
        }
    }
}
