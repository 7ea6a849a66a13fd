//! Who holds `/dev/vfio/<group>` open: the process (usually QEMU) and its VM id.

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
