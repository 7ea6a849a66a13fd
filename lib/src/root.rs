//! Where the OS lives: every path vigil reads is an absolute OS path re-rooted here.
//!
//! A `Root` is passed by value into every collector (never a global), so tests can
//! replay many captured machines in parallel and users can point `--root` at a capture.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::read::{self, Confined};

/// A captured root is confined: every path under it resolves inside it, as
/// under chroot (see [`read::confine`]), for as long as a `Root` for it lives.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
    /// Held, never read: keeps the root registered and open.
    #[allow(dead_code)]
    confined: Option<Arc<Confined>>,
}

impl PartialEq for Root {
    fn eq(&self, other: &Root) -> bool {
        self.base == other.base
    }
}

impl Eq for Root {}

impl Root {
    /// The running machine.
    pub fn host() -> Root {
        Root {
            base: PathBuf::from("/"),
            confined: None,
        }
    }

    /// A captured machine laid out as `DIR/sys`, `DIR/proc`, `DIR/etc`, ...
    pub fn new(base: impl Into<PathBuf>) -> Root {
        let base = base.into();
        let confined = read::confine(&base);
        Root { base, confined }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `os_path` is written as on the host (`/sys/bus/pci/devices`).
    pub fn path(&self, os_path: &str) -> PathBuf {
        self.base.join(os_path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebases_absolute_os_paths() {
        let r = Root::new("/tmp/fx");
        assert_eq!(r.path("/sys/bus/pci"), PathBuf::from("/tmp/fx/sys/bus/pci"));
        assert_eq!(
            Root::host().path("/proc/cmdline"),
            PathBuf::from("/proc/cmdline")
        );
    }
}
