//! `vigil postmortem`: the investigation of a frozen node in one command.
//! Reads back from InfluxDB what vigil (and Telegraf's standard inputs)
//! wrote, finds when the node went silent and how it came back, and ranks
//! what in the minutes before could explain it.

mod clues;
mod gather;
mod influx;
mod readiness;
mod report;
mod resources;
mod scan;
mod silence;
mod time;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{PostmortemArgs as Args, PostmortemFormat as Format};

use self::influx::{Auth, Client};
use self::report::Silence;
use self::scan::Scan;
use self::silence::{Gap, Reboot, NS};

/// Without --at or --since: the newest silence of the last 30 days.
const DEFAULT_LOOKBACK_S: i64 = 30 * 86_400;
/// --at looks this far each side of TIME.
const AT_SPAN_S: i64 = 86_400;

fn fail(msg: &str) -> ExitCode {
    crate::log::error(&format!("postmortem: {msg}"));
    ExitCode::from(2)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub fn run(a: &Args) -> ExitCode {
    let now = now_ns();
    let auth = match (&a.user, &a.password, &a.token) {
        (Some(u), Some(p), _) => Auth::Basic {
            user: u.clone(),
            password: p.clone(),
        },
        (None, _, Some(t)) => Auth::Token(t.clone()),
        _ => Auth::None,
    };
    let ca = match &a.ca_cert {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => return fail(&format!("--ca-cert {}: {e}", p.display())),
        },
        None => None,
    };
    let client = match Client::new(&a.url, &a.db, auth, ca.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let parse = |s: &Option<String>| s.as_deref().map(|x| time::parse(x, now)).transpose();
    let (at, since) = match (parse(&a.at), parse(&a.since)) {
        (Ok(at), Ok(since)) => (at, since),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let scan = Scan {
        client: &client,
        host: a.host.clone(),
        now,
    };
    let found = investigate(&scan, at, since);
    crate::log::info(&format!(
        "postmortem: {} requests to InfluxDB, {} rows read",
        client.requests.get(),
        client.rows.get()
    ));
    match found {
        Ok(Found::Silences(all)) => print(a, since, &all),
        Ok(Found::NoData(hosts)) => {
            let known = if hosts.is_empty() {
                "none".into()
            } else {
                hosts.join(", ")
            };
            fail(&format!(
                "no vigil heartbeat for host {:?} in database {:?} (hosts with vigil data: {known}): is vigil running under Telegraf there?",
                a.host, a.db
            ))
        }
        Ok(Found::Nothing(newest)) => {
            println!(
                "vigil postmortem: {}: no silence found{} (newest heartbeat {})",
                a.host,
                match (since, at) {
                    (Some(s), _) => format!(" since {}", time::rfc3339(s)),
                    (_, Some(t)) => format!(" within a day of {}", time::rfc3339(t)),
                    _ => " in the last 30 days".into(),
                },
                time::rfc3339(newest)
            );
            ExitCode::from(3)
        }
        Err(e) => fail(&e),
    }
}

enum Found {
    Silences(Vec<Silence>),
    /// The host has no heartbeat at all; the hosts that do.
    NoData(Vec<String>),
    /// No silence in the period; the newest heartbeat.
    Nothing(i64),
}

fn investigate(scan: &Scan, at: Option<i64>, since: Option<i64>) -> Result<Found, String> {
    let Some(newest) = scan.beat_before(scan.now)? else {
        return Ok(Found::NoData(hosts(scan)?));
    };
    let gaps = match (at, since) {
        (_, Some(s)) => scan.silences(s, scan.now)?,
        (Some(t), None) => pick(scan.silences(t - AT_SPAN_S * NS, t + AT_SPAN_S * NS)?, t),
        (None, None) => {
            let mut g = scan.silences(scan.now - DEFAULT_LOOKBACK_S * NS, scan.now)?;
            g.split_off(g.len().saturating_sub(1))
        }
    };
    if gaps.is_empty() {
        return Ok(Found::Nothing(newest.t));
    }
    let mut out = Vec::new();
    for gap in gaps {
        out.push(explain(scan, gap)?);
    }
    Ok(Found::Silences(out))
}

/// The silence containing `t`, else the one nearest to it.
fn pick(gaps: Vec<Gap>, t: i64) -> Vec<Gap> {
    let contains = |g: &Gap| g.last.t <= t && g.next.as_ref().is_none_or(|n| t <= n.t);
    let best = gaps
        .iter()
        .position(contains)
        .or_else(|| (0..gaps.len()).min_by_key(|i| (gaps[*i].last.t - t).abs()));
    best.map(|i| vec![gaps[i].clone()]).unwrap_or_default()
}

fn explain(scan: &Scan, gap: Gap) -> Result<Silence, String> {
    let mark = if gap.new_boot() && !gap.last.stopping {
        scan.last_stop_mark(gap.last.t)?
    } else {
        None
    };
    let reboot = gap.classify(mark.is_some());
    let reboot_why = match reboot {
        Reboot::Orderly => "vigil marked its last heartbeat (stopping=1): the node was shut down or Telegraf stopped".into(),
        Reboot::Reset => format!(
            "a new boot, and no stop mark on the last heartbeat, although this host's vigil marks its stops (last mark {}): it did not shut down, it froze, lost power or was reset",
            mark.map_or_else(String::new, time::rfc3339)
        ),
        Reboot::None => "same boot_id before and after, uptime went on: no reboot".into(),
        Reboot::Unknown if gap.next.is_none() => "not back yet, and no stop mark: it did not shut down in order, or its vigil does not mark stops".into(),
        Reboot::Unknown => "a new boot without a stop mark, but this host never wrote one (an older vigil?): a reset cannot be told from a shutdown".into(),
    };
    let evidence = if reboot == Reboot::Orderly {
        None
    } else {
        Some(gather::gather(scan.client, &scan.host, &gap)?)
    };
    Ok(Silence {
        gap,
        reboot,
        reboot_why,
        evidence,
        now: scan.now,
    })
}

fn hosts(scan: &Scan) -> Result<Vec<String>, String> {
    let r = scan
        .client
        .query(&["SHOW TAG VALUES FROM \"vigil\" WITH KEY = \"host\"".to_string()])?;
    Ok(r[0].iter().flat_map(|s| s.rows_untimed("value")).collect())
}

fn print(a: &Args, since: Option<i64>, all: &[Silence]) -> ExitCode {
    let text = match (a.format, since) {
        (Format::Json, Some(s)) => {
            let list: Vec<_> = all.iter().map(|x| report::json(&a.host, x)).collect();
            let v =
                serde_json::json!({"host": a.host, "since": time::rfc3339(s), "silences": list});
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        (Format::Json, None) => {
            serde_json::to_string_pretty(&report::json(&a.host, &all[0])).unwrap_or_default() + "\n"
        }
        (Format::Text, Some(s)) => report::list(&a.host, s, all),
        (Format::Text, None) => report::text(&a.host, &all[0]),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if all.iter().all(Silence::explained) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postmortem::silence::Beat;

    fn gap(last: i64, next: Option<i64>) -> Gap {
        let b = |t: i64| Beat {
            t: t * NS,
            uptime_s: None,
            boot_id: None,
            stopping: false,
        };
        Gap {
            last: b(last),
            next: next.map(b),
        }
    }

    #[test]
    fn at_picks_the_silence_around_the_time_else_the_nearest() {
        let gaps = vec![gap(100, Some(200)), gap(1000, Some(5000)), gap(9000, None)];
        let at = |t: i64| pick(gaps.clone(), t * NS)[0].last.t / NS;
        assert_eq!(at(150), 100);
        assert_eq!(at(200), 100, "the moment it came back");
        assert_eq!(at(4000), 1000);
        assert_eq!(at(9500), 9000, "still silent");
        assert_eq!(at(700), 1000, "nearest start");
        assert!(pick(Vec::new(), 0).is_empty());
    }
}
