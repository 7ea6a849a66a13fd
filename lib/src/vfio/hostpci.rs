//! Proxmox VM configs (`/etc/pve/qemu-server/<vmid>.conf`): which host PCI
//! functions each VM is configured to take, from its `hostpciN:` lines.
//!
//! Syntaxes (qemu-server `PVE::QemuServer::PCI`): `[host=]ID[;ID...][,opt=v...]`
//! where ID is `[DDDD:]BB:DD[.F]` (no function = every function of the slot
//! present on the host) or `mapping=NAME` (a cluster-wide mapping resolved
//! through `/etc/pve/mapping/pci.cfg` for this node).

use std::collections::BTreeSet;

/// One `hostpciN:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPci {
    /// Host IDs as written: `0000:01:00.0` or a slot `0000:01:00` (all functions).
    Ids(Vec<String>),
    Mapping(String),
}

/// What a VM config says about passthrough.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmConfig {
    pub template: bool,
    pub entries: Vec<(String, HostPci)>,
}

/// Parse the current section of a VM config (snapshots follow in `[name]`
/// sections and are not what runs).
pub fn parse_vm_config(s: &str) -> VmConfig {
    let mut vm = VmConfig::default();
    for line in s.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "template" {
            vm.template = value == "1";
        } else if key.starts_with("hostpci")
            && key[7..].chars().all(|c| c.is_ascii_digit())
            && key.len() > 7
        {
            if let Some(h) = parse_hostpci(value) {
                vm.entries.push((key.to_string(), h));
            }
        }
    }
    vm
}

pub fn parse_hostpci(value: &str) -> Option<HostPci> {
    let first = value.split(',').next()?.trim();
    let (k, v) = match first.split_once('=') {
        Some((k, v)) => (k.trim(), v.trim()),
        None => ("host", first),
    };
    match k {
        "mapping" if !v.is_empty() => Some(HostPci::Mapping(v.to_string())),
        "host" => {
            let ids: Vec<String> = v.split(';').filter_map(normalise_id).collect();
            (!ids.is_empty()).then_some(HostPci::Ids(ids))
        }
        _ => None,
    }
}

/// `01:00.0` -> `0000:01:00.0`; `01:00` -> `0000:01:00` (a slot); lower-case.
fn normalise_id(id: &str) -> Option<String> {
    let id = id.trim().to_ascii_lowercase();
    let parts: Vec<&str> = id.split(':').collect();
    let (dom, bus, rest) = match parts.as_slice() {
        [b, r] => ("0000", *b, *r),
        [d, b, r] => (*d, *b, *r),
        _ => return None,
    };
    let (dev, func) = match rest.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (rest, None),
    };
    let hex = |s: &str, n: usize| {
        s.len() <= n && !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
    };
    if !(hex(dom, 4)
        && hex(bus, 2)
        && hex(dev, 2)
        && func.is_none_or(|f| f.len() == 1 && hex(f, 1)))
    {
        return None;
    }
    let base = format!("{:0>4}:{:0>2}:{:0>2}", dom, bus, dev);
    Some(match func {
        Some(f) => format!("{base}.{f}"),
        None => base,
    })
}

/// Host functions an entry selects, given the functions present on the host.
pub fn resolve(ids: &[String], present: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        if id.len() == 12 {
            out.push(id.clone());
        } else {
            let prefix = format!("{id}.");
            out.extend(present.iter().filter(|a| a.starts_with(&prefix)).cloned());
        }
    }
    out
}

/// `/etc/pve/mapping/pci.cfg`: `NAME` lines, each followed by indented
/// `map id=VVVV:DDDD,node=NODE,path=BDF[;BDF]` lines. Returns the paths of
/// `name` on `node`.
pub fn mapping_paths(cfg: &str, name: &str, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<&str> = None;
    for line in cfg.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            current = Some(line.trim());
            continue;
        }
        if current != Some(name) {
            continue;
        }
        let Some(rest) = line.trim().strip_prefix("map ") else {
            continue;
        };
        let mut on_node = false;
        let mut paths = Vec::new();
        for kv in rest.split(',') {
            match kv.trim().split_once('=') {
                Some(("node", n)) => on_node = n == node,
                Some(("path", p)) => paths.extend(p.split(';').filter_map(normalise_id)),
                _ => {}
            }
        }
        if on_node {
            out.extend(paths);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_user_configs() {
        // ../shared/data/proxmox-vm-configs (blog posts): a whole GPU slot.
        let vm = parse_vm_config("bios: ovmf\nhostpci0: 0000:01:00,pcie=1,x-vga=1\nmachine: pc-q35-8.0\n[snap1]\nhostpci0: 02:00.0\n");
        assert_eq!(
            vm.entries,
            vec![("hostpci0".into(), HostPci::Ids(vec!["0000:01:00".into()]))]
        );
        let present: BTreeSet<String> = ["0000:01:00.0", "0000:01:00.1", "0000:02:00.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            resolve(&["0000:01:00".into()], &present),
            vec!["0000:01:00.0", "0000:01:00.1"]
        );
    }

    #[test]
    fn every_syntax() {
        assert_eq!(
            parse_hostpci("00:ff.1,driver=keep"),
            Some(HostPci::Ids(vec!["0000:00:ff.1".into()]))
        );
        assert_eq!(
            parse_hostpci("1234:f0:43"),
            Some(HostPci::Ids(vec!["1234:f0:43".into()]))
        );
        assert_eq!(
            parse_hostpci("host=02:00.0;02:00.1,pcie=1"),
            Some(HostPci::Ids(vec![
                "0000:02:00.0".into(),
                "0000:02:00.1".into()
            ]))
        );
        assert_eq!(
            parse_hostpci("mapping=someGpu,mdev=some-model"),
            Some(HostPci::Mapping("someGpu".into()))
        );
        assert_eq!(parse_hostpci("garbage"), None);
        assert!(parse_vm_config("template: 1\nhostpci0: 00:ff.1").template);
    }

    #[test]
    fn mappings_resolve_per_node() {
        let cfg = "someNic\n\tmap id=8086:10ca,node=localhost,path=0000:07:10.0\n\tmap id=8086:10ca,node=other,path=0000:09:00.0\nsomeGpu\n\tmap id=10de:1c02,node=localhost,path=0000:01:00.0;0000:01:00.1\n";
        assert_eq!(
            mapping_paths(cfg, "someNic", "localhost"),
            vec!["0000:07:10.0"]
        );
        assert_eq!(
            mapping_paths(cfg, "someGpu", "localhost"),
            vec!["0000:01:00.0", "0000:01:00.1"]
        );
        assert!(mapping_paths(cfg, "none", "localhost").is_empty());
    }
}
