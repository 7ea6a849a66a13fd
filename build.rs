//! Two build-time products:
//!
//! 1. pci.ids names as three relocation-free tables in OUT_DIR, read by
//!    `plugin/src/pciname.rs` with `include_bytes!`.
//! 2. The man pages (vigil(1), one per subcommand) and bash, zsh and fish
//!    completions, generated from the clap definitions in `plugin/src/cli.rs`
//!    (the same module the binary parses its arguments with, so they cannot
//!    drift), gzipped per Debian policy, into `target/<profile>/assets/`:
//!    cargo-deb can name only paths under its `target/release/` prefix, and
//!    OUT_DIR has a hash in its name.
//!
//! Why: the pci-ids crate holds its database as `&'static str`s in static
//! arrays, which in a position-independent executable are 45,000 relocations
//! the loader applies at every start, touching a megabyte of pages: about
//! 1 ms and 350 page faults per `vigil --once`, more than a whole collection
//! on a small host spends on its own work. Offsets into one blob need none.

use std::io::Write;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "plugin/src/cli.rs"]
mod cli;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    pci_tables(&out);
    // OUT_DIR is <target>/<profile>/build/vigil-<hash>/out.
    let profile_dir = out.ancestors().nth(3).expect("OUT_DIR depth");
    man_and_completions(&profile_dir.join("assets"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=plugin/src/cli.rs");
}

fn pci_tables(out: &Path) {
    let mut vendors: Vec<&'static pci_ids::Vendor> = pci_ids::Vendors::iter().collect();
    vendors.sort_by_key(|v| v.id());
    let (mut names, mut vtab, mut dtab) = (Vec::new(), Vec::new(), Vec::new());
    let name = |s: &str, names: &mut Vec<u8>| {
        let off = u32::try_from(names.len()).expect("names fit in u32");
        names.extend_from_slice(s.as_bytes());
        (off, u32::try_from(s.len()).expect("name fits in u32"))
    };
    let mut ndev: u32 = 0;
    for v in vendors {
        let (off, len) = name(v.name(), &mut names);
        let mut devices: Vec<&'static pci_ids::Device> = v.devices().collect();
        devices.sort_by_key(|d| d.id());
        devices.dedup_by_key(|d| d.id());
        // vendor: id u16, pad u16, name offset u32, name length u32, first device u32, devices u32
        vtab.extend_from_slice(&v.id().to_le_bytes());
        vtab.extend_from_slice(&[0, 0]);
        vtab.extend_from_slice(&off.to_le_bytes());
        vtab.extend_from_slice(&len.to_le_bytes());
        vtab.extend_from_slice(&ndev.to_le_bytes());
        let count = u32::try_from(devices.len()).expect("devices fit in u32");
        vtab.extend_from_slice(&count.to_le_bytes());
        for d in devices {
            let (off, len) = name(d.name(), &mut names);
            // device: id u16, pad u16, name offset u32, name length u32
            dtab.extend_from_slice(&d.id().to_le_bytes());
            dtab.extend_from_slice(&[0, 0]);
            dtab.extend_from_slice(&off.to_le_bytes());
            dtab.extend_from_slice(&len.to_le_bytes());
            ndev += 1;
        }
    }
    for (file, data) in [
        ("pci_vendors.bin", &vtab),
        ("pci_devices.bin", &dtab),
        ("pci_names.bin", &names),
    ] {
        let mut f = std::fs::File::create(out.join(file)).expect("create table");
        f.write_all(data).expect("write table");
    }
}

/// `assets/man/*.1.gz` and `assets/completions/{vigil.bash,_vigil,vigil.fish}`,
/// rewritten from scratch so a removed subcommand leaves no stale page.
fn man_and_completions(assets: &Path) {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let _ = std::fs::remove_dir_all(assets);
    let (man, completions) = (assets.join("man"), assets.join("completions"));
    std::fs::create_dir_all(&man).expect("create man dir");
    std::fs::create_dir_all(&completions).expect("create completions dir");
    // `vigil help` needs no page of its own.
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_man_pages(&cmd, &man);
    for (shell, file) in [
        (Shell::Bash, "vigil.bash"),
        (Shell::Zsh, "_vigil"),
        (Shell::Fish, "vigil.fish"),
    ] {
        let mut f = std::fs::File::create(completions.join(file)).expect("create completion");
        clap_complete::generate(shell, &mut cmd.clone(), "vigil", &mut f);
    }
}

/// vigil.1, vigil-doctor.1, ...: one page per command, as git and cargo do
/// (`Command::build` names subcommands `vigil-doctor`...).
fn write_man_pages(cmd: &clap::Command, dir: &Path) {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let mut roff = Vec::new();
    // Footer "vigil 0.1.0" on every page (subcommands have no version of their own).
    clap_mangen::Man::new(cmd.clone())
        .source(concat!("vigil ", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .expect("render man page");
    // gzip -9n: best compression, no name or time in the header (lintian).
    let f = std::fs::File::create(dir.join(format!("{name}.1.gz"))).expect("create man page");
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
    gz.write_all(&roff).expect("write man page");
    gz.finish().expect("finish man page");
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            write_man_pages(sub, dir);
        }
    }
}
