//! The command line, run: which subcommand, the collection loop, and how
//! one batch is written.

use std::io::Write;
use std::process::ExitCode;

use vigil_collector::{Clock, Root, Snapshot};

use crate::cli::{self, Cli, Command, DoctorFormat, Format};
use crate::execd::Flow;
use crate::{
    capture, convert, doctor, events, execd, json, lineproto, log, postmortem, prometheus,
    stopmark, thin,
};

/// `--root` names a directory or a `vigil capture` archive (unpacked for the
/// life of the returned guard).
fn open_root(arg: Option<&std::path::Path>) -> Result<(Root, Option<capture::Unpacked>), ExitCode> {
    match arg {
        None => Ok((Root::host(), None)),
        Some(p) if p.is_dir() => Ok((Root::new(p), None)),
        Some(p) if p.is_file() => match capture::unpack(p) {
            Ok(u) => Ok((Root::new(&u.dir), Some(u))),
            Err(e) => {
                log::error(&format!(
                    "--root {}: not a vigil capture archive: {e}",
                    p.display()
                ));
                Err(ExitCode::from(2))
            }
        },
        Some(p) => {
            log::error(&format!(
                "--root {}: no such directory or archive",
                p.display()
            ));
            Err(ExitCode::from(2))
        }
    }
}

/// SIGTERM and SIGINT (and SIGHUP outside execd) end the process promptly whatever the main thread is
/// blocked in (a collection, an unpack, a write to a stdout nobody reads),
/// removing an unpacked archive first: `process::exit` runs no destructors.
/// In execd mode the loop gets a moment to end on its own after the batch
/// in flight (execd.rs); `--once` and `doctor` end at once.
fn install_terminator(grace: std::time::Duration) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // In execd mode SIGHUP asks for a batch (execd.rs); otherwise it ends us too.
    let mut which = vec![SIGTERM, SIGINT];
    if grace.is_zero() {
        which.push(SIGHUP);
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new(which) else {
        log::error("cannot install signal handlers");
        return;
    };
    let _ = std::thread::Builder::new()
        .name("vigil-terminator".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                std::thread::sleep(grace);
                capture::cleanup();
                let code = if grace.is_zero() { 128 + sig } else { 0 };
                std::process::exit(code);
            }
        });
}

/// How long execd's loop has to stop by itself after SIGTERM (finish the
/// batch in flight, write the stop mark) before the process exits anyway
/// (stdout blocked, a collection stuck): still within a second.
const EXECD_GRACE: std::time::Duration = std::time::Duration::from_millis(900);

fn run_doctor(args: &cli::DoctorArgs) -> ExitCode {
    let (root, _unpacked) = match open_root(args.root.as_deref()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let clock = match args.fake_time {
        Some(ns) => Clock::Fixed { unix_ns: ns },
        None => Clock::System,
    };
    let snap = vigil_collector::collect(&root, &vigil_collector::Selection::all(), clock);
    let setup = vigil_collector::forensics::setup::collect(&root);
    let text = match args.format {
        DoctorFormat::Text => {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            doctor::text(&snap, &setup, tty && std::env::var_os("NO_COLOR").is_none())
        }
        DoctorFormat::Json => doctor::json(&snap, &setup),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    let sc = vigil_collector::forensics::findings::score(&snap.findings);
    match args.fail_under {
        Some(n) if sc < n => ExitCode::from(doctor::EXIT_BELOW),
        _ => ExitCode::SUCCESS,
    }
}

/// What to write, from the flags (cli.rs stays free of `crate::` paths: build.rs includes it).
fn options(cli: &Cli) -> convert::Options {
    let patterns = |v: &[cli::Pattern]| -> Vec<convert::Pattern> {
        v.iter()
            .map(|p| convert::Pattern {
                prefix: p.prefix.clone(),
                exclude: p.exclude,
            })
            .collect()
    };
    convert::Options {
        aer_detail: match cli.aer_detail {
            cli::AerDetailArg::Totals => convert::AerDetail::Totals,
            cli::AerDetailArg::Nonzero => convert::AerDetail::Nonzero,
            cli::AerDetailArg::All => convert::AerDetail::All,
        },
        identity_everywhere: cli.device_tags == cli::DeviceTagsArg::All,
        filter: convert::DeviceFilter {
            address: patterns(&cli.addresses),
            class: patterns(&cli.classes),
            vendor: patterns(&cli.vendors),
        },
    }
}

/// Everything `vigil` does, from its parsed flags.
pub fn run(cli: Cli) -> ExitCode {
    let long_running = cli.command.is_none() && !cli.once;
    install_terminator(if long_running {
        EXECD_GRACE
    } else {
        std::time::Duration::ZERO
    });
    match &cli.command {
        Some(Command::Doctor(args)) => run_doctor(args),
        Some(Command::Postmortem(args)) => postmortem::run(args),
        Some(Command::Capture(args)) => run_capture(args),
        None => run_metrics(&cli),
    }
}

fn run_capture(args: &cli::CaptureArgs) -> ExitCode {
    let root = match &args.root {
        Some(d) => Root::new(d),
        None => Root::host(),
    };
    match capture::run(&root, &args.out) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error(&format!("capture to {}: {e}", args.out.display()));
            ExitCode::from(1)
        }
    }
}

/// Metrics: one batch (`--once`) or execd's loop.
fn run_metrics(cli: &Cli) -> ExitCode {
    let (root, _unpacked) = match open_root(cli.root.as_deref()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if cli.format == Format::Prometheus && !cli.once {
        log::error("--format prometheus writes one exposition: use it with --once (a timer runs it; see prometheus/)");
        return ExitCode::from(2);
    }
    let sel = cli.selection();
    let opts = options(cli);
    let mut out = Output {
        format: cli.format,
        thinner: match cli.once {
            true => thin::Thinner::single_batch(),
            false => thin::Thinner::new(cli.refresh),
        },
        stop_mark: stopmark::StopMark::default(),
    };
    let clock = match cli.fake_time {
        Some(ns) => Clock::Fixed { unix_ns: ns },
        None => Clock::System,
    };
    let mut names = convert::Names::new(!cli.no_names);
    let mut limiter = log::Limiter::default();
    // A long-running process follows /dev/kmsg in its own thread; --once reads the ring.
    let follower = (!cli.once && sel.has(vigil_collector::Collector::KernelEvent))
        .then(|| events::Follower::start(root.clone(), cli.format));
    let mut lib_sel = sel.clone();
    if follower.is_some() {
        lib_sel.0.remove(&vigil_collector::Collector::KernelEvent);
    }
    // A long-running process keeps what cannot change; --once reads it all.
    let session = vigil_collector::Session::new();
    if !cli.once {
        raise_descriptor_limit();
    }
    let mut batch = || -> Flow {
        let within = cli.deadline.unwrap_or(vigil_collector::DEADLINE);
        let mut snap = match cli.once {
            true => vigil_collector::collect_within(&root, &lib_sel, clock, within),
            false => session.collect_within(&root, &lib_sel, clock, within),
        };
        if let Some(f) = &follower {
            let (status, held) = f.take();
            snap.status
                .insert(vigil_collector::Collector::KernelEvent, status);
            snap.events_suppressed = held;
        }
        limiter.warn_batch(snap.diagnostics.iter().map(|d| d.message.as_str()));
        let mut conv = convert::Converter {
            sel: &sel,
            names: &mut names,
            version: env!("CARGO_PKG_VERSION"),
            opts: &opts,
        };
        out.write_batch(&snap, &mut conv)
    };
    if cli.once {
        batch();
        return ExitCode::SUCCESS;
    }
    if let Some(iv) = cli.interval {
        log::info(&format!("collecting every {iv:?}"));
    }
    match execd::run(cli.interval, batch) {
        Ok(()) => {
            out.stop_mark.write(&root, clock, cli.format);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error(&format!("cannot install signal handlers: {e}"));
            ExitCode::from(1)
        }
    }
}

/// Where batches go, and what the stream remembers between them.
struct Output {
    format: Format,
    thinner: thin::Thinner,
    stop_mark: stopmark::StopMark,
}

impl Output {
    /// One batch to stdout; [`Flow::Stop`] when nobody reads it any more.
    fn write_batch(&mut self, snap: &Snapshot, conv: &mut convert::Converter) -> Flow {
        // Stream the batch under stdout's lock: atomic with respect to event
        // lines, and never the whole batch in memory at once.
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let mut line = String::with_capacity(512);
        let mut failed: Option<std::io::Error> = None;
        // Prometheus groups a batch by family: gathered, then written whole.
        let mut whole = Vec::new();
        let format = self.format;
        let (thinner, stop_mark) = (&mut self.thinner, &mut self.stop_mark);
        thinner.begin(snap.time_unix_ns);
        conv.emit(snap, Vec::new(), &mut |m| {
            if format == Format::Prometheus {
                whole.push(m.to_static());
                return;
            }
            stop_mark.remember(m);
            thinner.apply(m, &mut |m, omit| {
                if failed.is_some() {
                    return;
                }
                line.clear();
                match format {
                    Format::Json => json::write_metric_except(&mut line, m, omit),
                    Format::Influx | Format::Prometheus => {
                        lineproto::write_metric_except(&mut line, m, omit)
                    }
                }
                if let Err(e) = w.write_all(line.as_bytes()) {
                    failed = Some(e);
                }
            });
        });
        thinner.end();
        if !whole.is_empty() && failed.is_none() {
            if let Err(e) = w.write_all(prometheus::write(&whole).as_bytes()) {
                failed = Some(e);
            }
        }
        let result = match failed {
            Some(e) => Err(e),
            None => w.flush(),
        };
        match result {
            Ok(()) => Flow::Continue,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Flow::Stop,
            Err(e) => {
                log::error(&format!("writing metrics: {e}"));
                Flow::Stop
            }
        }
    }
}

/// Most descriptors a long-running process asks for: one kept device
/// directory per PCI function (lib's `pci::memory`) with room to spare, on
/// the largest trees there are.
const DESCRIPTORS_WANTED: u64 = 16_384;

/// Raise the soft descriptor limit towards the hard one (systemd's default
/// soft limit is 1,024, its hard limit 524,288: a program that needs more
/// is meant to raise its own). vigil uses no `select()`, which is what the
/// low soft limit protects. Failing that, fewer directories are kept open.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    let want = lim
        .maximum
        .map_or(DESCRIPTORS_WANTED, |m| m.min(DESCRIPTORS_WANTED));
    if lim.current.is_some_and(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            },
        );
    }
}
