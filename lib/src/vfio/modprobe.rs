//! Which devices are meant for vfio-pci: `vfio-pci.ids=` on the kernel command
//! line and `options vfio-pci ids=...` in modprobe.d.
//!
//! modprobe.d(5): `*.conf` files from /etc/modprobe.d, /run/modprobe.d,
//! /usr/local/lib/modprobe.d, /usr/lib/modprobe.d and /lib/modprobe.d; a file in
//! an earlier directory hides a same-named file in a later one; files are read in
//! name order. Module names treat `-` and `_` alike; `\` continues a line.

/// One `ids=` entry: `vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMatch {
    pub vendor: u32,
    pub device: u32,
    pub subvendor: u32,
    pub subdevice: u32,
    pub class: u32,
    pub class_mask: u32,
}

/// PCI_ANY_ID.
pub const ANY: u32 = 0xffff_ffff;

impl IdMatch {
    pub fn matches(&self, vendor: u16, device: u16, sub: Option<(u16, u16)>, class: u32) -> bool {
        let m = |want: u32, got: u16| want == ANY || want == u32::from(got);
        let sub_ok = match sub {
            Some((sv, sd)) => m(self.subvendor, sv) && m(self.subdevice, sd),
            None => self.subvendor == ANY && self.subdevice == ANY,
        };
        m(self.vendor, vendor)
            && m(self.device, device)
            && sub_ok
            && (class & self.class_mask) == (self.class & self.class_mask)
    }
}

/// `10de:1b80,10de:10f0` -> matches; malformed entries are returned as errors
/// (the kernel skips them too).
pub fn parse_ids(s: &str) -> (Vec<IdMatch>, Vec<String>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let fields: Vec<&str> = entry.split(':').collect();
        let parsed: Option<Vec<u32>> = fields
            .iter()
            .map(|f| u32::from_str_radix(f, 16).ok())
            .collect();
        match parsed {
            Some(v) if (2..=6).contains(&v.len()) => ok.push(IdMatch {
                vendor: v[0],
                device: v[1],
                subvendor: v.get(2).copied().unwrap_or(ANY),
                subdevice: v.get(3).copied().unwrap_or(ANY),
                class: v.get(4).copied().unwrap_or(0),
                class_mask: v.get(5).copied().unwrap_or(0),
            }),
            _ => bad.push(entry.to_string()),
        }
    }
    (ok, bad)
}

fn is_vfio_pci(module: &str) -> bool {
    module.replace('-', "_") == "vfio_pci"
}

/// The `ids=` value of every `options vfio-pci` line of one file, in order.
pub fn vfio_ids_in_conf(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for raw in s.lines() {
        let line = raw.trim_end();
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        let l = l.trim();
        if l.starts_with('#') {
            continue;
        }
        let mut words = l.split_whitespace();
        if words.next() != Some("options") {
            continue;
        }
        if !words.next().is_some_and(is_vfio_pci) {
            continue;
        }
        for w in words {
            if let Some(v) = w.strip_prefix("ids=") {
                out.push(v.trim_matches('"').to_string());
            }
        }
    }
    out
}

/// `vfio-pci.ids=` / `vfio_pci.ids=` values on the kernel command line.
pub fn vfio_ids_in_cmdline(params: &[(String, Option<String>)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| {
            k.split_once('.')
                .is_some_and(|(m, p)| is_vfio_pci(m) && p == "ids")
        })
        .filter_map(|(_, v)| v.clone())
        .collect()
}

pub const DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_forms() {
        let (ok, bad) =
            parse_ids("10de:1b80,10de:10f0, 8086:1521:ffffffff:ffffffff:020000:ffff00,zz:1");
        assert_eq!(ok.len(), 3);
        assert_eq!(bad, vec!["zz:1"]);
        assert!(ok[0].matches(0x10de, 0x1b80, None, 0x030000));
        assert!(!ok[0].matches(0x10de, 0x1b81, None, 0x030000));
        assert!(ok[2].matches(0x8086, 0x1521, Some((0x8086, 1)), 0x020000));
        assert!(!ok[2].matches(0x8086, 0x1521, None, 0x030000));
    }

    #[test]
    fn modprobe_lines() {
        let conf = "# GPU passthrough\noptions vfio-pci ids=10de:1b80,10de:10f0 disable_vga=1\noptions vfio_pci \\\n  ids=1002:67df\nsoftdep nouveau pre: vfio-pci\n#options vfio-pci ids=dead:beef\noptions kvm ignore_msrs=1\n";
        assert_eq!(
            vfio_ids_in_conf(conf),
            vec!["10de:1b80,10de:10f0", "1002:67df"]
        );
    }

    #[test]
    fn cmdline_forms() {
        let p = crate::platform::cmdline::parse("quiet vfio-pci.ids=10de:2204,10de:1aef vfio_pci.ids=1002:67df vfio_iommu_type1.allow_unsafe_interrupts=1");
        assert_eq!(
            vfio_ids_in_cmdline(&p),
            vec!["10de:2204,10de:1aef", "1002:67df"]
        );
    }
}
