//! Vendor and device names from pci.ids, looked up in the tables build.rs
//! makes: binary search over fixed-size little-endian records, names sliced
//! from one blob. Nothing to relocate at start, and only the pages a lookup
//! touches are ever read.

static VENDORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pci_vendors.bin"));
static DEVICES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pci_devices.bin"));
static NAMES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pci_names.bin"));

const VENDOR_LEN: usize = 20;
const DEVICE_LEN: usize = 12;

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> usize {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, |a| u32::from_le_bytes(a) as usize)
}

fn name(rec: &[u8], at: usize) -> Option<&'static str> {
    let (off, len) = (u32_at(rec, at), u32_at(rec, at + 4));
    std::str::from_utf8(NAMES.get(off..off + len)?).ok()
}

/// Index of the record whose first u16 is `id`, among `n` records of `size` bytes.
fn find(table: &[u8], size: usize, first: usize, n: usize, id: u16) -> Option<usize> {
    let (mut lo, mut hi) = (first, first + n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match u16_at(table, mid * size).cmp(&id) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

fn vendor_record(vid: u16) -> Option<&'static [u8]> {
    let i = find(VENDORS, VENDOR_LEN, 0, VENDORS.len() / VENDOR_LEN, vid)?;
    VENDORS.get(i * VENDOR_LEN..(i + 1) * VENDOR_LEN)
}

pub fn vendor(vid: u16) -> Option<&'static str> {
    name(vendor_record(vid)?, 4)
}

pub fn device(vid: u16, did: u16) -> Option<&'static str> {
    let v = vendor_record(vid)?;
    let i = find(DEVICES, DEVICE_LEN, u32_at(v, 12), u32_at(v, 16), did)?;
    name(DEVICES.get(i * DEVICE_LEN..(i + 1) * DEVICE_LEN)?, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_ids::FromId;

    /// Every vendor and device of the crate's database, and some that are not there.
    #[test]
    fn tables_hold_the_crate_database() {
        let mut n = 0;
        for v in pci_ids::Vendors::iter() {
            assert_eq!(vendor(v.id()), Some(v.name()), "vendor {:04x}", v.id());
            for d in v.devices() {
                let want = pci_ids::Device::from_vid_pid(v.id(), d.id()).map(|d| d.name());
                assert_eq!(
                    device(v.id(), d.id()),
                    want,
                    "{:04x}:{:04x}",
                    v.id(),
                    d.id()
                );
                n += 1;
            }
        }
        assert!(n > 10_000, "only {n} devices");
        for vid in [0x0000u16, 0xffff, 0x0001] {
            assert_eq!(vendor(vid), pci_ids::Vendor::from_id(vid).map(|v| v.name()));
        }
        assert_eq!(device(0x10de, 0xffff), None);
        assert_eq!(device(0x10de, 0x1b80), Some("GP104 [GeForce GTX 1080]"));
    }
}
