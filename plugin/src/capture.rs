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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

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
struct Plan {
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

impl Plan {
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
                self.entries.insert(
                    rel,
                    Entry::File {
                        data: data.clone(),
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

/// Another process's open files say nothing about hardware and may be private.
fn is_private_fd(rel: &Path, target: &Path) -> bool {
    let s = rel.to_string_lossy();
    let in_fd = s.starts_with("proc/") && s.split('/').nth(2) == Some("fd");
    in_fd && !target.starts_with("/dev/vfio")
}

pub fn run(root: &Root, out: &Path) -> std::io::Result<String> {
    let (_snap, accesses) =
        read::record(|| vigil_collector::collect(root, &Selection::all(), Clock::System));
    let base = root.base().to_path_buf();
    let mut plan = Plan::default();
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
        "Captured by vigil {} at Unix time {now}.\nReplay: vigil --once --root THIS_FILE (or its unpacked folder).\n",
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
        "{}: {files} files ({bytes} bytes of content), {links} symlinks, {dirs} directories; {size} bytes compressed",
        out.display()
    ))
}

/// `--root FILE.tar.gz`: unpack into a private directory that lives as long as the guard.
pub struct Unpacked {
    pub dir: PathBuf,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn unpack(archive: &Path) -> std::io::Result<Unpacked> {
    let dir = std::env::temp_dir().join(format!("vigil-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let guard = Unpacked { dir: dir.clone() };
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive)?);
    let mut ar = tar::Archive::new(gz);
    ar.set_preserve_mtime(true);
    ar.set_preserve_permissions(false);
    ar.unpack(&dir)?;
    Ok(guard)
}
