//! vigil: PCIe health, passthrough and crash-forensics readiness for
//! Telegraf. The binary's code as a library: `main.rs` only parses the flags
//! and calls [`app::run`]; benches and tests use the same modules.
//!
//! Data flows one way: `vigil_collector` (the `lib/` crate) reads and returns
//! typed snapshots; [`convert`] turns them into named points; [`lineproto`],
//! [`json`] and [`prometheus`] encode them; [`doctor`] and [`postmortem`]
//! render them for a person. Nothing here reads sysfs or procfs itself except
//! through the library ([`capture`] and [`postmortem`] read archives and logs
//! they were pointed at).

pub mod app;
pub mod capture;
pub mod cli;
pub mod convert;
pub mod doctor;
pub mod events;
pub mod execd;
pub mod json;
pub mod lineproto;
pub mod log;
pub mod metric;
pub mod names;
pub mod pciname;
pub mod postmortem;
pub mod prometheus;
pub mod sorted_map;
pub mod stopmark;
pub mod thin;
