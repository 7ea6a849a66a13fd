//! Kernel command line parsing, as the kernel splits it: whitespace-separated
//! `key[=value]`, double quotes protect spaces (`"a b"` or `key="a b"`).

/// `(key, value)` in order; repeated keys are kept (the last usually wins).
pub fn parse(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut started = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                in_quote = !in_quote;
                started = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if started {
                    out.push(split(&cur));
                    cur.clear();
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(split(&cur));
    }
    // Everything after a bare `--` goes to init, not the kernel.
    if let Some(pos) = out.iter().position(|(k, v)| k == "--" && v.is_none()) {
        out.truncate(pos);
    }
    out
}

fn split(tok: &str) -> (String, Option<String>) {
    match tok.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (tok.to_string(), None),
    }
}

pub fn last_value<'a>(params: &'a [(String, Option<String>)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
}

pub fn has_key(params: &[(String, Option<String>)], key: &str) -> bool {
    params.iter().any(|(k, _)| k == key)
}

/// `pci=` takes a comma-separated list and may be given several times.
pub fn pci_option(params: &[(String, Option<String>)], opt: &str) -> bool {
    params
        .iter()
        .filter(|(k, _)| k == "pci")
        .filter_map(|(_, v)| v.as_deref())
        .any(|v| v.split(',').any(|o| o == opt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_post_mitigation_cmdline() {
        // ../shared/data/incident/proc-cmdline.post-mitigation.txt shape
        let p = parse("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt pcie_aspm=off pci=noaer,nomsi");
        assert_eq!(last_value(&p, "pcie_aspm"), Some("off"));
        assert!(pci_option(&p, "noaer"));
        assert!(pci_option(&p, "nomsi"));
        assert!(!pci_option(&p, "realloc"));
        assert!(has_key(&p, "quiet"));
    }

    #[test]
    fn quotes_repeats_and_init_args() {
        let p = parse("a=\"x y\" pcie_aspm=force pcie_aspm=off -- pci=noaer");
        assert_eq!(last_value(&p, "a"), Some("x y"));
        assert_eq!(last_value(&p, "pcie_aspm"), Some("off"));
        assert!(!pci_option(&p, "noaer"), "after -- belongs to init");
        assert!(parse("").is_empty());
    }
}
