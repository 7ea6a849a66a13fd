//! Command line: every flag is a value on Telegraf's execd `command = [...]`
//! array; there is no config file.
//!
//! build.rs `include!`s this file to write the man pages and shell completions
//! from these same definitions, so it may use only std, clap and
//! vigil_collector (no `crate::` paths).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use vigil_collector::{Collector, Selection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// InfluxDB line protocol (what Telegraf's execd parses by default)
    Influx,
    /// One JSON object per point: name, tags, fields, timestamp (Unix nanoseconds)
    Json,
    /// Prometheus text exposition format, for node_exporter's textfile collector (with --once)
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AerDetailArg {
    /// Only `total` and `rootport_total` per severity
    Totals,
    /// The totals, and the counters that are not zero
    Nonzero,
    /// Every counter, zeros included
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceTagsArg {
    /// IDs and names on `pcie_device`; the other device lines carry `address`
    Address,
    /// IDs and names on every device line (v1)
    All,
}

const AFTER_HELP: &str = "\
MODES:
  (default)        Telegraf execd with signal = \"STDIN\": every line on stdin
                   triggers one collection; SIGUSR1, SIGUSR2 and SIGHUP do too
                   (execd's other signal modes). Triggers that arrive during a
                   collection collapse into one. Stdin EOF, SIGTERM or SIGINT
                   exit 0 after the batch in flight, with a last heartbeat
                   marked stopping=1i (an orderly stop, not a freeze); SIGTERM
                   within a second, even while stdout is blocked.
  --interval 10s   Collect on a timer (execd signal = \"none\").
  --once           One collection, then exit 0.
  vigil doctor     What this node would lose if it froze now, and the fixes.
  vigil capture    One archive of what vigil reads here, for bug reports.
  vigil postmortem Why a node went silent, read back from InfluxDB.

VOLUME: by default at most about 1 KB per PCI function per collection:
identity tags on pcie_device only (--device-tags), AER counters when not
zero (--aer-detail), facts on change and every --refresh. Devices:
--address, --class, --vendor. README, \"Volume and cardinality\".

stdout carries only metrics; stderr lines start with E!, W!, I! or D!.
Every measurement and field: /usr/share/doc/vigil/metrics.md
(docs/metrics.md in the source).";

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "PCIe link, ASPM, AER and platform signals for Telegraf (inputs.execd)", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Collect once, print, and exit
    #[arg(long, conflicts_with = "interval")]
    pub once: bool,

    /// Collect every DURATION on a timer (e.g. 10s, 500ms, 1m), for execd signal = "none"
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Read every OS path under DIR (DIR/sys, DIR/proc, DIR/etc, DIR/var, DIR/run, DIR/dev): replay a captured machine; a `vigil capture` archive works too
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value = "influx")]
    pub format: Format,

    /// Comma-separated collectors to run (default: all)
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = CollectorParser)]
    pub collectors: Vec<Collector>,

    /// Leave out the vendor and device name tags (pci.ids)
    #[arg(long)]
    pub no_names: bool,

    /// Only these devices: addresses or their prefixes (`0000:01:`, `01:00.0`); `!PREFIX` leaves out
    #[arg(long = "address", value_name = "LIST", value_delimiter = ',', value_parser = parse_address)]
    pub addresses: Vec<Pattern>,

    /// Only these PCI classes, as hex prefixes of the class code: `03` display, `0300` VGA, `0108` NVMe, `!06` no bridges
    #[arg(long = "class", value_name = "LIST", value_delimiter = ',', value_parser = parse_class)]
    pub classes: Vec<Pattern>,

    /// Only these vendor IDs (hex: `10de`, `!8086`)
    #[arg(long = "vendor", value_name = "LIST", value_delimiter = ',', value_parser = parse_vendor)]
    pub vendors: Vec<Pattern>,

    /// AER counters per severity line
    #[arg(long, value_enum, default_value = "nonzero")]
    pub aer_detail: AerDetailArg,

    /// Where the device IDs and pci.ids names go
    #[arg(long, value_enum, default_value = "address")]
    pub device_tags: DeviceTagsArg,

    /// Long-running: write facts (link maxima, masks, ASPM settings, cmdline...) when they change and at least this often; 0 = every collection
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_refresh)]
    pub refresh: Duration,

    /// Stamp every batch with this Unix time in nanoseconds and report zero durations (reproducible output for tests and replays)
    #[arg(long, value_name = "NS")]
    pub fake_time: Option<i64>,

    /// Longest one collection may take, whatever blocks (default 1.8s); what is not read by then is reported unavailable="timeout". Raise it only for a machine slowed down on purpose (tracing)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain, in plain words, what this node would lose if it froze now, and how to fix it
    Doctor(DoctorArgs),
    /// Write one .tar.gz of exactly the files vigil reads here, replayable with --root (for bug reports)
    Capture(CaptureArgs),
    /// Why a node went silent: its last heartbeat, how it came back, and the suspects, read back from InfluxDB
    #[command(after_help = POSTMORTEM_HELP)]
    Postmortem(PostmortemArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PostmortemFormat {
    /// For a person (80 columns)
    Text,
    /// For tools: one object (a list under `silences` with --since)
    Json,
}

const POSTMORTEM_HELP: &str = "\
Without --at or --since: the newest silence of the last 30 days.
Exit status: 0 a silence found and explained (an orderly shutdown is),
1 found but no hardware clue, 2 usage, connection or query error, or no vigil
heartbeat for HOST, 3 heartbeats but no silence in the period.";

#[derive(Debug, Args)]
pub struct PostmortemArgs {
    /// InfluxDB base URL (http:// or https://), e.g. http://influx:8086
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Database (InfluxDB 2.x: the database of a DBRP mapping to the bucket)
    #[arg(long, value_name = "NAME")]
    pub db: String,
    /// The node, as Telegraf's `host` tag names it
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// User (InfluxDB 1.x; with 2.x any name and the token as --password)
    #[arg(
        long,
        value_name = "U",
        requires = "password",
        conflicts_with = "token"
    )]
    pub user: Option<String>,
    /// Password (or set INFLUX_PASSWORD)
    #[arg(
        long,
        value_name = "P",
        env = "INFLUX_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub password: Option<String>,
    /// InfluxDB 2.x API token, sent as `Authorization: Token T` (or set INFLUX_TOKEN)
    #[arg(long, value_name = "T", env = "INFLUX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The silence around TIME (RFC 3339, a date, or an age such as 12h)
    #[arg(long, value_name = "TIME", conflicts_with = "since")]
    pub at: Option<String>,
    /// Every silence from TIME to now
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: PostmortemFormat,
    /// Trust this CA (PEM) for https, e.g. a self-signed InfluxDB
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Archive to write (.tar.gz)
    #[arg(long, value_name = "FILE", default_value = "vigil-capture.tar.gz")]
    pub out: PathBuf,

    /// Capture a root other than this machine (a mounted image, a chroot)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    /// For a person: findings, what was seen, why it matters, the fix (80 columns)
    Text,
    /// For tools: score, findings and the facts behind them
    Json,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Examine a captured machine under DIR (or a `vigil capture` archive) instead of this one
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: DoctorFormat,

    /// Judge ages against this Unix time in nanoseconds (reproducible output)
    #[arg(long, value_name = "NS")]
    pub fake_time: Option<i64>,

    /// Exit 1 when the readiness score is below N (for scripts); 0 otherwise; 2 for a usage error or an unusable --root
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub fail_under: Option<u32>,
}

impl Cli {
    pub fn selection(&self) -> Selection {
        if self.collectors.is_empty() {
            Selection::all()
        } else {
            Selection(self.collectors.iter().copied().collect())
        }
    }
}

/// A device filter value: a lower-case prefix, `exclude` when written `!prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub prefix: String,
    pub exclude: bool,
}

/// `!` in front excludes; the rest, lower-cased, must be hex digits (and,
/// for addresses, `:` and `.`).
fn parse_pattern(s: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<Pattern, String> {
    let s = s.trim();
    let (exclude, p) = match s.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, s),
    };
    let prefix = p.to_ascii_lowercase();
    if prefix.is_empty() || !ok(&prefix) {
        return Err(format!("invalid {what} {s:?}"));
    }
    Ok(Pattern { prefix, exclude })
}

fn parse_address(s: &str) -> Result<Pattern, String> {
    let mut p = parse_pattern(s, "address", |p| {
        p.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    })?;
    // `01:00.0` is in domain 0000, as lspci writes it.
    if p.prefix.matches(':').count() == 1 {
        p.prefix = format!("0000:{}", p.prefix);
    }
    Ok(p)
}

fn parse_class(s: &str) -> Result<Pattern, String> {
    parse_pattern(s, "class (hex, up to 6 digits)", |p| {
        p.len() <= 6 && p.chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn parse_vendor(s: &str) -> Result<Pattern, String> {
    parse_pattern(s, "vendor ID (4 hex digits)", |p| {
        p.len() == 4 && p.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// A duration, or 0 for "every collection".
fn parse_refresh(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches('s') == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// Parses a collector name (surrounding spaces allowed) and offers every name
/// of `Collector::ALL` to clap, so help, man page and completions list them.
#[derive(Debug, Clone, Copy)]
struct CollectorParser;

impl TypedValueParser for CollectorParser {
    type Value = Collector;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Collector, clap::Error> {
        let s = value.to_string_lossy();
        Collector::from_name(s.trim()).ok_or_else(|| {
            let all: Vec<&str> = Collector::ALL.iter().map(|c| c.name()).collect();
            let arg = arg.map_or_else(|| "--collectors".to_string(), ToString::to_string);
            let msg = format!(
                "unknown collector {s:?} for '{arg}'; known: {}\n",
                all.join(", ")
            );
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, msg).with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Collector::ALL
                .into_iter()
                .map(|c| PossibleValue::new(c.name()).help(c.help())),
        ))
    }
}

/// `10s`, `500ms`, `1m`, `2h`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range (1ms..24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_refresh("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn device_patterns() {
        let a = parse_address("01:00.0").expect("address");
        assert_eq!((a.prefix.as_str(), a.exclude), ("0000:01:00.0", false));
        let c = parse_class("!06").expect("class");
        assert_eq!((c.prefix.as_str(), c.exclude), ("06", true));
        assert!(parse_class("0x0300").is_err());
        assert!(parse_vendor("10DE").is_ok_and(|v| v.prefix == "10de"));
        assert!(parse_vendor("10d").is_err());
    }

    #[test]
    fn help_lists_every_collector_and_the_metrics_reference() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for c in Collector::ALL {
            let line = format!("- {}:", c.name());
            assert!(help.contains(&line), "--help lacks collector {}", c.name());
        }
        assert!(help.contains("/usr/share/doc/vigil/metrics.md"));
    }

    #[test]
    fn collector_names_are_trimmed_and_unknown_ones_named() {
        let cli = Cli::try_parse_from(["vigil", "--collectors", "pcie_link, kernel_event"]);
        let cli = cli.expect("known collectors parse");
        assert_eq!(
            cli.collectors,
            [Collector::PcieLink, Collector::KernelEvent]
        );
        let err = Cli::try_parse_from(["vigil", "--collectors", "nope"]).expect_err("unknown");
        assert!(err.to_string().contains("unknown collector \"nope\""));
    }
}
