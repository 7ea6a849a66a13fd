//! Proxmox VM configs (`/etc/pve/qemu-server/<vmid>.conf`): which host PCI
//! functions each VM is configured to take, from its `hostpciN:` lines.
//!
//! Syntax (qemu-server `PVE::QemuServer::PCI`, a pve-common property string):
//! `[host=]ID[;ID...]` or `mapping=NAME`, with other `key=value` options in any
//! order around it (`pcie=1,host=01:00.0` is as valid as `01:00.0,pcie=1`). ID
//! is `[DDDD:]BB:DD[.F]` (no function = every function of the slot present on
//! the host); a mapping is cluster-wide and resolved through
//! `/etc/pve/mapping/pci.cfg` for this node.

use std::collections::{BTreeMap, BTreeSet};

use crate::collector::Collector;
use crate::pci::PciDevice;
use crate::read;
use crate::root::Root;
use crate::status::Tally;

const C: Collector = Collector::VfioDevice;

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

/// A `hostpciN:` value read as Proxmox reads it (`parse_property_string` in
/// pve-common's PVE::JSONSchema with qemu-server's `$hostpci_fmt`): items split
/// at `,`, blank items skipped, `key=value` split at the first `=`, and an item
/// without `=` is the default key `host`, wherever it stands. A key given twice
/// (a bare ID and `host=` included), an item with an empty key or value, both
/// `host` and `mapping`, or an ID that does not match qemu-server's pattern
/// makes the value invalid: Proxmox refuses to start the VM, so it takes
/// nothing (`None`). Keys this version does not know (`pcie`, `x-vga`,
/// `driver`...) are ignored rather than refused, so a newer Proxmox's options
/// do not hide a device.
pub fn parse_hostpci(value: &str) -> Option<HostPci> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let (mut host, mut mapping) = (None, None);
    for item in value.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let (key, v) = match item.split_once('=') {
            None => ("host", item),
            Some((k, v)) if !k.is_empty() && !v.is_empty() => (k, v),
            Some(_) => return None,
        };
        if !seen.insert(key) {
            return None;
        }
        match key {
            "host" => host = Some(v),
            "mapping" => mapping = Some(v),
            _ => {}
        }
    }
    match (host, mapping) {
        (Some(h), None) => {
            let ids: Option<Vec<String>> = h.split(';').map(normalise_id).collect();
            ids.map(HostPci::Ids)
        }
        (None, Some(m)) if is_config_id(m) => Some(HostPci::Mapping(m.to_string())),
        _ => None,
    }
}

/// pve-configid: a letter, then letters, digits, `-` and `_`.
fn is_config_id(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_')
}

/// One host ID as qemu-server's pattern takes it, `[DDDD:]BB:DD[.F]` with
/// lower-case hex, a domain of four or more digits (Intel VMD's `10000`):
/// `01:00.0` -> `0000:01:00.0`; `01:00` -> `0000:01:00` (every function of
/// the slot). Anything else is `None`.
fn normalise_id(id: &str) -> Option<String> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let parts: Vec<&str> = id.split(':').collect();
    let (dom, bus, rest) = match parts.as_slice() {
        [b, r] => ("0000", *b, *r),
        [d, b, r] if d.len() >= 4 => (*d, *b, *r),
        _ => return None,
    };
    let (dev, func) = match rest.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (rest, None),
    };
    let ok = hex(dom)
        && bus.len() == 2
        && hex(bus)
        && dev.len() == 2
        && hex(dev)
        && func.is_none_or(|f| f.len() == 1 && hex(f));
    ok.then(|| id_with_domain(dom, bus, dev, func))
}

fn id_with_domain(dom: &str, bus: &str, dev: &str, func: Option<&str>) -> String {
    match func {
        Some(f) => format!("{dom}:{bus}:{dev}.{f}"),
        None => format!("{dom}:{bus}:{dev}"),
    }
}

/// Host functions an entry selects, given the functions present on the host.
pub fn resolve<S: AsRef<str> + Ord>(ids: &[String], present: &BTreeSet<S>) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        if id.contains('.') {
            out.push(id.clone());
        } else {
            let prefix = format!("{id}.");
            let present = present.iter().map(AsRef::as_ref);
            out.extend(
                present
                    .filter(|a| a.starts_with(&prefix))
                    .map(str::to_string),
            );
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

/// address -> VM ids whose config takes it.
pub fn configured(
    root: &Root,
    devices: &BTreeMap<String, PciDevice>,
    tally: &mut Tally,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let dir = root.path("/etc/pve/qemu-server");
    let Ok(names) = read::list_dir(&dir) else {
        return out;
    };
    // Borrowed: the addresses are not copied for a lookup.
    let present: BTreeSet<&str> = devices.keys().map(String::as_str).collect();
    let node = read::read_attr(&root.path("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string());
    let mapping = read::read_text(&root.path("/etc/pve/mapping/pci.cfg")).ok();
    for n in names {
        let Some(vmid) = n
            .strip_suffix(".conf")
            .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let text = match read::read_text(&dir.join(&n)) {
            Ok(t) => t,
            Err(e) => {
                tally.read_failed(C, &e);
                continue;
            }
        };
        let vm = parse_vm_config(&text);
        if vm.template {
            continue;
        }
        for (_, entry) in vm.entries {
            let addrs = match entry {
                HostPci::Ids(ids) => resolve(&ids, &present),
                HostPci::Mapping(name) => match (&mapping, &node) {
                    (Some(m), Some(node)) => resolve(&mapping_paths(m, &name, node), &present),
                    _ => Vec::new(),
                },
            };
            for a in addrs {
                out.entry(a).or_default().insert(vmid.to_string());
            }
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
    fn property_string_as_proxmox_reads_it() {
        let ids = |v: &[&str]| Some(HostPci::Ids(v.iter().map(|s| s.to_string()).collect()));
        // `host=` and the bare ID (the default key) anywhere in the string.
        assert_eq!(parse_hostpci("pcie=1,host=01:00.0"), ids(&["0000:01:00.0"]));
        assert_eq!(parse_hostpci("x-vga=1,pcie=1,01:00"), ids(&["0000:01:00"]));
        assert_eq!(parse_hostpci("01:00.0,,pcie=1,"), ids(&["0000:01:00.0"]));
        assert_eq!(
            parse_hostpci("rombar=0,mapping=gpu-1"),
            Some(HostPci::Mapping("gpu-1".into()))
        );
        // Intel VMD domains have five hex digits.
        assert_eq!(parse_hostpci("10000:e1:00.0"), ids(&["10000:e1:00.0"]));
        // What Proxmox refuses (the VM does not start, so it takes nothing).
        for bad in [
            "01:00.0,host=02:00.0",       // host twice
            "01:00.0,02:00.0",            // default key twice
            "host=01:00.0,mapping=gpu",   // both
            "pcie=1,pcie=0,host=01:00.0", // a key twice
            "pcie=1",                     // neither
            "01:00.0,pcie=",              // an empty value
            "01:00.0,=1",                 // an empty key
            "01:00.0;zz",                 // one bad ID spoils the list
            "0A:00.0",                    // the pattern is lower-case
            "1:00.0",                     // two-digit bus
            "000:01:00.0",                // domain of four or more
            "01:00.10",                   // one-digit function
            "mapping=9gpu",               // not a pve-configid
        ] {
            assert_eq!(parse_hostpci(bad), None, "{bad}");
        }
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
