//! The evidence around one silence, in two requests: aggregates over the
//! window for every device (which ones moved), then the raw points of only
//! those devices, to say what changed and when.

use std::collections::BTreeSet;

use super::clues::{self, Clue, Suspect};
use super::influx::{quote, Client, Results, Series};
use super::readiness::{self, Readiness};
use super::resources::{self, Verdict};
use super::silence::{Gap, NS};

/// Minutes of signals read before the last heartbeat.
pub const WINDOW_S: i64 = 600;
/// Kernel events are read further back: the kernel's last words may be older.
pub const EVENTS_S: i64 = 1800;
/// ... and up to this long after the last heartbeat, before the next boot.
pub const AFTER_S: i64 = 3600;

pub struct Evidence {
    pub suspects: Vec<Suspect>,
    pub resources: Vec<Verdict>,
    pub readiness: Readiness,
    pub fixes: Vec<readiness::Fix>,
    /// One line per signal family: what the window showed, also when nothing.
    pub signals: Vec<(String, String)>,
}

struct Q {
    host: String,
    lo: i64,
    hi: i64,
}

impl Q {
    fn w(&self) -> String {
        format!(
            "\"host\" = {} AND time > {} AND time <= {}",
            quote(&self.host),
            self.lo,
            self.hi
        )
    }
    fn sel(&self, what: &str, from: &str, extra: &str) -> String {
        format!("SELECT {what} FROM \"{from}\" WHERE {}{extra}", self.w())
    }
}

fn regex_of(addresses: &BTreeSet<String>) -> String {
    let alts: Vec<String> = addresses
        .iter()
        .map(|a| {
            a.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == ':' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect()
        })
        .collect();
    format!("/^({})$/", alts.join("|"))
}

/// Devices whose aggregates show a change or a set flag.
fn moved(series: &[Series], cols: &[&str], nonzero: bool) -> BTreeSet<String> {
    series
        .iter()
        .filter(|s| {
            s.rows().any(|r| {
                cols.iter().any(|c| {
                    r.f64(c)
                        .is_some_and(|v| if nonzero { v != 0.0 } else { v > 0.0 })
                })
            })
        })
        .map(|s| s.tag("address").to_string())
        .collect()
}

// Statement positions in the first request.
const LINK: usize = 0;
const AER: usize = 1;
const STATUS: usize = 2;
const DSTATE: usize = 3;
const DRIVERS: usize = 4;
const VFIO: usize = 5;
const EVENTS: usize = 6;
const FORENSICS: usize = 7;
const PLATFORM: usize = 8;
const CPU: usize = 9;
const MEM: usize = 10;
const SYSTEM: usize = 11;
const NET: usize = 12;
const DISKIO: usize = 13;
const NAMES: usize = 14;
const AFTER: usize = 15;

/// The first request: aggregates per device over the window, the last
/// readiness and platform points, the Telegraf inputs, and (when the node
/// came back) the first readiness point of the new boot.
fn statements(host: &str, gap: &Gap) -> (Q, Vec<String>) {
    let t = gap.last.t;
    let q = Q {
        host: host.into(),
        lo: t - WINDOW_S * NS,
        hi: t,
    };
    // The kernel's last words may come after the last heartbeat (events are
    // written as they happen): read them up to the next boot.
    let end = gap
        .boot_at()
        .or(gap.next.as_ref().map(|n| n.t))
        .unwrap_or(i64::MAX);
    let ev = Q {
        host: host.into(),
        lo: t - EVENTS_S * NS,
        hi: end.min(t + AFTER_S * NS),
    };
    let by_addr = " GROUP BY \"address\"";
    let mut stmts = vec![
        q.sel("spread(\"speed_gts\") AS a, spread(\"width\") AS b, max(\"speed_downgraded\") AS c, max(\"width_downgraded\") AS d, spread(\"link_up\") AS e", "pcie_link", by_addr),
        q.sel("spread(\"total\") AS a", "pcie_aer", " GROUP BY \"address\", \"severity\""),
        q.sel("max(\"devsta_corr_err\") AS a, max(\"devsta_nonfatal_err\") AS b, max(\"devsta_fatal_err\") AS c, max(\"devsta_unsupp_req\") AS d, max(\"dpc_triggered\") AS e", "pcie_aer_status", by_addr),
        q.sel("spread(\"d_state\") AS a, min(\"reachable\") AS b", "pcie_device", by_addr),
        q.sel("count(distinct(\"driver\")) AS a", "pcie_device", by_addr),
        q.sel("*", "vfio_device", by_addr),
        ev.sel("*", "kernel_event", " ORDER BY time DESC LIMIT 50"),
        ev.sel("*", "crash_forensics", " ORDER BY time DESC LIMIT 1"),
        // last() per field: a long-running vigil writes `cmdline` on change
        // and every 5 min, not in every point (docs/metrics.md).
        ev.sel("last(\"cmdline\") AS \"cmdline\", last(\"aer_cmdline_disabled\") AS \"aer_cmdline_disabled\", last(\"aer_native\") AS \"aer_native\", last(\"aspm_cmdline\") AS \"aspm_cmdline\"", "pcie_platform", ""),
        q.sel("mean(\"usage_idle\") AS idle, min(\"usage_idle\") AS idle_min, last(\"usage_idle\") AS idle_last, max(\"usage_iowait\") AS iowait_max", "cpu", " AND \"cpu\" = 'cpu-total'"),
        q.sel("mean(\"used_percent\") AS used, max(\"used_percent\") AS used_max, min(\"available_percent\") AS avail_min", "mem", ""),
        q.sel("max(\"load1\") AS load_max, last(\"n_cpus\") AS cpus", "system", ""),
        q.sel("spread(\"bytes_recv\") AS rx, spread(\"bytes_sent\") AS tx, spread(\"err_in\") AS ei, spread(\"err_out\") AS eo, spread(\"drop_in\") AS di, spread(\"drop_out\") AS dout", "net", " GROUP BY \"interface\""),
        q.sel("spread(\"io_time\") AS busy_ms", "diskio", " GROUP BY \"name\""),
        q.sel("last(\"driver\") AS driver", "pcie_device", " GROUP BY \"address\", \"vendor\", \"device\""),
    ];
    if let Some(n) = &gap.next {
        stmts.push(format!(
            "SELECT \"pstore_records\" FROM \"crash_forensics\" WHERE \"host\" = {} AND time >= {} AND time < {} LIMIT 1",
            quote(host),
            n.t,
            n.t + 1800 * NS
        ));
    }
    (q, stmts)
}

/// Devices worth a closer look, per family: links, AER counters, status bits, power/driver.
fn moved_devices(r: &Results) -> [BTreeSet<String>; 4] {
    let addresses =
        |i: usize, pick: &dyn Fn(&super::influx::Row<'_>) -> bool| -> BTreeSet<String> {
            r[i].iter()
                .filter(|s| s.rows().any(|x| pick(&x)))
                .map(|s| s.tag("address").to_string())
                .collect()
        };
    let mut dev = moved(&r[DSTATE], &["a"], false);
    dev.extend(addresses(DSTATE, &|x| x.i64("b") == Some(0)));
    dev.extend(addresses(DRIVERS, &|x| x.i64("a").unwrap_or(0) > 1));
    [
        moved(&r[LINK], &["a", "b", "c", "d", "e"], false),
        moved(&r[AER], &["a"], false),
        moved(&r[STATUS], &["a", "b", "c", "d", "e"], true),
        dev,
    ]
}

/// `NVIDIA Corporation GA102 [GeForce RTX 3090] (vfio-pci)` from the device's tags.
fn device_name(names: &[Series], address: &str) -> Option<String> {
    let s = names.iter().find(|s| s.tag("address") == address)?;
    let label = [s.tag("vendor"), s.tag("device")]
        .iter()
        .filter(|x| !x.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let driver = s
        .rows()
        .next()
        .and_then(|r| r.str("driver").map(str::to_string));
    match (label.is_empty(), driver) {
        (false, Some(d)) => Some(format!("{label} ({d})")),
        (false, None) => Some(label),
        (true, Some(d)) => Some(format!("({d})")),
        (true, None) => None,
    }
}

pub fn gather(client: &Client, host: &str, gap: &Gap) -> Result<Evidence, String> {
    let (q, stmts) = statements(host, gap);
    let r = client.query(&stmts)?;
    let moved = moved_devices(&r);
    let raw = drill(client, &q, [&moved[0], &moved[1], &moved[2], &moved[3]])?;
    let mut all: Vec<Clue> = Vec::new();
    raw[0].iter().for_each(|s| all.extend(clues::link(s)));
    raw[1].iter().for_each(|s| all.extend(clues::aer(s)));
    raw[2].iter().for_each(|s| all.extend(clues::status(s)));
    raw[3]
        .iter()
        .for_each(|s| all.extend(clues::device_changes(s)));
    r[VFIO].iter().for_each(|s| all.extend(clues::vfio(s)));
    r[EVENTS]
        .iter()
        .for_each(|s| all.extend(clues::kernel_events(s)));
    let window = WINDOW_S as f64;
    let verdicts = vec![
        resources::cpu(&r[CPU]),
        resources::mem(&r[MEM]),
        resources::net(&r[NET], window),
        resources::diskio(&r[DISKIO], window),
        resources::system(&r[SYSTEM]),
    ];
    all.extend(resources::clues(&verdicts));
    let suspects = clues::rank(all, |a| device_name(&r[NAMES], a));
    let first_row = |i: usize| {
        r.get(i)
            .and_then(|x| x.first())
            .and_then(|s| s.rows().next())
    };
    let (cf, plat, after) = (first_row(FORENSICS), first_row(PLATFORM), first_row(AFTER));
    Ok(Evidence {
        suspects,
        resources: verdicts,
        readiness: readiness::readiness(cf.as_ref(), plat.as_ref(), after.as_ref()),
        fixes: readiness::fixes(cf.as_ref(), plat.as_ref()),
        signals: signal_lines(
            &r,
            [&moved[0], &moved[1], &moved[2], &moved[3]],
            plat.as_ref(),
        ),
    })
}

/// Raw points of the devices that moved, one statement per family.
fn drill(client: &Client, q: &Q, sets: [&BTreeSet<String>; 4]) -> Result<Results, String> {
    let specs = [
        ("\"speed_gts\", \"width\", \"link_up\", \"speed_downgraded\", \"width_downgraded\", \"expected_speed_gts\", \"expected_width\"", "pcie_link", " GROUP BY \"address\""),
        ("*", "pcie_aer", " GROUP BY \"address\", \"severity\""),
        ("\"devsta_corr_err\", \"devsta_nonfatal_err\", \"devsta_fatal_err\", \"devsta_unsupp_req\", \"dpc_triggered\", \"uncor_status_names\", \"cor_status_names\"", "pcie_aer_status", " GROUP BY \"address\""),
        ("\"driver\", \"power_state\", \"reachable\"", "pcie_device", " GROUP BY \"address\""),
    ];
    let mut stmts = Vec::new();
    let mut slots = Vec::new();
    for (i, ((what, from, group), set)) in specs.iter().zip(sets).enumerate() {
        if !set.is_empty() {
            let extra = format!(" AND \"address\" =~ {}{group}", regex_of(set));
            stmts.push(q.sel(what, from, &extra));
            slots.push(i);
        }
    }
    let mut out: Results = vec![Vec::new(); 4];
    if stmts.is_empty() {
        return Ok(out);
    }
    for (slot, series) in slots.into_iter().zip(client.query(&stmts)?) {
        out[slot] = series;
    }
    Ok(out)
}

/// What each signal family showed in the window, in a few words.
fn signal_lines(
    r: &Results,
    moved: [&BTreeSet<String>; 4],
    plat: Option<&super::influx::Row<'_>>,
) -> Vec<(String, String)> {
    let noaer = plat.and_then(|p| p.i64("aer_cmdline_disabled")) == Some(1);
    // Families 0..=3 are the statements LINK, AER, STATUS and DSTATE, in that order.
    let count = |i: usize, what: &str| -> String {
        match (r[i].len(), moved[i].len()) {
            (0, _) => "no data".into(),
            (n, 0) => format!("{n} {what}: no change"),
            (n, m) if n == m => format!(
                "{n} {what}: moved ({})",
                moved[i].iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            (n, m) => format!(
                "{n} {what}: {m} moved ({})",
                moved[i].iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    };
    let aer = if r[AER].is_empty() && noaer {
        "not counted: pci=noaer".to_string()
    } else {
        count(1, "counter set(s)")
    };
    let held: Vec<String> = r[VFIO]
        .iter()
        .filter_map(|s| {
            let last = s.rows().last()?;
            let who = match (last.i64("in_use"), last.str("vmid")) {
                (Some(0), _) => "idle".to_string(),
                (Some(_), Some(v)) => format!("held by VM {v}"),
                (Some(_), None) => "in use".to_string(),
                (None, _) => "holder unknown (unprivileged)".to_string(),
            };
            Some(format!("{} {who}", s.tag("address")))
        })
        .collect();
    let vfio = if held.is_empty() {
        "no passthrough device".into()
    } else {
        held.join("; ")
    };
    let ev = r[EVENTS].first().map_or(0, |s| s.values.len());
    vec![
        ("PCIe links".into(), count(0, "link(s)")),
        ("AER counters".into(), aer),
        ("Error status".into(), count(2, "device(s)")),
        ("Power, driver".into(), count(3, "device(s)")),
        ("vfio".into(), vfio),
        (
            "Kernel events".into(),
            if ev == 0 {
                format!("none from {} min before to the reboot", EVENTS_S / 60)
            } else {
                format!("{ev} from {} min before to the reboot", EVENTS_S / 60)
            },
        ),
    ]
}
