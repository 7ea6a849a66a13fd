//! Who holds `/dev/vfio/<group>` open: the process (usually QEMU) and its VM id.

use std::collections::{BTreeMap, BTreeSet};

use super::{Holder, VfioDevice};
use crate::collector::Collector;
use crate::read::{self, ErrorKind};
use crate::root::Root;
use crate::status::Tally;

const C: Collector = Collector::VfioDevice;

/// Who holds each device's group open. Only worth a /proc walk when a group
/// node exists; `None` where some process could not be inspected.
pub fn collect(root: &Root, devices: &mut BTreeMap<String, VfioDevice>, tally: &mut Tally) {
    if devices.is_empty() {
        return;
    }
    let nodes: BTreeSet<u32> = read::list_dir(&root.path("/dev/vfio"))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| vfio_group_of_link(&format!("/dev/vfio/{n}")))
        .collect();
    let (found, complete) = if nodes.is_empty() {
        (BTreeMap::new(), true)
    } else {
        scan(root, &nodes, tally)
    };
    for dev in devices.values_mut() {
        let Some(g) = dev.group else { continue };
        dev.holder = match found.get(&g) {
            Some(h) => Some(Some(h.clone())),
            None if complete => Some(None),
            None => None,
        };
    }
}

/// Group -> holder, and whether every process could be inspected.
fn scan(root: &Root, groups: &BTreeSet<u32>, tally: &mut Tally) -> (BTreeMap<u32, Holder>, bool) {
    let mut found = BTreeMap::new();
    let mut complete = true;
    let proc_dir = root.path("/proc");
    let Ok(pids) = read::list_dir(&proc_dir) else {
        tally.unavailable(C, "absent");
        return (found, false);
    };
    // vigil's own descriptors are never a vfio group, and a long-running
    // vigil holds thousands (kept sysfs directories, pci::memory): on the
    // host, its own pid is not walked.
    let own = (root.base() == std::path::Path::new("/")).then(|| std::process::id().to_string());
    for pid in pids
        .iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter(|p| own.as_ref() != Some(*p))
    {
        let fd_dir = proc_dir.join(pid).join("fd");
        let fds = match read::list_dir(&fd_dir) {
            Ok(f) => f,
            Err(e) if e.kind == ErrorKind::Permission => {
                complete = false;
                continue;
            }
            Err(_) => continue, // exited meanwhile, or a kernel thread
        };
        for fd in fds {
            let Ok(target) = read::read_link(&fd_dir.join(&fd)) else {
                continue;
            };
            let Some(g) = target.to_str().and_then(vfio_group_of_link) else {
                continue;
            };
            if !groups.contains(&g) || found.contains_key(&g) {
                continue;
            }
            let name = read::read_attr(&proc_dir.join(pid).join("comm"))
                .ok()
                .map(|c| c.trim().to_string());
            let vmid = read::read_bytes(&proc_dir.join(pid).join("cmdline"), 1 << 16)
                .ok()
                .and_then(|b| vmid_from_cmdline(&b));
            found.insert(
                g,
                Holder {
                    pid: pid.parse().unwrap_or(0),
                    name,
                    vmid,
                },
            );
        }
    }
    if !complete {
        tally.unavailable(C, "permission");
    }
    (found, complete)
}

/// VM id from a QEMU argv (NUL-separated `/proc/<pid>/cmdline`): Proxmox passes
/// `-id <vmid>`; otherwise libvirt's `-name guest=<name>,...` or `-name <name>`.
pub fn vmid_from_cmdline(raw: &[u8]) -> Option<String> {
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(id) =
        after("-id").filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
    {
        return Some(id.clone());
    }
    let name = after("-name")?;
    let first = name.split(',').next()?;
    let n = first.strip_prefix("guest=").unwrap_or(first);
    (!n.is_empty()).then(|| n.to_string())
}

/// The group number of a `/proc/<pid>/fd/N` link target, if it is a VFIO group node.
pub fn vfio_group_of_link(target: &str) -> Option<u32> {
    let rest = target.strip_prefix("/dev/vfio/")?;
    let rest = rest.strip_prefix("noiommu-").unwrap_or(rest);
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_and_libvirt_argv() {
        let pve = b"/usr/bin/kvm\0-id\x00100\0-name\0win10,debug-threads=on\0-no-shutdown\0";
        assert_eq!(vmid_from_cmdline(pve).as_deref(), Some("100"));
        let libvirt = b"/usr/bin/qemu-system-x86_64\0-name\0guest=gaming,debug-threads=on\0";
        assert_eq!(vmid_from_cmdline(libvirt).as_deref(), Some("gaming"));
        assert_eq!(vmid_from_cmdline(b"bash\0"), None);
        assert_eq!(vfio_group_of_link("/dev/vfio/16"), Some(16));
        assert_eq!(vfio_group_of_link("/dev/vfio/noiommu-0"), Some(0));
        assert_eq!(vfio_group_of_link("/dev/vfio/vfio"), None);
        assert_eq!(vfio_group_of_link("socket:[1234]"), None);
    }
}
