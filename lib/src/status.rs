//! How each collector fared this collection: success, duration, errors, why
//! data is missing, and what to tell a person (kept by [`Tally`]).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::collector::Collector;
use crate::read::{ErrorKind, ReadError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStatus {
    /// False when the collector could not run at all (its source unreadable).
    pub success: bool,
    pub duration_us: u64,
    /// Bad values omitted this collection.
    pub errors: u64,
    /// Why some data was missing (`permission`, `absent`, `EINVAL`...), sorted.
    pub unavailable: BTreeSet<String>,
}

/// One thing worth telling a person on stderr (rate-limited by the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub collector: Collector,
    pub message: String,
}

/// Per-collection bookkeeping shared by every collector.
#[derive(Debug, Default)]
pub struct Tally {
    pub status: BTreeMap<Collector, CollectorStatus>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Tally {
    pub fn entry(&mut self, c: Collector) -> &mut CollectorStatus {
        self.status.entry(c).or_insert_with(|| CollectorStatus {
            success: true,
            ..CollectorStatus::default()
        })
    }

    /// A read failed. Absence is normal (old kernels, optional files) and not
    /// recorded; permission and kernel refusals are reasons data is missing;
    /// garbage is an error.
    pub fn read_failed(&mut self, c: Collector, e: &ReadError) {
        match &e.kind {
            ErrorKind::Absent => {}
            ErrorKind::Permission => {
                self.entry(c).unavailable.insert("permission".into());
            }
            ErrorKind::Unavailable(errno) => {
                self.entry(c).unavailable.insert((*errno).to_string());
            }
            ErrorKind::Invalid(_) => self.error(c, e.to_string()),
        }
    }

    /// A value was present but unusable: omitted and counted.
    pub fn error(&mut self, c: Collector, message: String) {
        self.entry(c).errors += 1;
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    /// Worth telling a person, but not a bad value (a missing privilege).
    pub fn note(&mut self, c: Collector, message: String) {
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    pub fn unavailable(&mut self, c: Collector, why: &str) {
        self.entry(c).unavailable.insert(why.to_string());
    }

    pub fn failed(&mut self, c: Collector, message: String) {
        self.entry(c).success = false;
        self.diagnostics.push(Diagnostic {
            collector: c,
            message,
        });
    }

    pub fn add_time(&mut self, c: Collector, us: u64) {
        let e = self.entry(c);
        e.duration_us = e.duration_us.saturating_add(us);
    }
}
