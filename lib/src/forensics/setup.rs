//! What `vigil doctor`'s advice depends on, read only when a person asks: the
//! log shippers installed, the interface netconsole would use, and whether
//! vigil's own data leaves the node (Telegraf running, the snippet in place,
//! `/dev/kmsg` readable by Telegraf's user). All read-only from files under the
//! root (no D-Bus, no systemctl), so captures and fixtures replay it.

use serde::Serialize;

use super::findings::Finding;
use super::journald;
use super::remote;
use crate::read::{self, ErrorKind};
use crate::root::Root;

/// Capability number of CAP_SYSLOG (linux/capability.h): reads /dev/kmsg under
/// `kernel.dmesg_restrict=1`.
const CAP_SYSLOG: u32 = 34;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Setup {
    /// Installed ways off the node: `rsyslog`, `syslog-ng`, `journal-upload`.
    pub installed_shippers: Vec<String>,
    /// The interface of the default IPv4 route (`/proc/net/route`).
    pub default_route_dev: Option<String>,
    /// A `telegraf` process is running; `None` when /proc could not be listed.
    pub telegraf_running: Option<bool>,
    /// Its effective capabilities include CAP_SYSLOG.
    pub telegraf_cap_syslog: Option<bool>,
    /// A `telegraf.service` file or drop-in grants CAP_SYSLOG.
    pub unit_grants_cap_syslog: bool,
    /// `kernel.dmesg_restrict` is on.
    pub dmesg_restrict: Option<bool>,
    /// The Telegraf file that runs vigil, if any; `None` also when unreadable
    /// or when /etc/telegraf is absent (see `snippet_unreadable`).
    pub snippet: Option<String>,
    pub snippet_unreadable: Vec<String>,
    /// The snippet runs vigil through sudo (as root).
    pub snippet_sudo: bool,
    /// Telegraf's vigil can read `/dev/kmsg`; `None` when it cannot be told.
    pub kmsg_readable: Option<bool>,
}

/// Where Debian 12/13 packages put each shipper's program.
const SHIPPERS: [(&str, &[&str]); 3] = [
    ("rsyslog", &["/usr/sbin/rsyslogd"]),
    ("syslog-ng", &["/usr/sbin/syslog-ng"]),
    (
        "journal-upload",
        &[
            "/usr/lib/systemd/systemd-journal-upload",
            "/lib/systemd/systemd-journal-upload",
        ],
    ),
];

pub fn collect(root: &Root) -> Setup {
    let mut s = Setup {
        installed_shippers: SHIPPERS
            .iter()
            .filter(|(_, paths)| paths.iter().any(|p| read::is_file(&root.path(p))))
            .map(|(n, _)| n.to_string())
            .collect(),
        default_route_dev: read::read_text(&root.path("/proc/net/route"))
            .ok()
            .and_then(|t| default_route_dev(&t)),
        dmesg_restrict: read::read_attr(&root.path("/proc/sys/kernel/dmesg_restrict"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map(|v| v > 0),
        unit_grants_cap_syslog: unit_grants_cap_syslog(root),
        ..Setup::default()
    };
    telegraf_process(root, &mut s);
    snippet(root, &mut s);
    s.kmsg_readable = kmsg_readable(&s);
    s
}

/// `Iface Destination Gateway Flags ... Mask`: the default route has
/// destination and mask 0.
pub fn default_route_dev(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        (c.len() > 7 && c[1] == "00000000" && c[7] == "00000000").then(|| c[0].to_string())
    })
}

/// `CapEff:\t0000003fffffffff` from /proc/PID/status.
pub fn cap_eff_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(bits >> cap & 1 == 1)
}

fn telegraf_process(root: &Root, s: &mut Setup) {
    let Ok(pids) = read::list_dir(&root.path("/proc")) else {
        return;
    };
    let mut unsure = false;
    for pid in pids
        .iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        match read::read_attr(&root.path(&format!("/proc/{pid}/comm"))) {
            Ok(c) if c.trim() == "telegraf" => {
                s.telegraf_running = Some(true);
                s.telegraf_cap_syslog = read::read_text(&root.path(&format!("/proc/{pid}/status")))
                    .ok()
                    .and_then(|t| cap_eff_has(&t, CAP_SYSLOG));
                return;
            }
            Ok(_) => {}
            // Gone since the listing: an exited process, not this one.
            Err(e)
                if e.kind == ErrorKind::Absent
                    && !read::is_dir(&root.path(&format!("/proc/{pid}"))) => {}
            // A process whose name cannot be read (a capture keeps no names).
            Err(_) => unsure = true,
        }
    }
    s.telegraf_running = (!unsure).then_some(false);
}

/// `AmbientCapabilities=CAP_SYSLOG` in telegraf.service or one of its drop-ins under /etc.
fn unit_grants_cap_syslog(root: &Root) -> bool {
    let dir = "/etc/systemd/system/telegraf.service.d";
    let mut files = vec!["/etc/systemd/system/telegraf.service".to_string()];
    files.extend(
        read::list_dir(&root.path(dir))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
            .map(|n| format!("{dir}/{n}")),
    );
    files.iter().any(|f| {
        remote::read_config(root, f).is_ok_and(|t| {
            journald::assignments(&t).iter().any(|a| {
                a.section.as_deref() == Some("Service")
                    && a.key == "AmbientCapabilities"
                    && a.value.split_whitespace().any(|c| c == "CAP_SYSLOG")
            })
        })
    })
}

/// A Telegraf configuration line that runs vigil (`command = [".../vigil"]`).
pub fn runs_vigil(text: &str) -> Option<bool> {
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with("command") && l.contains("vigil"))?;
    Some(line.contains("sudo"))
}

fn snippet(root: &Root, s: &mut Setup) {
    // No /etc/telegraf: Telegraf is not installed (or this is a capture, which
    // keeps no Telegraf files): nothing to say about its files.
    if !read::is_dir(&root.path("/etc/telegraf")) {
        s.snippet_unreadable.push("/etc/telegraf: absent".into());
        return;
    }
    let mut files = vec!["/etc/telegraf/telegraf.conf".to_string()];
    let dir = "/etc/telegraf/telegraf.d";
    match read::list_dir(&root.path(dir)) {
        Ok(names) => files.extend(
            names
                .into_iter()
                .filter(|n| n.ends_with(".conf"))
                .map(|n| format!("{dir}/{n}")),
        ),
        Err(e) if e.kind == ErrorKind::Absent => {}
        Err(e) => s.snippet_unreadable.push(e.to_string()),
    }
    for f in files {
        match remote::read_config(root, &f) {
            Ok(t) => {
                if let Some(sudo) = runs_vigil(&t) {
                    s.snippet = Some(f);
                    s.snippet_sudo = sudo;
                    return;
                }
            }
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => s.snippet_unreadable.push(e.to_string()),
        }
    }
}

/// Can vigil, as Telegraf runs it, read /dev/kmsg? Root (sudo snippet) or an
/// unrestricted ring: yes; else it takes CAP_SYSLOG, seen on the running
/// process, or, with Telegraf stopped, granted by its unit.
fn kmsg_readable(s: &Setup) -> Option<bool> {
    if s.snippet_sudo || s.dmesg_restrict == Some(false) {
        return Some(true);
    }
    s.dmesg_restrict?;
    match s.telegraf_running {
        Some(true) => s.telegraf_cap_syslog,
        Some(false) => Some(s.unit_grants_cap_syslog),
        None => None,
    }
}

/// Where vigil's own data would stop on its way off the node. Weight 0: these
/// are not part of `readiness_score` (vigil itself could not report them once
/// they fail), only `vigil doctor` shows them.
pub fn findings(s: &Setup) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id, w: &str, v: String| Finding {
        id,
        weight: 0,
        seen: vec![(w.to_string(), v)],
    };
    if s.telegraf_running == Some(false) {
        out.push(f(
            "telegraf_not_running",
            "/proc/*/comm",
            "no telegraf process".into(),
        ));
    }
    if s.snippet.is_none() && s.snippet_unreadable.is_empty() {
        out.push(f(
            "no_vigil_snippet",
            "/etc/telegraf/telegraf.conf, /etc/telegraf/telegraf.d/*.conf",
            "no command runs vigil".into(),
        ));
    }
    if s.kmsg_readable == Some(false) {
        let mut v = f(
            "kmsg_unreadable",
            "/proc/sys/kernel/dmesg_restrict",
            "1".into(),
        );
        let caps = match s.telegraf_running {
            Some(true) => "running telegraf has no CAP_SYSLOG",
            _ => "telegraf.service grants no CAP_SYSLOG",
        };
        v.seen.push(("capabilities".into(), caps.into()));
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            vmbr0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            vmbr0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_dev(route).as_deref(), Some("vmbr0"));
        assert_eq!(default_route_dev("Iface\tDestination\n"), None);
        assert_eq!(
            cap_eff_has("Name:\ttelegraf\nCapEff:\t0000000400000000\n", 34),
            Some(true)
        );
        assert_eq!(cap_eff_has("CapEff:\t0000000000000000\n", 34), Some(false));
        assert_eq!(
            runs_vigil("[[inputs.execd]]\n  command = [\"/usr/bin/vigil\"]\n"),
            Some(false)
        );
        assert_eq!(
            runs_vigil("  command = [\"/usr/bin/sudo\", \"-n\", \"/usr/bin/vigil\"]\n"),
            Some(true)
        );
        assert_eq!(runs_vigil("#  command = [\"/usr/bin/vigil\"]\n"), None);
    }
}
