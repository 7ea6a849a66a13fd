//! vigil: PCIe health, passthrough and crash-forensics readiness for Telegraf.
//! The code lives in the `vigil` library (plugin/src/lib.rs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    vigil::app::run(vigil::cli::Cli::parse())
}
