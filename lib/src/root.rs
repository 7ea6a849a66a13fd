//! Where the OS lives: every path vigil reads is an absolute OS path re-rooted here.
//!
//! A `Root` is passed by value into every collector (never a global), so tests can
//! replay many captured machines in parallel and users can point `--root` at a capture.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// The running machine.
    pub fn host() -> Root {
        Root {
            base: PathBuf::from("/"),
        }
    }

    /// A captured machine laid out as `DIR/sys`, `DIR/proc`, `DIR/etc`, ...
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
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
