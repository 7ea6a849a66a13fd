//! The reads the observer rule governs, on a thread of their own.
//!
//! For each device, in topological order: `power_state` and
//! `power/runtime_status` first, then, only if the device and every bridge
//! above it are awake, `config` and the four link files (whose reads resume a
//! sleeping device or its parent, kernel-abi.md §1.4). `vendor` and `device`
//! come along because they decide whether the config space read is this
//! device's, hence whether the link files are needed at all.
//!
//! Why a thread: a `config` read sleeps in the kernel while the device is
//! being reset (FLR, a VFIO reset at VM start; up to a minute for a device
//! "not ready after FLR", kernel-abi.md §4.2), and one such device must not
//! stall the collection. Why one thread for the whole pass rather than a
//! hand-off per device: the thread runs ahead of the main pass, which finds
//! each device's result already waiting, so the two never wake each other
//! (a hand-off per device cost two futex calls and two context switches per
//! function). Checking the power state and reading what it guards stay side
//! by side on the same thread, so the check is never stale.
//!
//! The main pass takes results in order ([`Observer::take`]), waiting at most
//! [`super::CONFIG_TIMEOUT`] for each, and never past the collection's
//! deadline. A device whose result does not come is stuck: it is reported as
//! `timeout`, the stuck thread is abandoned (it ends when the kernel returns,
//! and its result goes nowhere), and a fresh thread takes over from the next
//! device, treating the stuck one as asleep so that nothing below it is read
//! either (a bridge in reset blocks its whole subtree). Past the deadline no
//! thread is started: what is left is reported as `timeout`.
//!
//! A stuck device is remembered across collections until its read returns
//! (execd is one long process): later passes do not touch it, so a device
//! that stays in reset costs one blocked thread, not one per collection.
//!
//! No wake fails closed: a power state or runtime status that cannot be read
//! counts as asleep (kernel-abi.md §1.4); only an absent file (an old kernel)
//! counts as awake.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::config_space::{self, ConfigSpace};
use super::memory::KnownIds;
use super::parse::{PowerState, RuntimeStatus};
use crate::jobs;
use crate::read::{self, DirHandle, ErrorKind, HeldFile, ReadError};

/// Device directories an abandoned observer thread is still blocked in.
static STUCK: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn stuck() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    STUCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The link attributes, in the order [`Observed::link`] holds them.
pub const LINK_FILES: [&str; 4] = [
    "current_link_speed",
    "current_link_width",
    "max_link_speed",
    "max_link_width",
];

/// What one pass is to read; shared by every thread of the pass.
pub struct ReadPlan {
    /// The bus directory (`/sys/bus/pci/devices` under the root).
    pub bus: PathBuf,
    /// Device names with the bridges above them (nearest last), bridges first.
    pub order: Vec<(String, super::Chain)>,
    /// Per device, the device whose directory holds its own: opened from
    /// there, one path component, instead of through the bus link.
    pub parent: Vec<Option<usize>>,
    /// Read `config` (some selected collector uses it).
    pub config: bool,
    /// Read the link files where `config` does not already hold the link registers.
    pub link: bool,
    /// Keep raw config bytes for `vigil capture`.
    pub record: bool,
    /// Per device (same index as `order`), what a long-running process
    /// already knows of it; empty in a cold collection.
    pub known: Vec<Option<KnownIds>>,
    /// A long-running process: note what is to be kept of a device read afresh.
    pub keeps: bool,
    /// Device directories sent on and not yet taken (see [`MAX_HELD`]).
    pub held: AtomicUsize,
}

/// Most device directories held open in the queue: the thread runs ahead, and
/// on a large tree an open handle per queued device would approach the
/// 1,024 descriptors a service gets by default (a quarter of them at most).
/// Past it, the main pass opens
/// the directory again.
pub const MAX_HELD: usize = 256;

impl ReadPlan {
    fn dir(&self, i: usize) -> PathBuf {
        self.bus.join(&self.order[i].0)
    }
}

/// A `config` read, decoded here: results wait in the channel until the main
/// pass takes them, and a decoded space is a tenth of the 4 KiB it came from.
pub struct ConfigRead {
    /// Bytes the read returned.
    pub len: usize,
    pub space: ConfigSpace,
    /// The bytes themselves, kept only when recording a capture.
    pub raw: Option<Vec<u8>>,
    /// The extended capability headers walked, where asked for (a device
    /// read afresh by a long-running process), to keep.
    pub ecaps: Option<config_space::EcapHeaders>,
}

impl ConfigRead {
    /// At least the IDs, at most the 4096 bytes a config space has.
    pub fn is_config_space(&self) -> bool {
        (4..=4096).contains(&self.len)
    }

    /// Whether this read holds the link registers, so the link files (which
    /// the kernel derives from the same registers) need not be opened:
    /// privileged (past the 64-byte header), readable, the IDs of this device,
    /// and a PCI Express function with a link.
    pub fn holds_link(&self, vendor: Option<u16>, device: Option<u16>) -> bool {
        let cs = &self.space;
        self.is_config_space()
            && cs.privileged()
            && cs.reachable
            && !cs.ids_disagree(vendor, device)
            && cs.express.as_ref().is_some_and(|e| e.port_type.has_link())
    }
}

/// One device's guarded reads, raw: the main pass parses and tallies them.
pub struct Observed {
    /// The device directory could not be opened (gone mid-walk, most often).
    pub gone: Option<ReadError>,
    /// The device directory, opened once for both passes, or kept from
    /// an earlier collection.
    pub dir: Option<Arc<DirHandle>>,
    /// `dir` was opened by this pass (it counts against [`MAX_HELD`]).
    pub opened: bool,
    /// `vendor` and `device` came from [`ReadPlan::known`], not from a read:
    /// the kept facts hold for this device.
    pub ids_known: bool,
    /// Not read: a read of it from an earlier pass is still blocked.
    pub timed_out: bool,
    pub power_state: read::Result<Text>,
    pub runtime_status: read::Result<Text>,
    pub vendor: read::Result<Text>,
    pub device: read::Result<Text>,
    /// The device itself is not awake.
    pub suspended: bool,
    /// It, or a bridge above it, is not awake: nothing that wakes was read.
    pub skipped: bool,
    /// Its power state or runtime status could not be read: taken as asleep.
    pub power_unknown: bool,
    pub config: Option<read::Result<ConfigRead>>,
    /// `config` as opened this pass, to be kept.
    pub config_file: Option<Arc<HeldFile>>,
    pub link: Option<[read::Result<Text>; 4]>,
}

/// Awake, by the rule of kernel-abi.md §1.4: in D0 (or no `power_state`, an
/// old kernel) and not runtime-suspended or on its way in or out.
pub fn awake(power: Option<&PowerState>, runtime: Option<&RuntimeStatus>) -> bool {
    let power_ok = power.is_none_or(|p| *p == PowerState::D0);
    let rt_ok = !matches!(
        runtime,
        Some(RuntimeStatus::Suspended | RuntimeStatus::Suspending | RuntimeStatus::Resuming)
    );
    power_ok && rt_ok
}

/// Text the observer read, shared: the main pass parses it, and a kept
/// device's IDs go out with every collection, so a copy must not allocate.
pub type Text = Arc<str>;

fn read_owned(dir: &DirHandle, name: &str) -> read::Result<Text> {
    dir.with_text(name, |s| Text::from(s))
}

/// What `power_state` and `power/runtime_status` say on nearly every
/// function, made once: both are read for every function every collection.
static POWER_WORDS: LazyLock<[Text; 12]> = LazyLock::new(|| {
    [
        "D0\n",
        "D3hot\n",
        "D3cold\n",
        "D1\n",
        "D2\n",
        "unknown\n",
        "error\n",
        "active\n",
        "suspended\n",
        "suspending\n",
        "resuming\n",
        "unsupported\n",
    ]
    .map(Text::from)
});

/// A power file: one of [`POWER_WORDS`] shared, anything else copied.
fn read_power(dir: &DirHandle, name: &str) -> read::Result<Text> {
    dir.with_text(name, |s| {
        POWER_WORDS
            .iter()
            .find(|w| ***w == *s)
            .map_or_else(|| Text::from(s), Arc::clone)
    })
}

fn attr(r: &read::Result<Text>) -> Option<&str> {
    r.as_deref().ok().map(|s| s.strip_suffix('\n').unwrap_or(s))
}

/// The device's directory and its power files: the kept directory when
/// there is one and it is alive (see [`super::memory`]), else opened by
/// name; and what is kept of it, `None` where that does not hold for the
/// directory opened (removed and replaced, or another identity).
fn open_and_power<'k>(
    bus: &DirHandle,
    parent: Option<&DirHandle>,
    name: &str,
    kept: Option<&'k KnownIds>,
) -> Result<(Arc<DirHandle>, Power, Option<&'k KnownIds>), ReadError> {
    if let Some(dir) = kept.and_then(|k| k.dir.as_ref()) {
        let power = Power::read(dir);
        let was = kept.map_or([false; 2], |k| k.power_files);
        let vanished = (was[0] && power.state.as_ref().is_err_and(absent))
            || (was[1] && power.runtime.as_ref().is_err_and(absent));
        if !vanished {
            return Ok((Arc::clone(dir), power, kept));
        }
        // The kept directory was removed: whatever is there now is new.
        let dir = Arc::new(open_device(bus, parent, name)?);
        let power = Power::read(&dir);
        return Ok((dir, power, None));
    }
    let dir = Arc::new(open_device(bus, parent, name)?);
    let power = Power::read(&dir);
    let same = kept.filter(|k| k.dir_identity.is_some() && k.dir_identity == dir.identity());
    Ok((dir, power, same))
}

/// A device directory, from its parent's when that is open (one path
/// component), else through its bus link; known by its bus path either way.
fn open_device(
    bus: &DirHandle,
    parent: Option<&DirHandle>,
    name: &str,
) -> Result<DirHandle, ReadError> {
    parent
        .and_then(|p| p.open_child(name, bus.path().join(name)).ok())
        .map_or_else(|| bus.open_dir(name), Ok)
}

fn absent(e: &ReadError) -> bool {
    e.kind == ErrorKind::Absent
}

/// `power_state` and `power/runtime_status`, as read.
struct Power {
    state: read::Result<Text>,
    runtime: read::Result<Text>,
}

impl Power {
    fn read(dir: &DirHandle) -> Power {
        Power {
            state: read_power(dir, "power_state"),
            runtime: read_power(dir, "power/runtime_status"),
        }
    }

    /// Absent is an old kernel; any other failure leaves the state unknown.
    fn unknown(&self) -> bool {
        let unknown = |r: &read::Result<Text>| r.as_ref().is_err_and(|e| !absent(e));
        unknown(&self.state) || unknown(&self.runtime)
    }

    fn asleep(&self) -> bool {
        self.unknown()
            || !awake(
                attr(&self.state).map(PowerState::parse).as_ref(),
                attr(&self.runtime).map(RuntimeStatus::parse).as_ref(),
            )
    }
}

fn observe(
    bus: &DirHandle,
    parent: Option<&DirHandle>,
    plan: &ReadPlan,
    i: usize,
    asleep: &BTreeSet<String>,
) -> Observed {
    let (name, chain) = &plan.order[i];
    let kept = plan.known.get(i).and_then(Option::as_ref);
    let (dir, power, known) = match open_and_power(bus, parent, name, kept) {
        Ok(x) => x,
        Err(e) => return gone(e),
    };
    let opened = kept
        .and_then(|k| k.dir.as_ref())
        .is_none_or(|d| !Arc::ptr_eq(d, &dir));
    let power_unknown = power.unknown();
    let suspended = power.asleep();
    let skipped = suspended || chain.iter().any(|a| asleep.contains(a));
    let (mut vendor, mut device) = match known {
        Some(k) => (Ok(k.vendor.clone()), Ok(k.device.clone())),
        None => (read_owned(&dir, "vendor"), read_owned(&dir, "device")),
    };
    let mut ids_known = known.is_some();
    let (mut config, mut link, mut config_file) = (None, None, None);
    if !skipped {
        if plan.config {
            let kept = known.and_then(|k| k.config.as_ref());
            let ecaps = match known {
                Some(k) => Ecaps::Kept(k.ecaps.as_deref()),
                None if plan.keeps => Ecaps::Walk,
                None => Ecaps::Ignore,
            };
            let (read, opened) = read_config(&dir, kept, ecaps, plan.record);
            (config, config_file) = (Some(read), opened);
        }
        let id = |r: &read::Result<Text>| attr(r).and_then(|s| super::parse::hex_u16(s).ok());
        // The header disagrees with the kept IDs: read them afresh.
        let header_differs = config.as_ref().is_some_and(|c| {
            c.as_ref().is_ok_and(|c| {
                c.is_config_space() && c.space.ids_disagree(id(&vendor), id(&device))
            })
        });
        if ids_known && header_differs {
            (vendor, device) = (read_owned(&dir, "vendor"), read_owned(&dir, "device"));
            ids_known = false;
            // Another device: its capability chain is not the kept one.
            let file = known.and_then(|k| k.config.as_ref());
            let ecaps = if plan.keeps {
                Ecaps::Walk
            } else {
                Ecaps::Ignore
            };
            config = Some(read_config(&dir, file, ecaps, plan.record).0);
        }
        let regs = config.as_ref().is_some_and(|c| {
            c.as_ref()
                .is_ok_and(|c| c.holds_link(id(&vendor), id(&device)))
        });
        if plan.link && !regs {
            link = Some(LINK_FILES.map(|f| read_owned(&dir, f)));
        }
    }
    // A directory opened here waits in the queue: bounded (see MAX_HELD).
    let keep = !opened || plan.held.fetch_add(1, Ordering::SeqCst) < MAX_HELD;
    if opened && !keep {
        plan.held.fetch_sub(1, Ordering::SeqCst);
    }
    Observed {
        gone: None,
        dir: keep.then_some(dir),
        opened,
        ids_known,
        timed_out: false,
        power_state: power.state,
        runtime_status: power.runtime,
        vendor,
        device,
        suspended,
        skipped,
        power_unknown,
        config,
        config_file,
        link,
    }
}

/// What a config read does with the extended capability headers.
enum Ecaps<'k> {
    /// Nothing: no later collection will use them.
    Ignore,
    /// Note them, to keep.
    Walk,
    /// Take them from what was kept of this device (where anything was).
    Kept(Option<&'k [(u16, u32)]>),
}

/// Only the parts decoded are read (`config_space::read_sparse`); the
/// kernel returns 64 bytes to unprivileged openers. From the kept file when
/// there is one; else the file opened here is returned, to be kept.
fn read_config(
    dir: &DirHandle,
    kept: Option<&Arc<HeldFile>>,
    ecaps: Ecaps<'_>,
    record: bool,
) -> (read::Result<ConfigRead>, Option<Arc<HeldFile>>) {
    let (file, opened) = match kept {
        Some(f) => (Arc::clone(f), None),
        None => match dir.hold_file("config") {
            Ok(f) => {
                let f = Arc::new(f);
                (Arc::clone(&f), Some(f))
            }
            Err(e) => return (Err(e), None),
        },
    };
    if record {
        // A capture keeps the bytes (read_parts records what it returns).
        let read = file
            .read_parts(&mut |size, pread| config_space::read_sparse(size, pread))
            .map(|b| ConfigRead {
                len: b.len(),
                space: config_space::decode(&b),
                raw: Some(b),
                ecaps: None,
            });
        return (read, opened);
    }
    let (from_kept, mut walked) = match ecaps {
        Ecaps::Kept(k) => (k, None),
        Ecaps::Walk => (None, Some(Vec::new())),
        Ecaps::Ignore => (None, None),
    };
    // One buffer for the thread's whole pass: a config space is up to 4 KiB,
    // and only its decoding is kept.
    let read = CONFIG_BUF.with_borrow_mut(|buf| {
        file.read_parts(&mut |size, pread| {
            config_space::read_sparse_into(size, buf, from_kept, walked.as_mut(), pread)?;
            Ok(Vec::new())
        })
        .map(|_| ConfigRead {
            len: buf.len(),
            space: config_space::decode(buf),
            raw: None,
            ecaps: walked.take(),
        })
    });
    (read, opened)
}

thread_local! {
    static CONFIG_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One observer thread's place in the pass, shared with the main pass.
#[derive(Default)]
struct Progress {
    /// Index of the device being observed; `usize::MAX` between devices.
    at: AtomicUsize,
    /// The main pass gave up on this thread: stop at the next device.
    abandoned: AtomicBool,
}

fn run(
    plan: Arc<ReadPlan>,
    from: usize,
    mut asleep: BTreeSet<String>,
    tx: mpsc::Sender<Observed>,
    progress: Arc<Progress>,
) {
    let bus = match DirHandle::open(&plan.bus) {
        Ok(b) => b,
        Err(e) => {
            for _ in from..plan.order.len() {
                if tx.send(gone(e.clone())).is_err() {
                    return;
                }
            }
            return;
        }
    };
    // Directories of devices others hang in, while they are open anyway
    // (a bridge is read before what is below it); at most MAX_HELD.
    let is_parent: HashSet<usize> = plan.parent.iter().flatten().copied().collect();
    let mut parents: HashMap<usize, Arc<DirHandle>> = HashMap::new();
    for i in from..plan.order.len() {
        let known_stuck = {
            let st = stuck();
            !st.is_empty() && st.contains(&plan.dir(i))
        };
        let o = if known_stuck {
            timed_out(&plan.dir(i))
        } else {
            progress.at.store(i, Ordering::SeqCst);
            let parent = plan.parent[i].and_then(|p| parents.get(&p)).map(|d| &**d);
            let o = observe(&bus, parent, &plan, i, &asleep);
            progress.at.store(usize::MAX, Ordering::SeqCst);
            o
        };
        if let (true, Some(d)) = (is_parent.contains(&i) && parents.len() < MAX_HELD, &o.dir) {
            parents.insert(i, Arc::clone(d));
        }
        {
            // Under the lock the main pass marks a device stuck with.
            let mut st = stuck();
            if progress.abandoned.load(Ordering::SeqCst) {
                // Whatever this thread was blocked in has returned.
                st.remove(&plan.dir(i));
                return;
            }
        }
        if o.suspended || o.gone.is_some() || known_stuck {
            asleep.insert(plan.order[i].0.clone());
        }
        if tx.send(o).is_err() {
            return;
        }
    }
}

/// A device not read because an earlier read of it is still blocked.
fn timed_out(dir: &Path) -> Observed {
    let e = ReadError {
        path: dir.join("config"),
        kind: ErrorKind::Unavailable(read::TIMEOUT),
    };
    Observed {
        gone: None,
        timed_out: true,
        ..gone(e)
    }
}

fn gone(e: ReadError) -> Observed {
    Observed {
        dir: None,
        opened: false,
        ids_known: false,
        timed_out: false,
        power_unknown: false,
        gone: Some(e.clone()),
        power_state: Err(e.clone()),
        runtime_status: Err(e.clone()),
        vendor: Err(e.clone()),
        device: Err(e),
        suspended: false,
        skipped: true,
        config: None,
        config_file: None,
        link: None,
    }
}

/// The main pass's end of the observer thread.
pub struct Observer {
    plan: Arc<ReadPlan>,
    rx: Receiver<Observed>,
    progress: Arc<Progress>,
    /// The observer's kept worker (a session's collections; a single one
    /// runs it on a thread of its own), and whether its pass is seen to the
    /// end (the last device taken from it): only then is it handed back for
    /// the next collection, never while it may still be reading.
    worker: Option<mpsc::Sender<jobs::Task>>,
    finished: bool,
    /// Devices seen asleep (or stuck) so far, for a thread that takes over.
    asleep: BTreeSet<String>,
    timeout: Duration,
    deadline: Instant,
    /// Past the deadline: no thread takes over any more.
    spent: bool,
}

impl Observer {
    pub fn start(plan: ReadPlan, timeout: Duration, deadline: Instant) -> Observer {
        let plan = Arc::new(plan);
        let (rx, progress, worker) = spawn(&plan, 0, BTreeSet::new());
        Observer {
            finished: plan.order.is_empty(),
            plan,
            rx,
            progress,
            worker,
            asleep: BTreeSet::new(),
            timeout,
            deadline,
            spent: false,
        }
    }

    /// The result for device `i`; devices must be taken in order, each once.
    /// `None`: the device is stuck, or the deadline has passed (see the
    /// module documentation).
    pub fn take(&mut self, i: usize) -> Option<Observed> {
        if self.spent {
            return None;
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if let Ok(o) = self.rx.recv_timeout(self.timeout.min(left)) {
            if o.opened && o.dir.is_some() {
                self.plan.held.fetch_sub(1, Ordering::SeqCst);
            }
            if o.suspended || o.gone.is_some() || o.timed_out {
                self.asleep.insert(self.plan.order[i].0.clone());
            }
            self.finished = i + 1 == self.plan.order.len();
            return Some(o);
        }
        // Given up on: its worker ends when its read returns.
        self.worker = None;
        // Remember the device the thread is blocked in, until it returns.
        self.progress.abandoned.store(true, Ordering::SeqCst);
        {
            let mut st = stuck();
            let at = self.progress.at.load(Ordering::SeqCst);
            if at < self.plan.order.len() {
                st.insert(self.plan.dir(at));
            }
        }
        self.asleep.insert(self.plan.order[i].0.clone());
        if Instant::now() >= self.deadline {
            self.spent = true;
        } else {
            (self.rx, self.progress, self.worker) = spawn(&self.plan, i + 1, self.asleep.clone());
        }
        None
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let (true, Some(w)) = (self.finished, self.worker.take()) {
            jobs::give_back("observer", w);
        }
    }
}

fn spawn(
    plan: &Arc<ReadPlan>,
    from: usize,
    asleep: BTreeSet<String>,
) -> (
    Receiver<Observed>,
    Arc<Progress>,
    Option<mpsc::Sender<jobs::Task>>,
) {
    let (tx, rx) = mpsc::channel();
    let plan = Arc::clone(plan);
    let progress = Arc::new(Progress {
        at: AtomicUsize::new(usize::MAX),
        abandoned: AtomicBool::new(false),
    });
    let p = Arc::clone(&progress);
    // No thread to be had drops tx: every take() then times out at once.
    let keep = plan.keeps;
    let worker = jobs::run(
        "observer",
        keep,
        Box::new(move || run(plan, from, asleep, tx, p)),
    );
    (rx, progress, worker.flatten())
}
