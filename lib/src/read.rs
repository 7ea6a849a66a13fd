//! The only module that touches the filesystem.
//!
//! Every failure is classified once, here, into what a caller needs to decide
//! (kernel-abi.md §0): gone (`Absent`), not allowed (`Permission`), the kernel
//! refused this cycle (`Unavailable`: EINVAL/EIO/EBUSY/EAGAIN/ENODEV/...), or
//! the content itself is unusable (`Invalid`). Each error carries its path.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "read.rs is the library's one door to the filesystem (lib/clippy.toml)"
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// sysfs text attributes are at most one page; anything much larger is garbage.
pub const MAX_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// ENOENT/ENOTDIR: the file or the device is not there (hot-unplug, old kernel).
    Absent,
    /// EACCES/EPERM: needs privileges vigil does not have.
    Permission,
    /// The kernel returned an error for this read (errno name): value unavailable this cycle.
    Unavailable(&'static str),
    /// The bytes are not a usable value: not UTF-8, too large, a symlink loop...
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: PathBuf,
    pub kind: ErrorKind,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Absent => write!(f, "{}: absent", self.path.display()),
            ErrorKind::Permission => write!(f, "{}: permission denied", self.path.display()),
            ErrorKind::Unavailable(e) => write!(f, "{}: read failed ({e})", self.path.display()),
            ErrorKind::Invalid(why) => write!(f, "{}: {why}", self.path.display()),
        }
    }
}

impl std::error::Error for ReadError {}

pub type Result<T> = std::result::Result<T, ReadError>;

/// What a collection touched, for `vigil capture`: the bytes it read, the
/// modification times it looked at, the links it followed, the directories it
/// listed. Per thread, off unless [`record_accesses`] turns it on, so collections on
/// other threads (tests in parallel) are never mixed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Read(Vec<u8>),
    /// Only metadata (mtime, kind) was looked at: a capture keeps an empty file.
    Stat {
        mtime: i64,
        dir: bool,
    },
    Link(PathBuf),
    List,
}

/// Bytes of the per-thread buffer attribute reads go through: two pages, so
/// any sysfs attribute (at most one page) arrives in one `read()` that is
/// short, hence known complete.
const SCRATCH_LEN: usize = 8192;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RECORDER: RefCell<Option<BTreeMap<PathBuf, Access>>> = const { RefCell::new(None) };
}

/// Run `f` with recording on; returns its result and every access made.
pub fn record_accesses<T>(f: impl FnOnce() -> T) -> (T, BTreeMap<PathBuf, Access>) {
    RECORDER.with(|r| *r.borrow_mut() = Some(BTreeMap::new()));
    let out = f();
    let seen = RECORDER.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, seen)
}

/// Whether this thread is recording: callers that would build a path only
/// for [`note`] ask first.
pub fn is_recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Record, for `vigil capture`, bytes another thread read (the recorder
/// belongs to the thread that runs the collection).
pub fn record_read_elsewhere(path: impl FnOnce() -> PathBuf, bytes: &[u8]) {
    if is_recording() {
        note(&path(), || Access::Read(bytes.to_vec()));
    }
}

fn note(path: &Path, a: impl FnOnce() -> Access) {
    RECORDER.with(|r| {
        if let Some(map) = r.borrow_mut().as_mut() {
            // A read beats a stat or a listing of the same path.
            let keep = matches!(map.get(path), Some(Access::Read(_)));
            if !keep {
                map.insert(path.to_path_buf(), a());
            }
        }
    });
}

/// Classify an OS error. Public so the classification is unit-tested with
/// synthetic errnos: tests run as root, where permission cases cannot be built from files.
pub fn classify(err: &io::Error) -> ErrorKind {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => ErrorKind::Absent,
        Some(libc::EACCES) | Some(libc::EPERM) => ErrorKind::Permission,
        Some(libc::ELOOP) => ErrorKind::Invalid("symlink loop".into()),
        Some(libc::EINVAL) => ErrorKind::Unavailable("EINVAL"),
        Some(libc::EIO) => ErrorKind::Unavailable("EIO"),
        Some(libc::EBUSY) => ErrorKind::Unavailable("EBUSY"),
        Some(libc::EAGAIN) => ErrorKind::Unavailable("EAGAIN"),
        Some(libc::ENODEV) => ErrorKind::Absent,
        Some(libc::ENXIO) => ErrorKind::Absent,
        Some(libc::EOPNOTSUPP) => ErrorKind::Unavailable("EOPNOTSUPP"),
        Some(libc::EISDIR) => ErrorKind::Invalid("is a directory".into()),
        Some(libc::ETIMEDOUT) => ErrorKind::Unavailable("ETIMEDOUT"),
        _ => match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::Absent,
            io::ErrorKind::PermissionDenied => ErrorKind::Permission,
            _ => ErrorKind::Unavailable("EIO"),
        },
    }
}

fn err(path: &Path, e: &io::Error) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        kind: classify(e),
    }
}

fn invalid(path: &Path, why: impl Into<String>) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        kind: ErrorKind::Invalid(why.into()),
    }
}

/// Read up to `max` bytes with one open; a short read is not EOF (procfs and
/// growing files return less), so loop until EOF or the cap.
pub fn read_bytes(path: &Path, max: usize) -> Result<Vec<u8>> {
    read_impl(path, max, false)
}

/// A sysfs attribute: the kernel builds the whole value on the first read at
/// offset 0 (kernel-abi.md §0), so one `read()` into a buffer larger than the
/// value is the whole file and a short read is EOF: no second `read()` per
/// attribute. Only a full buffer reads on.
pub fn read_sysfs(path: &Path, max: usize) -> Result<Vec<u8>> {
    read_impl(path, max, true)
}

fn read_impl(path: &Path, max: usize, short_is_eof: bool) -> Result<Vec<u8>> {
    watched(path, || {
        let f = File::from(open_file(path).map_err(|e| errno(path, e))?);
        // A text read over the cap fails anyway: do not read a giant to learn it.
        if regular(&f, path)? > MAX_TEXT as u64 && max > MAX_TEXT {
            return Err(too_large(path, MAX_TEXT));
        }
        read_file(f, path, max, short_is_eof)
    })
}

/// Flags for every file vigil reads: a FIFO or a terminal put where a file
/// belongs must neither block the open nor become our controlling tty.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// sysfs, procfs, configfs and pmxcfs files are all regular: anything else
/// (a FIFO, a device node) in their place is a stand-in whose read could
/// block or never end.
/// Returns the size the file claims (sysfs: 4096 or the binary size,
/// procfs: 0), so a sparse giant is refused before it is read.
fn regular(f: &File, path: &Path) -> Result<u64> {
    let st = rustix::fs::fstat(f).map_err(|e| errno(path, e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFREG {
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    } else {
        Err(invalid(path, "not a regular file"))
    }
}

fn too_large(path: &Path, limit: usize) -> ReadError {
    invalid(path, format!("larger than {limit} bytes"))
}

fn read_file(f: File, path: &Path, max: usize, short_is_eof: bool) -> Result<Vec<u8>> {
    let buf = read_loop(f, path, max, short_is_eof)?;
    note(path, || Access::Read(buf.clone()));
    Ok(buf)
}

fn read_loop(f: File, path: &Path, max: usize, short_is_eof: bool) -> Result<Vec<u8>> {
    read_on(f, path, max, short_is_eof, vec![0u8; max.min(8192)], 0)
}

/// Go on reading into `buf`, whose first `len` bytes are already read.
fn read_on(
    mut f: File,
    path: &Path,
    max: usize,
    short_is_eof: bool,
    mut buf: Vec<u8>,
    mut len: usize,
) -> Result<Vec<u8>> {
    loop {
        if len == buf.len() {
            if buf.len() >= max {
                break;
            }
            let grow = (buf.len() * 2).min(max);
            buf.resize(grow, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if short_is_eof && len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(path, &e)),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    as_text(&bytes, || path.to_path_buf())?;
    String::from_utf8(bytes).map_err(|_| invalid(path, "not UTF-8"))
}

/// The bytes as text: at most [`MAX_TEXT`] of them, UTF-8. `path` is built
/// only for an error.
fn as_text(bytes: &[u8], path: impl Fn() -> PathBuf) -> Result<&str> {
    if bytes.len() > MAX_TEXT {
        return Err(invalid(&path(), format!("larger than {MAX_TEXT} bytes")));
    }
    std::str::from_utf8(bytes).map_err(|_| invalid(&path(), "not UTF-8"))
}

/// A sysfs text attribute (one or many lines), whole, as UTF-8.
pub fn read_sysfs_text(path: &Path) -> Result<String> {
    utf8(path, read_sysfs(path, MAX_TEXT + 1)?)
}

/// A text file (sysfs attribute, procfs file): whole content as UTF-8.
/// Over [`MAX_TEXT`] bytes, or not UTF-8, is invalid content, never a panic.
pub fn read_text(path: &Path) -> Result<String> {
    utf8(path, read_bytes(path, MAX_TEXT + 1)?)
}

/// A single-value attribute (sysfs, or a small procfs value such as
/// `/proc/uptime`): content with one trailing newline removed, one `read()`.
pub fn read_attr(path: &Path) -> Result<String> {
    let mut s = read_sysfs_text(path)?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// Longest line [`read_lines`] takes: a `/proc/interrupts` line is about
/// 11 bytes per CPU, so this is more CPUs than Linux supports.
pub const MAX_LINE: usize = 1 << 20;
/// Most bytes [`read_lines`] reads: far beyond any real mount table or
/// interrupt list, and it keeps a sparse giant from being read for minutes.
pub const MAX_STREAM: u64 = 256 << 20;

/// A text file of any length, line by line, in bounded memory: for files
/// that grow with the machine (`mountinfo` with thousands of mounts,
/// `/proc/interrupts` on hundreds of CPUs), where a cap on the whole would
/// drop lines and turn a yes into a no. A line over [`MAX_LINE`], a file over
/// [`MAX_STREAM`] or a line not UTF-8 fails the whole read: the caller
/// reports it unavailable rather than answer from part of it.
pub fn read_lines(path: &Path, mut line: impl FnMut(&str)) -> Result<()> {
    watched(path, || {
        let f = File::from(open_file(path).map_err(|e| errno(path, e))?);
        if regular(&f, path)? > MAX_STREAM {
            return Err(too_large(path, MAX_STREAM as usize));
        }
        let keep = is_recording();
        let mut all = Vec::new();
        let mut r = io::BufReader::with_capacity(64 * 1024, f);
        let mut buf = Vec::new();
        let mut total = 0u64;
        loop {
            buf.clear();
            let n =
                io::BufRead::read_until(&mut (&mut r).take(MAX_LINE as u64 + 1), b'\n', &mut buf)
                    .map_err(|e| err(path, &e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if buf.len() > MAX_LINE || total > MAX_STREAM {
                return Err(invalid(path, "a line or the file is too large"));
            }
            if keep {
                all.extend_from_slice(&buf);
            }
            let text = std::str::from_utf8(&buf).map_err(|_| invalid(path, "not UTF-8"))?;
            line(text.strip_suffix('\n').unwrap_or(text));
        }
        if keep {
            note(path, || Access::Read(all));
        }
        Ok(())
    })
}

/// Last path component of a symlink's target (`driver` -> `vfio-pci`). Never
/// follows the link, so dangling links are fine.
pub fn read_link(path: &Path) -> Result<PathBuf> {
    watched(path, || read_link_now(path))
}

fn read_link_now(path: &Path) -> Result<PathBuf> {
    let t = match confinement(path) {
        Some((root, rel)) => {
            use std::os::unix::ffi::OsStringExt;
            let fd = in_root(
                &root,
                rel,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            )
            .map_err(|e| errno(path, e))?;
            let t = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| errno(path, e))?;
            PathBuf::from(std::ffi::OsString::from_vec(t.into_bytes()))
        }
        None => std::fs::read_link(path).map_err(|e| err(path, &e))?,
    };
    note(path, || Access::Link(t.clone()));
    Ok(t)
}

pub fn read_link_name(path: &Path) -> Result<String> {
    let target = read_link(path)?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| invalid(path, "link target has no UTF-8 name"))
}

/// Entry names of a directory, sorted (deterministic output). Non-UTF-8 names
/// are skipped: no kernel object vigil reads has one; nor do sysfs and procfs
/// have dot-entries, so those (a capture's `.gitkeep`) are skipped too.
pub fn list_dir(path: &Path) -> Result<Vec<String>> {
    watched(path, || list_dir_now(path))
}

fn list_dir_now(path: &Path) -> Result<Vec<String>> {
    if confinement(path).is_some() {
        return DirHandle::open(path)?.list();
    }
    let rd = std::fs::read_dir(path).map_err(|e| err(path, &e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(path, &e))?;
        if let Ok(name) = entry.file_name().into_string() {
            if !name.starts_with('.') {
                names.push(name);
            }
        }
    }
    names.sort();
    note(path, || Access::List);
    Ok(names)
}

/// Kind and modification time without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub dir: bool,
    pub file: bool,
    pub symlink: bool,
    /// Unix seconds.
    pub mtime: i64,
}

pub fn meta(path: &Path) -> Result<Meta> {
    let st = stat(path, false)?;
    let kind = st.st_mode & libc::S_IFMT;
    let out = Meta {
        dir: kind == libc::S_IFDIR,
        file: kind == libc::S_IFREG,
        symlink: kind == libc::S_IFLNK,
        mtime: st.st_mtime,
    };
    note(path, || Access::Stat {
        mtime: out.mtime,
        dir: out.dir,
    });
    Ok(out)
}

/// Following symlinks, like `test -f` / `test -d` / `test -e`.
pub fn is_file(path: &Path) -> bool {
    let ok = stat(path, true).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
    if ok {
        note(path, || Access::Stat {
            mtime: 0,
            dir: false,
        });
    }
    ok
}

pub fn is_dir(path: &Path) -> bool {
    let ok = stat(path, true).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    if ok {
        note(path, || Access::Stat {
            mtime: 0,
            dir: true,
        });
    }
    ok
}

pub fn exists(path: &Path) -> bool {
    let ok = stat(path, false).is_ok();
    if ok && is_recording() {
        note(path, || Access::Stat {
            mtime: 0,
            dir: stat(path, true).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
        });
    }
    ok
}

/// `stat` (`follow`) or `lstat`, resolved inside the root when there is one.
/// Watched: a stat blocks on a FUSE mount without quorum as a read does.
fn stat(path: &Path, follow: bool) -> Result<rustix::fs::Stat> {
    watched(path, || stat_now(path, follow).map_err(|e| errno(path, e)))
}

fn stat_now(path: &Path, follow: bool) -> rustix::io::Result<rustix::fs::Stat> {
    match confinement(path) {
        Some((root, rel)) => {
            let mut flags = OFlags::PATH | OFlags::CLOEXEC;
            if !follow {
                flags |= OFlags::NOFOLLOW;
            }
            rustix::fs::fstat(in_root(&root, rel, flags)?)
        }
        None if follow => rustix::fs::stat(path),
        None => rustix::fs::lstat(path),
    }
}

/// A directory opened once: its listing and every file in it are read relative
/// to the one descriptor (`openat`), so the kernel walks one path component per
/// attribute instead of the whole `/sys/bus/pci/devices/<bdf>/...` path and its
/// symlink every time.
pub struct DirHandle {
    dir: rustix::fs::Dir,
    path: PathBuf,
    /// The replay root this directory lies in: whatever is opened from here
    /// resolves inside it.
    root: Option<Arc<Confined>>,
}

/// One path component that names an entry of the directory itself.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

impl fmt::Debug for DirHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirHandle").field(&self.path).finish()
    }
}

fn errno(path: &Path, e: rustix::io::Errno) -> ReadError {
    err(path, &io::Error::from(e))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

impl DirHandle {
    pub fn open(path: &Path) -> Result<DirHandle> {
        let (fd, root) = match confinement(path) {
            Some((root, rel)) => (in_root(&root, rel, DIR_FLAGS), Some(root)),
            None => (rustix::fs::open(path, DIR_FLAGS, Mode::empty()), None),
        };
        let fd = fd.map_err(|e| errno(path, e))?;
        let dir = rustix::fs::Dir::new(fd).map_err(|e| errno(path, e))?;
        Ok(DirHandle {
            dir,
            path: path.to_path_buf(),
            root,
        })
    }

    /// `name` opened relative to this directory. In a replay root, a name
    /// that leaves this directory (a symlink, absolute or `../`) is resolved
    /// again from the root, as a chroot would. A plain name (one component,
    /// not a link) costs one `openat` with `O_NOFOLLOW`: it cannot leave the
    /// directory, so it needs none of `openat2`'s scoped walk (which leaves
    /// the lock-free path lookup to check the result is beneath); a link
    /// answers `ELOOP` and takes the confined way. Longer names, one `openat2`.
    fn open_at(&self, name: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let fd = self.dir.fd()?;
        if self.root.is_none() {
            return rustix::fs::openat(fd, name, flags, Mode::empty());
        }
        // Through a device link (`<bdf>/reset_method` from an IOMMU group's
        // `devices`): it leaves this directory, resolve from the root at once.
        if name.contains(':') {
            return self.open_from_root(name, flags);
        }
        if is_plain_name(name) {
            match rustix::fs::openat(fd, name, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Err(rustix::io::Errno::LOOP) => {}
                r => return r,
            }
        }
        let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match retry_again(|| rustix::fs::openat2(fd, name, flags, Mode::empty(), beneath)) {
            Err(rustix::io::Errno::XDEV) => self.open_from_root(name, flags),
            r => r,
        }
    }

    /// `name` under this directory, resolved from the replay root.
    fn open_from_root(&self, name: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let Some(root) = &self.root else {
            return Err(rustix::io::Errno::XDEV);
        };
        let full = self.path.join(name);
        let rel = full
            .strip_prefix(&root.base)
            .map_err(|_| rustix::io::Errno::XDEV)?;
        in_root(root, rel, flags)
    }

    /// A subdirectory, opened relative to this one. In a replay root it is
    /// resolved from the root at once: subdirectories opened by name are
    /// mostly sysfs links (`bus/pci/devices/<bdf>`), which leave this
    /// directory, so trying beneath it first would cost a failed open each.
    pub fn open_dir(&self, name: &str) -> Result<DirHandle> {
        let path = self.path.join(name);
        let sub = match &self.root {
            Some(_) => self.open_from_root(name, DIR_FLAGS),
            None => self.open_at(name, DIR_FLAGS),
        };
        self.handle(sub, path)
    }

    /// A handle on `sub`, opened from this directory, known by `path`.
    fn handle(&self, sub: rustix::io::Result<OwnedFd>, path: PathBuf) -> Result<DirHandle> {
        let sub = sub.map_err(|e| errno(&path, e))?;
        let dir = rustix::fs::Dir::new(sub).map_err(|e| errno(&path, e))?;
        Ok(DirHandle {
            dir,
            path,
            root: self.root.clone(),
        })
    }

    /// A real subdirectory `name` of this one (never through a link: in a
    /// replay root it must lie beneath), one path component to resolve,
    /// known by `path` (the name a caller reports it by, such as its bus
    /// link: errors and captures read the same as through [`Self::open_dir`]).
    pub fn open_child(&self, name: &str, path: PathBuf) -> Result<DirHandle> {
        let fd = self.dir.fd().map_err(|e| errno(&path, e))?;
        let sub = match &self.root {
            None => rustix::fs::openat(fd, name, DIR_FLAGS, Mode::empty()),
            // One component that is not a link cannot leave this directory.
            Some(_) if is_plain_name(name) => {
                rustix::fs::openat(fd, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())
            }
            Some(_) => Err(rustix::io::Errno::XDEV),
        };
        self.handle(sub, path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode of this directory, from one `fstat` of the open
    /// handle: sysfs gives a device directory a new inode (number and
    /// generation) each time the device is added, so an equal identity means
    /// the same device, not one removed and added again at the same address.
    pub fn identity(&self) -> Option<(u64, u64)> {
        let st = rustix::fs::fstat(self.dir.fd().ok()?).ok()?;
        Some((st.st_dev, st.st_ino))
    }

    /// Entry names, sorted, without `.`/`..` and dot-entries (see [`list_dir`]).
    pub fn list(&mut self) -> Result<Vec<String>> {
        Ok(self.list_inodes()?.into_iter().map(|(n, _)| n).collect())
    }

    /// [`DirHandle::list`] with each entry's inode number as the listing
    /// gives it (`d_ino`: the entry's own, not a link target's), for free.
    /// sysfs numbers its nodes from a counter with a generation, so an entry
    /// removed and created again (a device added again: its bus link is
    /// created with it) lists with another number.
    pub fn list_inodes(&mut self) -> Result<Vec<(String, u64)>> {
        let mut names = Vec::new();
        while let Some(entry) = self.dir.read() {
            let entry = entry.map_err(|e| errno(&self.path, e))?;
            if let Ok(name) = entry.file_name().to_str() {
                if !name.starts_with('.') {
                    names.push((name.to_string(), entry.ino()));
                }
            }
        }
        names.sort();
        note(&self.path, || Access::List);
        Ok(names)
    }

    fn open_file(&self, name: &str) -> Result<File> {
        stall_point(|| self.path.join(name));
        let owned = self
            .open_at(name, FILE_FLAGS)
            .map_err(|e| errno(&self.path.join(name), e))?;
        Ok(File::from(owned))
    }

    /// A binary attribute read in pieces at offsets chosen by `read`, which
    /// gets the file's size and a `pread`: for `config`, where every dword
    /// read costs a bus transaction and only some are wanted
    /// (`pci::config_space::read_sparse`). One open; the size comes from `fstat`, which
    /// reads no register.
    pub fn read_parts(&self, name: &str, read: PartsReader<'_>) -> Result<Vec<u8>> {
        self.hold_file(name)?.read_parts(read)
    }

    /// `name` opened for [`HeldFile::read_parts`], as often as wanted: a
    /// long-running process keeps `config` open instead of opening it and
    /// asking its size each collection.
    pub fn hold_file(&self, name: &str) -> Result<HeldFile> {
        let file = self.open_file(name)?;
        let path = self.path.join(name);
        let meta = file.metadata().map_err(|e| err(&path, &e))?;
        if !meta.is_file() {
            return Err(invalid(&path, "not a regular file"));
        }
        Ok(HeldFile {
            file,
            size: meta.len(),
            path,
        })
    }
    /// See [`read_sysfs_text`]; the text is lent to `f` from a buffer this
    /// thread reuses, so a read allocates nothing (the path is built only for
    /// an error or a capture).
    pub fn with_text<T>(&self, name: &str, f: impl FnOnce(&str) -> T) -> Result<T> {
        let file = self.open_file(name)?;
        SCRATCH.with(|cell| {
            let mut own = Vec::new();
            let mut borrowed = cell.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut own,
            };
            buf.resize(SCRATCH_LEN, 0);
            let n = loop {
                match rustix::io::read(&file, &mut buf[..]) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        regular(&file, &self.path.join(name))?;
                        return Err(errno(&self.path.join(name), e));
                    }
                }
            };
            if n == 0 {
                // Empty: a real empty attribute, or a FIFO with no writer.
                regular(&file, &self.path.join(name))?;
            }
            let long;
            let bytes: &[u8] = if n < buf.len() {
                &buf[..n]
            } else {
                // More than a page: not a plain attribute. A device node in its
                // place would go on for ever: refuse it before reading on.
                if regular(&file, &self.path.join(name))? > MAX_TEXT as u64 {
                    return Err(too_large(&self.path.join(name), MAX_TEXT));
                }
                long = read_on(
                    file,
                    &self.path.join(name),
                    MAX_TEXT + 1,
                    true,
                    buf.clone(),
                    n,
                )?;
                &long
            };
            if is_recording() {
                note(&self.path.join(name), || Access::Read(bytes.to_vec()));
            }
            Ok(f(as_text(bytes, || self.path.join(name))?))
        })
    }

    /// See [`read_attr`]: [`DirHandle::with_text`] less one trailing newline.
    pub fn with_attr<T>(&self, name: &str, f: impl FnOnce(&str) -> T) -> Result<T> {
        self.with_text(name, |s| f(s.strip_suffix('\n').unwrap_or(s)))
    }

    /// Whether `name` exists here, from one `fstatat` that does not follow a
    /// final link: a stat never runs a sysfs attribute's show(), so it wakes
    /// nothing. Recorded as a stat for `vigil capture`.
    pub fn has(&self, name: &str) -> bool {
        use rustix::fs::AtFlags;
        let Ok(fd) = self.dir.fd() else {
            return false;
        };
        let st = if self.root.is_some() && name.contains('/') {
            // A directory on the way could be a link out of the root.
            self.open_at(name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)
                .and_then(rustix::fs::fstat)
        } else {
            rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
        };
        match st {
            Ok(st) => {
                if is_recording() {
                    let dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    note(&self.path.join(name), || Access::Stat {
                        mtime: st.st_mtime,
                        dir,
                    });
                }
                true
            }
            Err(_) => false,
        }
    }

    /// See [`read_link`].
    pub fn read_link(&self, name: &str) -> Result<PathBuf> {
        self.with_link(name, Path::to_path_buf)
    }

    /// The target of the link `name`, lent to `f` from a buffer this thread
    /// reuses: three links per device are read each collection, and callers
    /// keep a component of the target at most. The path is built only for
    /// an error or a capture.
    pub fn with_link<T>(&self, name: &str, f: impl FnOnce(&Path) -> T) -> Result<T> {
        let fd = self.dir.fd().map_err(|e| errno(&self.path.join(name), e))?;
        let read = |buf: &mut Vec<u8>| {
            if self.root.is_some() && name.contains('/') {
                let l = self.open_at(name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
                read_link_into(l, "", buf)
            } else {
                read_link_into(fd, name, buf)
            }
        };
        LINK_BUF.with(|cell| {
            let mut own = Vec::new();
            let mut borrowed = cell.try_borrow_mut();
            let buf = borrowed.as_deref_mut().unwrap_or(&mut own);
            read(buf).map_err(|e| errno(&self.path.join(name), e))?;
            let target = Path::new(std::ffi::OsStr::from_bytes(buf));
            if is_recording() {
                note(&self.path.join(name), || Access::Link(target.to_path_buf()));
            }
            Ok(f(target))
        })
    }
}

thread_local! {
    static LINK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes a link target is first read into: sysfs targets are under 200.
const LINK_LEN: usize = 256;
/// No link target is longer than `PATH_MAX`; stop well past it.
const LINK_MAX: usize = 64 * 1024;

/// `readlinkat` into `buf`, which holds exactly the target after. A target
/// that fills the buffer may have been cut: read again into a larger one.
fn read_link_into(fd: impl AsFd, name: &str, buf: &mut Vec<u8>) -> rustix::io::Result<()> {
    let mut len = LINK_LEN;
    loop {
        buf.resize(len, 0);
        let n = rustix::fs::readlinkat_raw(&fd, name, &mut buf[..])?;
        if n < len {
            buf.truncate(n);
            return Ok(());
        }
        if len > LINK_MAX {
            return Err(rustix::io::Errno::NAMETOOLONG);
        }
        len *= 2;
    }
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`), held
/// directories are counted against (`u64::MAX`: unlimited).
pub fn descriptor_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// What [`DirHandle::read_parts`] is given: the file's size and a `pread`
/// (offset, buffer), and it returns the bytes it assembled.
pub type PartsReader<'a> = &'a mut dyn FnMut(
    u64,
    &mut dyn FnMut(usize, &mut [u8]) -> io::Result<usize>,
) -> io::Result<Vec<u8>>;

/// A file kept open to be read at offsets again and again (see
/// [`DirHandle::hold_file`]). Every read is a fresh `pread`: sysfs runs the
/// attribute's read for each, so nothing is stale.
pub struct HeldFile {
    file: File,
    size: u64,
    path: PathBuf,
}

impl fmt::Debug for HeldFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeldFile").field(&self.path).finish()
    }
}

impl HeldFile {
    /// See [`DirHandle::read_parts`]; the size is the one `fstat` gave when
    /// the file was opened (a sysfs attribute's size is fixed).
    pub fn read_parts(&self, read: PartsReader<'_>) -> Result<Vec<u8>> {
        stall_point(|| self.path.clone());
        let mut pread = |at: usize, buf: &mut [u8]| loop {
            match rustix::io::pread(&self.file, &mut *buf, at as u64) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        };
        let bytes = read(self.size, &mut pread).map_err(|e| err(&self.path, &e))?;
        if is_recording() {
            note(&self.path, || Access::Read(bytes.clone()));
        }
        Ok(bytes)
    }
}

/// A stream to follow (`/dev/kmsg` or a capture of it), read-only, optionally
/// non-blocking, and whether it is a character device (one record per `read()`)
/// rather than a byte stream. The caller bounds what it reads.
/// Under a replay root it is resolved inside it, as every other path: a
/// capture's `dev/kmsg -> /dev/kmsg` is the capture's, never the host's ring.
pub fn open_stream(path: &Path, nonblocking: bool) -> Result<(Stream, bool)> {
    use std::os::unix::fs::FileTypeExt;
    let mut flags = OFlags::RDONLY | OFlags::NOCTTY;
    if nonblocking {
        flags |= OFlags::NONBLOCK;
    }
    let file = File::from(open_in_root(path, flags).map_err(|e| errno(path, e))?);
    let is_char = file
        .metadata()
        .is_ok_and(|m| m.file_type().is_char_device());
    Ok((Stream(file), is_char))
}

/// An open stream from [`open_stream`]: it can only be read, and only through
/// here, so the library's readers hold no `File` of their own.
#[derive(Debug)]
pub struct Stream(File);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A replay root (`--root DIR`), held open: every path under it is resolved
/// by the kernel inside it (`openat2` with `RESOLVE_IN_ROOT`), symlinks and
/// `..` included, as a chroot would. An archive's `proc/cmdline ->
/// /etc/shadow` reads the archive's own `etc/shadow`, never the host's.
#[derive(Debug)]
pub struct Confined {
    base: PathBuf,
    fd: OwnedFd,
}

/// Live replay roots, by base path: [`crate::Root`] holds the `Arc`.
static ROOTS: Mutex<Vec<Weak<Confined>>> = Mutex::new(Vec::new());

/// Hold `base` open as a replay root; `None` for the host (`/`), where plain
/// opens are the same thing, or a base that cannot be opened (every read
/// under it then fails as it would have).
pub fn confine(base: &Path) -> Option<Arc<Confined>> {
    if base == Path::new("/") {
        return None;
    }
    let fd = rustix::fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let c = Arc::new(Confined {
        base: base.to_path_buf(),
        fd,
    });
    let mut roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    roots.retain(|w| w.strong_count() > 0);
    roots.push(Arc::downgrade(&c));
    Some(c)
}

/// The replay root `path` lies in (the deepest, if roots nest), and the rest
/// of the path.
fn confinement(path: &Path) -> Option<(Arc<Confined>, &Path)> {
    let roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    let mut best: Option<(Arc<Confined>, &Path)> = None;
    for c in roots.iter().filter_map(Weak::upgrade) {
        if let Ok(rel) = path.strip_prefix(&c.base) {
            if best
                .as_ref()
                .is_none_or(|(b, _)| c.base.as_os_str().len() > b.base.as_os_str().len())
            {
                best = Some((c, rel));
            }
        }
    }
    best
}

fn in_root(root: &Confined, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    retry_again(|| rustix::fs::openat2(root.fd.as_fd(), rel, flags, Mode::empty(), how))
}

/// `openat2` answers EAGAIN when a rename raced the walk: try again, a little.
fn retry_again(
    mut open: impl FnMut() -> rustix::io::Result<OwnedFd>,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match open() {
            Err(rustix::io::Errno::AGAIN) if tries < 3 => tries += 1,
            r => return r,
        }
    }
}

/// Open a file to read by its full path, inside its replay root if any,
/// without blocking on a FIFO.
pub fn open_file(path: &Path) -> rustix::io::Result<OwnedFd> {
    stall_point(|| path.to_path_buf());
    open_in_root(path, FILE_FLAGS)
}

/// Open `path` with `flags`, resolved inside its replay root if any (as a
/// chroot would): for a reader of its own, such as `/dev/kmsg`'s.
pub fn open_in_root(path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    match confinement(path) {
        Some((root, rel)) => in_root(&root, rel, flags),
        None => rustix::fs::open(path, flags, Mode::empty()),
    }
}

/// A read on a worker thread that may block for good (pmxcfs without quorum,
/// `/proc/<pid>/cmdline` of a process stuck on its mmap lock): the thread's
/// owner sees which path it is in ([`Watch::stuck`]) and gives up on it.
/// Such a path is remembered until the blocked read returns: later reads of
/// it fail at once with `timeout` instead of piling threads on it.
#[derive(Debug, Default)]
pub struct Watch {
    current: Mutex<Option<PathBuf>>,
    abandoned: AtomicBool,
}

thread_local! {
    static WATCH: RefCell<Option<Arc<Watch>>> = const { RefCell::new(None) };
}

/// Paths some abandoned thread is still blocked reading.
static STUCK: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static ANY_STUCK: AtomicBool = AtomicBool::new(false);

/// The kind of a read given up on, or refused because one is still blocked.
pub const TIMEOUT: &str = "timeout";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watch {
    /// Watch the reads this thread makes from now on.
    pub fn install(self: &Arc<Watch>) {
        WATCH.with(|w| *w.borrow_mut() = Some(Arc::clone(self)));
    }

    /// Give up on the thread: the path it is blocked in (if a watched read)
    /// is refused from now on until that read returns; its later reads fail
    /// at once, so it ends as soon as the kernel lets it.
    pub fn abandon(&self) -> Option<PathBuf> {
        self.abandoned.store(true, Ordering::SeqCst);
        // Holding `current`, so the read cannot return and clear it meanwhile.
        let cur = lock(&self.current);
        let path = cur.clone()?;
        lock(&STUCK).insert(path.clone());
        ANY_STUCK.store(true, Ordering::SeqCst);
        Some(path)
    }
}

/// Whether `path` is one an abandoned thread is still blocked on.
pub fn is_stuck(path: &Path) -> bool {
    ANY_STUCK.load(Ordering::Relaxed) && lock(&STUCK).contains(path)
}

fn timeout(path: &Path) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        kind: ErrorKind::Unavailable(TIMEOUT),
    }
}

/// Run a path-based read under this thread's [`Watch`], if any.
fn watched<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(w) = WATCH.with(|w| w.borrow().clone()) else {
        return read();
    };
    if w.abandoned.load(Ordering::SeqCst) || is_stuck(path) {
        return Err(timeout(path));
    }
    *lock(&w.current) = Some(path.to_path_buf());
    let out = read();
    let mut cur = lock(&w.current);
    *cur = None;
    if w.abandoned.load(Ordering::SeqCst) {
        let mut stuck = lock(&STUCK);
        stuck.remove(path);
        ANY_STUCK.store(!stuck.is_empty(), Ordering::SeqCst);
    }
    drop(cur);
    out
}

/// Recorded accesses another thread made, added to this thread's recording.
pub fn absorb(seen: BTreeMap<PathBuf, Access>) {
    if !is_recording() {
        return;
    }
    for (path, a) in seen {
        note(&path, || a);
    }
}

/// Test support: make reads of chosen paths block, as a device in reset or
/// a FUSE mount without quorum does, so deadlines can be tested. Never
/// armed outside tests.
#[doc(hidden)]
pub mod testing {
    use super::*;
    use std::sync::Condvar;

    pub(super) static ARMED: AtomicBool = AtomicBool::new(false);
    static STALLS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static RELEASED: Condvar = Condvar::new();

    /// Reads of any path ending with `suffix` block until [`release`]d.
    pub fn stall(suffix: impl Into<PathBuf>) {
        lock(&STALLS).push(suffix.into());
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Unblock the reads [`stall`] blocked for `suffix`.
    pub fn release(suffix: &Path) {
        lock(&STALLS).retain(|s| s != suffix);
        RELEASED.notify_all();
    }

    pub(super) fn wait(path: &Path) {
        let mut stalls = lock(&STALLS);
        while stalls.iter().any(|s| path.ends_with(s)) {
            stalls = RELEASED.wait(stalls).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn stall_point(path: impl FnOnce() -> PathBuf) {
    if testing::ARMED.load(Ordering::Relaxed) {
        testing::wait(&path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errnos_callers_must_tell_apart() {
        let e = |n| classify(&io::Error::from_raw_os_error(n));
        assert_eq!(e(libc::ENOENT), ErrorKind::Absent);
        assert_eq!(e(libc::ENODEV), ErrorKind::Absent);
        assert_eq!(e(libc::EACCES), ErrorKind::Permission);
        assert_eq!(e(libc::EPERM), ErrorKind::Permission);
        assert_eq!(e(libc::EINVAL), ErrorKind::Unavailable("EINVAL"));
        assert_eq!(e(libc::EBUSY), ErrorKind::Unavailable("EBUSY"));
        assert_eq!(e(libc::EAGAIN), ErrorKind::Unavailable("EAGAIN"));
        assert!(matches!(e(libc::ELOOP), ErrorKind::Invalid(_)));
    }

    #[test]
    fn text_reads_reject_garbage_without_panicking() {
        let dir = tempfile_dir();
        let p = dir.join("bin");
        std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap_or_default();
        assert!(matches!(
            read_attr(&p).map_err(|e| e.kind),
            Err(ErrorKind::Invalid(_))
        ));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'1'; MAX_TEXT + 10]).unwrap_or_default();
        assert!(matches!(
            read_attr(&big).map_err(|e| e.kind),
            Err(ErrorKind::Invalid(_))
        ));
        let missing = dir.join("missing");
        assert_eq!(
            read_attr(&missing).map_err(|e| e.kind),
            Err(ErrorKind::Absent)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-read-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    }
}
