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
//!
//! A session's threads are workers kept between its collections
//! ([`run_on_worker`]; a single collection's end with their task):
//! a collector's worker is handed back for the next collection only once its
//! result has come, so a worker given up on is never given more work, and
//! ends, as a thread of its own did, when its read returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
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

/// Work for a worker thread.
pub type Task = Box<dyn FnOnce() + Send>;

/// Idle worker threads by name. A long-running process collects every 10 s;
/// starting and ending a thread per collector each time (its stack and
/// thread-local buffers faulted in afresh) cost more than the smaller
/// collectors' work. A worker is handed back only by whoever saw its task
/// end ([`give_back`]); one given up on is not, so the last sender of its
/// queue goes and it ends when its blocked read returns, as a thread of its
/// own did.
static IDLE: Mutex<BTreeMap<&'static str, Vec<Sender<Task>>>> = Mutex::new(BTreeMap::new());

/// Idle workers kept per name: one process runs one collection at a time;
/// tests run several, and need not keep a thread for each.
const IDLE_PER_NAME: usize = 2;

fn idle() -> std::sync::MutexGuard<'static, BTreeMap<&'static str, Vec<Sender<Task>>>> {
    IDLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `task` on an idle worker named `vigil-<name>`, or on a new one; the
/// worker's queue, to hand back with [`give_back`] once the task is seen to
/// end. `None`: no thread to be had.
pub fn run_on_worker(name: &'static str, task: Task) -> Option<Sender<Task>> {
    let mut task = task;
    while let Some(worker) = idle().get_mut(name).and_then(Vec::pop) {
        match worker.send(task) {
            Ok(()) => return Some(worker),
            // It ended (it cannot, while idle; but then a new one).
            Err(mpsc::SendError(t)) => task = t,
        }
    }
    let (tx, rx) = mpsc::channel::<Task>();
    tx.send(task).ok()?;
    std::thread::Builder::new()
        .name(format!("vigil-{name}"))
        .spawn(move || {
            while let Ok(task) = rx.recv() {
                task();
            }
        })
        .ok()?;
    Some(tx)
}

/// Run `task` on a thread of its own named `vigil-<name>`, which ends with
/// it: for a single collection, whose second stage's threads then reuse the
/// first's stacks. False: no thread to be had.
pub fn run_on_own_thread(name: &'static str, task: Task) -> bool {
    std::thread::Builder::new()
        .name(format!("vigil-{name}"))
        .spawn(task)
        .is_ok()
}

/// [`run_on_worker`] where `keep`, else [`run_on_own_thread`]: `None` when
/// no thread was to be had, else the worker's queue where there is one.
pub fn run(name: &'static str, keep: bool, task: Task) -> Option<Option<Sender<Task>>> {
    if keep {
        run_on_worker(name, task).map(Some)
    } else {
        run_on_own_thread(name, task).then_some(None)
    }
}

/// A worker whose task has ended, free for the next.
pub fn give_back(name: &'static str, worker: Sender<Task>) {
    let mut idle = idle();
    let list = idle.entry(name).or_default();
    if list.len() < IDLE_PER_NAME {
        list.push(worker);
    }
}

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
        /// A kept worker's queue: handed back once the result is in.
        worker: Option<Sender<Task>>,
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
    keep: bool,
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
    let started = run(
        name,
        keep,
        Box::new(move || {
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
        }),
    );
    let state = match started {
        Some(worker) => State::Running {
            rx,
            worker,
            watch,
            ended,
        },
        // No thread to be had: report it as not done, like a stuck one.
        None => State::Blocked,
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
            State::Running {
                rx,
                worker,
                watch,
                ended,
            } => {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok((out, t, seen)) => {
                        if let Some(w) = worker {
                            give_back(self.key.1, w);
                        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;
    use std::time::Duration;

    /// A task that says which thread ran it, once `go` lets it.
    fn reporting(tx: &Sender<ThreadId>, go: Option<Receiver<()>>) -> Task {
        let tx = tx.clone();
        Box::new(move || {
            if let Some(go) = go {
                let _ = go.recv();
            }
            let _ = tx.send(std::thread::current().id());
        })
    }

    /// A worker handed back runs the next task; one given up on (blocked,
    /// not handed back) is never given another, which runs at once on a
    /// thread of its own.
    #[test]
    fn a_worker_is_reused_and_one_given_up_on_is_not() {
        let name = "test-reuse";
        let (tx, rx) = mpsc::channel();
        let wait = |rx: &Receiver<ThreadId>| rx.recv_timeout(Duration::from_secs(10)).expect("ran");
        let w = run_on_worker(name, reporting(&tx, None)).expect("a thread");
        let first = wait(&rx);
        give_back(name, w);
        let w = run_on_worker(name, reporting(&tx, None)).expect("a thread");
        assert_eq!(wait(&rx), first, "the idle worker ran it");
        give_back(name, w);
        let (release, blocked) = mpsc::channel();
        let stuck = run_on_worker(name, reporting(&tx, Some(blocked))).expect("a thread");
        drop(stuck);
        let w = run_on_worker(name, reporting(&tx, None)).expect("a thread");
        let other = wait(&rx);
        assert_ne!(other, first, "not queued behind the blocked one");
        give_back(name, w);
        release.send(()).expect("still blocked");
        assert_eq!(wait(&rx), first, "the blocked one ends its task");
    }
}
