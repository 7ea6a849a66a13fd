//! Collectors on worker threads, against one deadline for the collection.
//!
//! Any read can block for good: `/etc/pve` is a FUSE filesystem that blocks
//! when the cluster loses quorum, `/proc/<pid>/cmdline` of a QEMU stuck in
//! the kernel waits on its mmap lock, a device being reset sleeps in its
//! reads. The thread that writes the heartbeat must never be the one that
//! blocks, so each collector runs on a thread of its own and the collection
//! takes what has come back by the deadline; a collector that has not is
//! reported `unavailable="timeout"` and its thread abandoned.
//!
//! An abandoned thread cannot be killed; it ends when its read returns. So
//! that a stuck read does not cost one more thread every collection (execd
//! is one long process), what is stuck is remembered: the path a watched
//! read is blocked in is refused at once until it returns
//! ([`read::Watch`]), and a collector whose thread is blocked somewhere
//! unknown is not started again until that thread ends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::collector::Collector;
use crate::read::{self, Access, Watch};
use crate::status::Tally;

/// Collectors (by root) whose abandoned thread is blocked outside any watched read.
static BUSY: Mutex<BTreeSet<(PathBuf, &'static str)>> = Mutex::new(BTreeSet::new());

fn busy() -> std::sync::MutexGuard<'static, BTreeSet<(PathBuf, &'static str)>> {
    BUSY.lock().unwrap_or_else(|p| p.into_inner())
}

type Done<T> = (T, Tally, BTreeMap<PathBuf, Access>);

/// A collector running on its own thread.
pub struct Job<T> {
    key: (PathBuf, &'static str),
    /// Where its failure to finish is reported.
    collectors: &'static [Collector],
    state: State<T>,
}

enum State<T> {
    Running {
        rx: Receiver<Done<T>>,
        watch: Arc<Watch>,
        /// Set, under [`BUSY`]'s lock, when the thread ends.
        ended: Arc<AtomicBool>,
    },
    /// Not started: its previous thread is still blocked.
    Blocked,
}

/// Start `f` on a thread named `vigil-<name>`, unless the previous one for
/// the same root is still blocked. The thread records accesses for `vigil capture` when the
/// caller does.
pub fn spawn<T: Send + 'static>(
    root: PathBuf,
    name: &'static str,
    collectors: &'static [Collector],
    f: impl FnOnce(&mut Tally) -> T + Send + 'static,
) -> Job<T> {
    let key = (root, name);
    if busy().contains(&key) {
        return Job {
            key,
            collectors,
            state: State::Blocked,
        };
    }
    let (tx, rx) = mpsc::channel();
    let watch = Arc::new(Watch::default());
    let w = Arc::clone(&watch);
    let ended = Arc::new(AtomicBool::new(false));
    let end = Arc::clone(&ended);
    let recording = read::is_recording();
    let k = key.clone();
    let started = std::thread::Builder::new()
        .name(format!("vigil-{name}"))
        .spawn(move || {
            w.install();
            let mut tally = Tally::default();
            let (out, seen) = if recording {
                read::record_accesses(|| f(&mut tally))
            } else {
                (f(&mut tally), BTreeMap::new())
            };
            {
                let mut b = busy();
                b.remove(&k);
                end.store(true, Ordering::SeqCst);
            }
            let _ = tx.send((out, tally, seen));
        });
    let state = match started {
        Ok(_) => State::Running { rx, watch, ended },
        // No thread to be had: report it as not done, like a stuck one.
        Err(_) => State::Blocked,
    };
    Job {
        key,
        collectors,
        state,
    }
}

impl<T> Job<T> {
    /// The result, if it comes by `deadline`; its tally is merged into
    /// `tally` either way (a timeout as `unavailable="timeout"`).
    pub fn wait(self, deadline: Instant, tally: &mut Tally) -> Option<T> {
        let why = match self.state {
            State::Running { rx, watch, ended } => {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok((out, t, seen)) => {
                        merge(tally, t);
                        read::absorb(seen);
                        return Some(out);
                    }
                    Err(_) => match watch.abandon() {
                        Some(path) => format!("reading {} did not return in time", path.display()),
                        None => {
                            let mut b = busy();
                            if !ended.load(Ordering::SeqCst) {
                                b.insert(self.key.clone());
                            }
                            "did not finish in time".to_string()
                        }
                    },
                }
            }
            State::Blocked => "not started: its previous run is still blocked".to_string(),
        };
        for c in self.collectors {
            tally.unavailable(*c, read::TIMEOUT);
        }
        if let Some(c) = self.collectors.first() {
            tally.note(*c, format!("{}: {why}", self.key.1));
        }
        None
    }
}

/// A worker's bookkeeping, added to the collection's.
pub fn merge(into: &mut Tally, from: Tally) {
    for (c, st) in from.status {
        let e = into.entry(c);
        e.success &= st.success;
        e.duration_us = e.duration_us.saturating_add(st.duration_us);
        e.errors += st.errors;
        e.unavailable.extend(st.unavailable);
    }
    into.diagnostics.extend(from.diagnostics);
}
