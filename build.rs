//! pci.ids names as three relocation-free tables in OUT_DIR, read by
//! `plugin/src/pciname.rs` with `include_bytes!`.
//!
//! Why: the pci-ids crate holds its database as `&'static str`s in static
//! arrays, which in a position-independent executable are 45,000 relocations
//! the loader applies at every start, touching a megabyte of pages: about
//! 1 ms and 350 page faults per `vigil --once`, more than a whole collection
//! on a small host spends on its own work. Offsets into one blob need none.

use std::io::Write;

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
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
    println!("cargo:rerun-if-changed=build.rs");
}
