//! vigil: PCIe health, passthrough and crash-forensics readiness for Telegraf.

mod cli;
mod convert;
mod execd;
mod json;
mod lineproto;
mod log;
mod metric;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use vigil_collector::{Clock, Root};

use crate::cli::{Cli, Format};
use crate::execd::Flow;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = match &cli.root {
        Some(dir) => {
            if !dir.is_dir() {
                log::error(&format!("--root {}: not a directory", dir.display()));
                return ExitCode::from(2);
            }
            Root::new(dir)
        }
        None => Root::host(),
    };
    let sel = cli.selection();
    let clock = match cli.fake_time {
        Some(ns) => Clock::Fixed { unix_ns: ns },
        None => Clock::System,
    };
    let mut names = convert::Names::new(!cli.no_names);
    let mut limiter = log::Limiter::default();
    let mut batch = || -> Flow {
        let snap = vigil_collector::collect(&root, &sel, clock);
        limiter.warn_batch(snap.diagnostics.iter().map(|d| d.message.as_str()));
        let metrics = convert::Converter {
            sel: &sel,
            names: &mut names,
            version: env!("CARGO_PKG_VERSION"),
        }
        .convert(&snap);
        let text = match cli.format {
            Format::Influx => lineproto::write(&metrics),
            Format::Json => json::write(&metrics),
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Flow::Continue,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Flow::Stop,
            Err(e) => {
                log::error(&format!("writing metrics: {e}"));
                Flow::Stop
            }
        }
    };
    if cli.once {
        batch();
        return ExitCode::SUCCESS;
    }
    if let Some(iv) = cli.interval {
        log::info(&format!("collecting every {iv:?}"));
    }
    match execd::run(cli.interval, batch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&format!("cannot install signal handlers: {e}"));
            ExitCode::from(1)
        }
    }
}
