//! `vigil capture --out FILE`: one `.tar.gz` of exactly what vigil reads on
//! this machine, laid out as a root that `vigil --root` replays.
//!
//! The archive is built from what one collection touched (recorded where the
//! library touches the filesystem): file contents that were read, symlinks
//! along every path, directories that were listed (their entry names, so a
//! listing replays the same), and, for files whose age alone was looked at,
//! empty files with their modification time (log contents never leave the
//! node). `/proc/<pid>/fd` links are kept only when they point at a VFIO group,
//! and `/dev/kmsg` becomes an excerpt of its hardware records.
//!
//! Files that hold private data beside what vigil parses are cut down to
//! what it parses ([`excerpt`]): a Proxmox VM config keeps its `hostpciN`
//! and `template` lines (VM names, MACs, SMBIOS UUIDs, cloud-init users and
//! keys, `args:` and descriptions stay behind), a PCI mapping its names and
//! `map` lines, a QEMU command line its `-id` and `-name` (first field).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use vigil_collector::read::{self, Access};
use vigil_collector::{kmsg, Clock, Root, Selection};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { data: Vec<u8>, mtime: i64 },
    Dir,
    Link(PathBuf),
}

/// Everything to write, by path relative to the root.
#[derive(Default)]
struct ArchivePlan {
    entries: BTreeMap<PathBuf, Entry>,
}

fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir => out = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl ArchivePlan {
    /// Record every symlink met on the way to `path`; return the real path.
    /// The last component is followed only when `follow_last`.
    fn resolve(&mut self, base: &Path, path: &Path, follow_last: bool) -> Option<PathBuf> {
        let rel = path.strip_prefix(base).ok()?;
        let mut cur = base.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        let mut hops = 0;
        let mut i = 0;
        let mut pending: Vec<Component> = comps.clone();
        while i < pending.len() {
            let c = pending[i];
            let next = cur.join(c.as_os_str());
            let last = i + 1 == pending.len();
            let is_link =
                std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
            if is_link && (!last || follow_last) {
                hops += 1;
                if hops > 40 {
                    return None; // a loop: the collection already counted it as an error
                }
                let target = std::fs::read_link(&next).ok()?;
                if let Ok(r) = next.strip_prefix(base) {
                    self.entries
                        .insert(r.to_path_buf(), Entry::Link(target.clone()));
                }
                cur = if target.is_absolute() {
                    lexical_join(base, target.strip_prefix("/").ok()?)
                } else {
                    lexical_join(&cur, &target)
                };
                if !cur.starts_with(base) {
                    return None;
                }
                let rest: Vec<Component> = pending[i + 1..].to_vec();
                pending = rest;
                i = 0;
                continue;
            }
            cur = next;
            i += 1;
        }
        Some(cur)
    }

    fn add(&mut self, base: &Path, path: &Path, access: &Access) {
        let Some(real) = self.resolve(base, path, !matches!(access, Access::Link(_))) else {
            return;
        };
        let Ok(rel) = real.strip_prefix(base).map(Path::to_path_buf) else {
            return;
        };
        if rel.as_os_str().is_empty() {
            return;
        }
        let mtime = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::symlink_metadata(p).map(|m| m.mtime()).unwrap_or(0)
        };
        match access {
            Access::Read(data) => {
                let data = excerpt(&rel, data).unwrap_or_else(|| data.clone());
                self.entries.insert(
                    rel,
                    Entry::File {
                        data,
                        mtime: mtime(&real),
                    },
                );
            }
            Access::Stat { dir: true, .. } => {
                self.entries.entry(rel).or_insert(Entry::Dir);
            }
            Access::Stat { mtime: t, .. } => {
                let t = if *t == 0 { mtime(&real) } else { *t };
                self.entries.entry(rel).or_insert(Entry::File {
                    data: Vec::new(),
                    mtime: t,
                });
            }
            Access::Link(target) => {
                if is_private_fd(&rel, target) {
                    return;
                }
                self.entries.insert(rel, Entry::Link(target.clone()));
            }
            Access::List => {
                self.entries.entry(rel.clone()).or_insert(Entry::Dir);
                // Entry names, so the listing replays the same; contents only if read.
                for e in std::fs::read_dir(&real).into_iter().flatten().flatten() {
                    let name = rel.join(e.file_name());
                    if self.entries.contains_key(&name) {
                        continue;
                    }
                    let Ok(ft) = e.file_type() else { continue };
                    let placeholder = if ft.is_dir() {
                        Entry::Dir
                    } else if ft.is_symlink() {
                        match std::fs::read_link(e.path()) {
                            Ok(t) if !is_private_fd(&name, &t) => Entry::Link(t),
                            _ => continue,
                        }
                    } else {
                        Entry::File {
                            data: Vec::new(),
                            mtime: mtime(&e.path()),
                        }
                    };
                    self.entries.insert(name, placeholder);
                }
            }
        }
    }
}

/// What vigil parses of a file that also holds private data, or `None` for
/// a file kept whole.
fn excerpt(rel: &Path, data: &[u8]) -> Option<Vec<u8>> {
    let s = rel.to_str()?;
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        ["etc", "pve", "qemu-server", name] if name.ends_with(".conf") => {
            Some(vm_config_excerpt(&String::from_utf8_lossy(data)).into_bytes())
        }
        ["etc", "pve", "mapping", _] => {
            Some(mapping_excerpt(&String::from_utf8_lossy(data)).into_bytes())
        }
        ["proc", pid, "cmdline"] if pid.bytes().all(|b| b.is_ascii_digit()) => {
            Some(qemu_cmdline_excerpt(data))
        }
        _ => None,
    }
}

/// The lines of a VM config's main section that `hostpci::parse_vm_config` reads.
fn vm_config_excerpt(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            break;
        }
        let key = t.split_once(':').map(|(k, _)| k.trim()).unwrap_or("");
        let hostpci = key
            .strip_prefix("hostpci")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if hostpci || key == "template" {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

/// A PCI mapping's names and `map` lines (`hostpci::mapping_paths`), not
/// its descriptions.
fn mapping_excerpt(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indented = line.starts_with(char::is_whitespace);
        let keep = if indented {
            line.trim_start().starts_with("map ")
        } else {
            !line.trim().is_empty() && !line.trim_start().starts_with('#')
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The arguments `holders::vmid_from_cmdline` reads: `-id N`, and the first
/// field of `-name`.
fn qemu_cmdline_excerpt(raw: &[u8]) -> Vec<u8> {
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let Some(v) = args.get(i + 1) else { break };
        let v: &[u8] = match *a {
            b"-id" => v,
            b"-name" => v.split(|b| *b == b',').next().unwrap_or_default(),
            _ => continue,
        };
        for part in [*a, v] {
            out.extend_from_slice(part);
            out.push(0);
        }
    }
    out
}

/// Another process's open files say nothing about hardware and may be private.
fn is_private_fd(rel: &Path, target: &Path) -> bool {
    let s = rel.to_string_lossy();
    let in_fd = s.starts_with("proc/") && s.split('/').nth(2) == Some("fd");
    in_fd && !target.starts_with("/dev/vfio")
}

/// What an archive holds, said in it and when it is written.
pub const HOLDS: &str = "This archive holds only what vigil reads: sysfs and procfs values of the \
PCI devices, IOMMU groups and kernel settings, the kernel command line, the hardware records \
of the kernel log, file names and ages (not contents) of logs, and, from Proxmox VM configs \
and QEMU command lines, only the hostpciN and template lines and the VM id or name: no VM \
names, MACs, UUIDs, cloud-init data, args or descriptions.";

pub fn run(root: &Root, out: &Path) -> std::io::Result<String> {
    let (_snap, accesses) =
        read::record_accesses(|| vigil_collector::collect(root, &Selection::all(), Clock::System));
    let base = root.base().to_path_buf();
    let mut plan = ArchivePlan::default();
    for (path, access) in &accesses {
        plan.add(&base, path, access);
    }
    if let Ok(recs) = kmsg::hardware_records(root) {
        plan.entries.insert(
            PathBuf::from("dev/kmsg"),
            Entry::File {
                data: recs.concat(),
                mtime: 0,
            },
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let note = format!(
        "Captured by vigil {} at Unix time {now}.\nReplay: vigil --once --root THIS_FILE (or its unpacked folder).\n\n{HOLDS}\n",
        env!("CARGO_PKG_VERSION")
    );
    plan.entries.insert(
        PathBuf::from("VIGIL-CAPTURE.txt"),
        Entry::File {
            data: note.into_bytes(),
            mtime: now as i64,
        },
    );

    let file = std::fs::File::create(out)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let (mut files, mut links, mut dirs, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    for (rel, e) in &plan.entries {
        let mut h = tar::Header::new_gnu();
        match e {
            Entry::File { data, mtime } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_mtime(u64::try_from(*mtime).unwrap_or(0));
                h.set_cksum();
                tar.append_data(&mut h, rel, data.as_slice())?;
                files += 1;
                bytes += data.len() as u64;
            }
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                tar.append_data(&mut h, rel, std::io::empty())?;
                dirs += 1;
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, rel, target)?;
                links += 1;
            }
        }
    }
    let gz = tar.into_inner()?;
    let mut f = gz.finish()?;
    f.flush()?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "{}: {files} files ({bytes} bytes of content), {links} symlinks, {dirs} directories; {size} bytes compressed\n{HOLDS}",
        out.display()
    ))
}

/// At most this many bytes of content unpacked from an archive: a capture
/// is a few megabytes, a 14 MB gzip can expand to gigabytes.
pub const MAX_UNPACKED_BYTES: u64 = 64 << 20;
/// At most this many members: a capture of a big PCI tree has tens of thousands.
pub const MAX_MEMBERS: u64 = 200_000;

/// Directories unpacked by this process, removed by [`cleanup`] on any exit.
static UNPACKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn unpacked() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNPACKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held while a member is written; taken for good by [`cleanup`], so no
/// unpack writes into a directory being removed.
static WRITING: Mutex<()> = Mutex::new(());

/// Remove every unpacked directory: for exit paths that run no destructors
/// (a signal, `process::exit`). An unpack in progress stops at its next
/// member: the process is about to exit.
pub fn cleanup() {
    let held = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let dirs = std::mem::take(&mut *unpacked());
    for d in dirs {
        remove_tree(&d);
    }
    // Never released: whatever runs until the exit writes no more members.
    std::mem::forget(held);
}

/// `rm -rf`, also through directories a member left without permissions
/// (the unpack makes them 0700, but a signal may come before it does).
fn remove_tree(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return;
    }
    open_up(dir);
    let _ = std::fs::remove_dir_all(dir);
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&e.path());
        }
    }
}

/// `--root FILE.tar.gz`: unpacked into a private directory (mkdtemp: 0700,
/// an unpredictable name, so no other user can plant it) that lives as long
/// as the guard, and is removed on every exit path ([`cleanup`]).
pub struct Unpacked {
    pub dir: PathBuf,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        unpacked().retain(|d| d != &self.dir);
        remove_tree(&self.dir);
    }
}

fn refuse(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

pub fn unpack(archive: &Path) -> std::io::Result<Unpacked> {
    let dir = private_dir()?;
    let guard = Unpacked { dir: dir.clone() };
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive)?);
    let mut ar = tar::Archive::new(gz);
    ar.set_preserve_mtime(true);
    ar.set_preserve_permissions(false);
    ar.set_unpack_xattrs(false);
    let (mut members, mut bytes) = (0u64, 0u64);
    for entry in ar.entries()? {
        let mut entry = entry?;
        members += 1;
        if members > MAX_MEMBERS {
            return Err(refuse(format!("more than {MAX_MEMBERS} members")));
        }
        let kind = entry.header().entry_type();
        // What `vigil capture` writes, nothing else: no hard links (they
        // can name files outside), sparse members (a few bytes that claim a
        // terabyte), device nodes or FIFOs.
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink())
            || kind == tar::EntryType::GNUSparse
        {
            return Err(refuse(format!(
                "{}: a {kind:?} member; a capture holds only files, directories and symlinks",
                entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        }
        bytes = bytes.saturating_add(entry.header().size()?);
        if bytes > MAX_UNPACKED_BYTES {
            return Err(refuse(format!(
                "more than {MAX_UNPACKED_BYTES} bytes of content"
            )));
        }
        // unpack_in refuses a path that leaves `dir`, through `..` or a symlink.
        entry.set_mask(0o077);
        let _writing = WRITING.lock().unwrap_or_else(|p| p.into_inner());
        if !entry.unpack_in(&dir)? {
            return Err(refuse("a member's path leaves the archive".into()));
        }
        private_mode(&dir, &entry, kind);
    }
    Ok(guard)
}

/// mkdtemp: a new directory, 0700 from its creation, with a random name;
/// `mkdir` fails rather than follow anything planted under that name.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::io::Read;
    use std::os::unix::fs::DirBuilderExt;
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    for _ in 0..16 {
        let mut r = [0u8; 8];
        urandom.read_exact(&mut r)?;
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("vigil-root-{name}"));
        // Registered in the same breath as it is made: a signal between the
        // two would leave it behind.
        let mut live = unpacked();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                live.push(dir.clone());
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no fresh temporary directory name"))
}

/// Owner-only and usable by us: a directory of mode 000 would block both
/// the replay and the removal.
fn private_mode<R: std::io::Read>(dir: &Path, entry: &tar::Entry<R>, kind: tar::EntryType) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rel) = entry.path() else { return };
    let mode = if kind.is_dir() {
        0o700
    } else if kind.is_file() {
        0o600
    } else {
        return;
    };
    let p = dir.join(rel);
    if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_symlink()) {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
    }
}
