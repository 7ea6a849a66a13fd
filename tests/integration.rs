//! End-to-end tests of the `vigil` binary against fixture roots.
//! One integration binary with modules (ripgrep's layout).

#[path = "it/util.rs"]
mod util;

#[path = "it/goldenfile.rs"]
mod goldenfile;

#[path = "it/golden.rs"]
mod golden;

#[path = "it/oracles.rs"]
mod oracles;

#[path = "it/execd.rs"]
mod execd;

#[path = "it/stopmark.rs"]
mod stopmark;

#[path = "it/garbage.rs"]
mod garbage;

#[path = "it/live.rs"]
mod live;

#[path = "it/lspci.rs"]
mod lspci;

#[path = "it/scenarios.rs"]
mod scenarios;

#[path = "it/vfio.rs"]
mod vfio;

#[path = "it/forensics.rs"]
mod forensics;

#[path = "it/kmsg.rs"]
mod kmsg;

#[path = "it/capture.rs"]
mod capture;

#[path = "it/budget.rs"]
mod budget;

#[path = "it/hostile.rs"]
mod hostile;

#[path = "it/warm.rs"]
mod warm;
