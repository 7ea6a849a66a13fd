//! Decoding a PCI config space (`/sys/bus/pci/devices/<bdf>/config`):
//! what the hardware really does, as opposed to what the kernel caches in sysfs.
//!
//! Pure: `&[u8]` in, [`ConfigSpace`] out. The input may be anything a file can
//! hold: 64 bytes (the unprivileged view), 256, 4096, truncated, all-ones (device
//! off the bus), or garbage. Every pointer is bounds-checked, every list walk is
//! loop-guarded, and what cannot be decoded is left `None` with a note in
//! `anomalies` (kernel-abi.md §4).

use serde::Serialize;

/// Unprivileged readers see only the standard header.
pub const HEADER_LEN: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigSpace {
    /// Bytes available to decode (64 unprivileged, 256/4096 with CAP_SYS_ADMIN).
    pub len: usize,
    pub vendor_id: u16,
    pub device_id: u16,
    /// False when the vendor ID reads back `ffff`: the device is not answering.
    pub reachable: bool,
    pub header_type: u8,
    pub status: u16,
    pub express: Option<Express>,
    pub aer: Option<AerRegs>,
    pub dpc: Option<DpcRegs>,
    pub l1ss: Option<L1ss>,
    /// What the walk refused to follow (loops, out-of-range pointers...).
    pub anomalies: Vec<String>,
}

impl ConfigSpace {
    /// More than the standard header: capabilities are visible.
    pub fn privileged(&self) -> bool {
        self.len > HEADER_LEN
    }

    /// A readable space whose IDs are not the device's own (`vendor` and
    /// `device` as sysfs caches them): a corrupted capture, or a different
    /// device now. Such a space says nothing about the device.
    pub fn ids_disagree(&self, vendor: Option<u16>, device: Option<u16>) -> bool {
        self.reachable
            && (vendor.is_some_and(|v| v != self.vendor_id)
                || device.is_some_and(|v| v != self.device_id))
    }
}

/// PCI Express device/port type (PCIe cap flags bits 7:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortType {
    Endpoint,
    LegacyEndpoint,
    RootPort,
    UpstreamPort,
    DownstreamPort,
    PcieToPciBridge,
    PciToPcieBridge,
    RootComplexIntegratedEndpoint,
    RootComplexEventCollector,
    Other(u8),
}

impl PortType {
    pub fn from_bits(v: u8) -> PortType {
        match v {
            0 => PortType::Endpoint,
            1 => PortType::LegacyEndpoint,
            4 => PortType::RootPort,
            5 => PortType::UpstreamPort,
            6 => PortType::DownstreamPort,
            7 => PortType::PcieToPciBridge,
            8 => PortType::PciToPcieBridge,
            9 => PortType::RootComplexIntegratedEndpoint,
            10 => PortType::RootComplexEventCollector,
            n => PortType::Other(n),
        }
    }
    /// Ports whose link partner is the device below them.
    pub fn is_downstream_facing(self) -> bool {
        matches!(self, PortType::RootPort | PortType::DownstreamPort)
    }
    /// Types with a link of their own (RCiEP and RCEC have none).
    pub fn has_link(self) -> bool {
        !matches!(
            self,
            PortType::RootComplexIntegratedEndpoint | PortType::RootComplexEventCollector
        )
    }
}

/// PCI Express capability registers (kernel-abi.md §4.6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Express {
    pub offset: u16,
    pub version: u8,
    pub port_type: PortType,
    pub devsta: u16,
    pub lnkcap: u32,
    pub lnkctl: u16,
    pub lnksta: u16,
    /// Present on capability version 2 when the space reaches it.
    pub lnkcap2: Option<u32>,
    pub lnkctl2: Option<u16>,
}

/// GT/s for a speed code (LNKSTA.CLS, LNKCAP.SLS, LNKCTL2 target).
pub fn speed_gts(code: u32) -> Option<f64> {
    match code {
        1 => Some(2.5),
        2 => Some(5.0),
        3 => Some(8.0),
        4 => Some(16.0),
        5 => Some(32.0),
        6 => Some(64.0),
        _ => None,
    }
}

impl Express {
    pub fn devsta_corr_err(&self) -> bool {
        self.devsta & 0x1 != 0
    }
    pub fn devsta_nonfatal_err(&self) -> bool {
        self.devsta & 0x2 != 0
    }
    pub fn devsta_fatal_err(&self) -> bool {
        self.devsta & 0x4 != 0
    }
    pub fn devsta_unsupp_req(&self) -> bool {
        self.devsta & 0x8 != 0
    }
    /// Highest bit of LNKCAP2's supported-speeds vector, else LNKCAP.SLS (as the kernel does).
    pub fn max_speed_gts(&self) -> Option<f64> {
        if let Some(cap2) = self.lnkcap2 {
            let vec = (cap2 >> 1) & 0x7f;
            if vec != 0 {
                let top = 31 - vec.leading_zeros();
                return speed_gts(top + 1);
            }
        }
        speed_gts(self.lnkcap & 0xf)
    }
    pub fn max_width(&self) -> u8 {
        ((self.lnkcap >> 4) & 0x3f) as u8
    }
    pub fn lnkcap_l0s(&self) -> bool {
        self.lnkcap & (1 << 10) != 0
    }
    pub fn lnkcap_l1(&self) -> bool {
        self.lnkcap & (1 << 11) != 0
    }
    pub fn lnkcap_clkpm(&self) -> bool {
        self.lnkcap & (1 << 18) != 0
    }
    /// Data Link Layer Link Active reporting capable: DLLLA means something only then.
    pub fn dll_active_reporting(&self) -> bool {
        self.lnkcap & (1 << 20) != 0
    }
    pub fn lnkctl_l0s(&self) -> bool {
        self.lnkctl & 0x1 != 0
    }
    pub fn lnkctl_l1(&self) -> bool {
        self.lnkctl & 0x2 != 0
    }
    pub fn lnkctl_clkpm(&self) -> bool {
        self.lnkctl & (1 << 8) != 0
    }
    pub fn speed_gts(&self) -> Option<f64> {
        speed_gts(u32::from(self.lnksta & 0xf))
    }
    pub fn width(&self) -> u8 {
        ((self.lnksta >> 4) & 0x3f) as u8
    }
    pub fn link_training(&self) -> bool {
        self.lnksta & (1 << 11) != 0
    }
    pub fn dll_link_active(&self) -> bool {
        self.lnksta & (1 << 13) != 0
    }
    pub fn bw_mgmt_status(&self) -> bool {
        self.lnksta & (1 << 14) != 0
    }
    pub fn autonomous_bw_status(&self) -> bool {
        self.lnksta & (1 << 15) != 0
    }
    pub fn target_speed_gts(&self) -> Option<f64> {
        self.lnkctl2.and_then(|c| speed_gts(u32::from(c & 0xf)))
    }
}

/// AER extended capability registers (kernel-abi.md §4.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AerRegs {
    pub offset: u16,
    pub uncor_status: u32,
    pub uncor_mask: u32,
    pub uncor_severity: u32,
    pub cor_status: u32,
    pub cor_mask: u32,
    /// Root ports and RCECs only.
    pub root_status: Option<u32>,
}

/// DPC extended capability (kernel-abi.md §4.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpcRegs {
    pub offset: u16,
    pub control: u16,
    pub status: u16,
}

impl DpcRegs {
    /// The port has contained its link (link disabled while set).
    pub fn triggered(&self) -> bool {
        self.status & 0x1 != 0
    }
    pub fn trigger_reason(&self) -> u16 {
        (self.status >> 1) & 0x3
    }
    pub fn trigger_enabled(&self) -> bool {
        self.control & 0x3 != 0
    }
}

/// L1 PM Substates: capability and control 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct L1ss {
    pub offset: u16,
    pub cap: u32,
    pub ctl1: u32,
}

/// L1SS Capabilities and Control 1 share their low bits (kernel-abi.md §4.8):
/// b0 PCI-PM L1.2, b1 PCI-PM L1.1, b2 ASPM L1.2, b3 ASPM L1.1.
impl L1ss {
    pub fn cap_pcipm_l1_2(&self) -> bool {
        self.cap & 1 != 0
    }
    pub fn cap_pcipm_l1_1(&self) -> bool {
        self.cap & 2 != 0
    }
    pub fn cap_aspm_l1_2(&self) -> bool {
        self.cap & 4 != 0
    }
    pub fn cap_aspm_l1_1(&self) -> bool {
        self.cap & 8 != 0
    }
    pub fn ctl_pcipm_l1_2(&self) -> bool {
        self.ctl1 & 1 != 0
    }
    pub fn ctl_pcipm_l1_1(&self) -> bool {
        self.ctl1 & 2 != 0
    }
    pub fn ctl_aspm_l1_2(&self) -> bool {
        self.ctl1 & 4 != 0
    }
    pub fn ctl_aspm_l1_1(&self) -> bool {
        self.ctl1 & 8 != 0
    }
}

fn rd8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}
fn rd16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(off)?, *b.get(off + 1)?]))
}
fn rd32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(off)?,
        *b.get(off + 1)?,
        *b.get(off + 2)?,
        *b.get(off + 3)?,
    ]))
}

/// Standard capability IDs vigil decodes.
const CAP_EXP: u8 = 0x10;
/// Extended capability IDs vigil decodes.
const ECAP_AER: u16 = 0x0001;
const ECAP_DPC: u16 = 0x001d;
const ECAP_L1SS: u16 = 0x001e;

/// Bytes of each extended capability the decoder looks at, header included.
fn ecap_body(id: u16) -> usize {
    match id {
        ECAP_AER => 0x38,
        ECAP_DPC => 0x0c,
        ECAP_L1SS => 0x10,
        _ => 4,
    }
}

/// Read what [`decode`] looks at and nothing more: the 256-byte header with
/// the capability list, then the extended capability chain header by
/// header, with the bodies of the capabilities decoded. Every other byte is
/// left zero. A config read costs a bus transaction per dword (a trap to the
/// hypervisor in a VM: 20 us a dword measured on one), so a whole 4096-byte
/// read costs about twenty times what decoding needs.
///
/// `size` is the file's size (sysfs gives the device's config space size,
/// 256 or 4096); `read_at(offset, buf)` fills `buf` from `offset` and returns
/// how many bytes it got: fewer means the file ends there (an unprivileged
/// reader gets 64). The result has the length a whole read would have had
/// (4097 for a file longer than a config space can be), so [`decode`] sees
/// the same bytes wherever it looks and reports the same anomalies.
pub fn read_sparse<E>(
    size: u64,
    read_at: impl FnMut(usize, &mut [u8]) -> Result<usize, E>,
) -> Result<Vec<u8>, E> {
    let mut buf = Vec::new();
    read_sparse_into(size, &mut buf, None, None, read_at)?;
    Ok(buf)
}

/// The extended capability headers a sparse read walked, `(offset, dword)`
/// in the order read, the last one included (the one that ended the walk).
/// A device's capability chain is wired into it: a long-running process
/// keeps it ([`super::memory::KnownIds`]), and later reads of the same
/// device take the headers past the first read from it, reading only the
/// bodies decoded. One config dword is a bus transaction (a trap in a VM).
pub type EcapHeaders = Vec<(u16, u32)>;

/// [`read_sparse`] into `buf` (cleared first), so a caller reading many
/// devices reuses one buffer instead of allocating 4 KiB for each.
/// `kept`: the headers an earlier read of this device walked, trusted only
/// while every header this read sees afresh agrees with them. `walked`:
/// where to note the headers this read walks, to keep.
pub fn read_sparse_into<E>(
    size: u64,
    buf: &mut Vec<u8>,
    kept: Option<&[(u16, u32)]>,
    walked: Option<&mut EcapHeaders>,
    mut read_at: impl FnMut(usize, &mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let mut end = usize::try_from(size).unwrap_or(usize::MAX).min(4097);
    buf.clear();
    buf.resize(end, 0);
    // Reads [from, to) as far as the file goes, less [0, covered) that the
    // first read already holds (AER's body, headers lying in it). A read is
    // not retried: a short one marks the end of the file.
    let mut fill = |buf: &mut Vec<u8>, end: &mut usize, covered: usize, from: usize, to: usize| {
        let to = to.min(*end);
        let mut at = from.max(covered);
        while at < to {
            let want = to - at;
            let got = read_at(at, &mut buf[at..to])?;
            at += got.min(want);
            if got < want {
                // sysfs (and a regular file) returns less only where the file
                // ends: 64 bytes to an unprivileged reader, 256 for a PCI device.
                *end = at;
                break;
            }
        }
        Ok(())
    };
    // The header, and the first extended capability (often AER) with its
    // body, in one read: a 256-byte space (or an unprivileged 64-byte view)
    // ends it early.
    fill(buf, &mut end, 0, 0, 0x100 + ecap_body(ECAP_AER))?;
    let covered = end.min(0x100 + ecap_body(ECAP_AER));
    if end <= 256 {
        buf.truncate(end);
        return Ok(());
    }
    // Every kept header the first read holds afresh must agree, before any
    // is taken: one that does not means another chain.
    let agrees = |k: &&[(u16, u32)]| {
        k.iter().all(|&(o, v)| {
            let o = usize::from(o);
            o + 4 > covered || rd32(buf, o) == Some(v)
        })
    };
    let kept = kept.filter(agrees);
    let mut walked = walked;
    let mut off = 0x100usize;
    let mut seen = [false; 1024];
    for _ in 0..480 {
        let Some(hdr) = rd32(&buf[..end], off) else {
            break;
        };
        if let Some(w) = walked.as_deref_mut() {
            w.push((off as u16, hdr));
        }
        if hdr == 0 || hdr == 0xffff_ffff || seen[off / 4] {
            break;
        }
        seen[off / 4] = true;
        let id = (hdr & 0xffff) as u16;
        fill(buf, &mut end, covered, off + 4, off + ecap_body(id))?;
        let next = (hdr >> 20) as usize & 0xffc;
        if next < 0x100 || next + 4 > end {
            break;
        }
        let from_kept = kept.and_then(|k| k.iter().find(|(o, _)| usize::from(*o) == next));
        match from_kept {
            Some((_, v)) if next >= covered => {
                buf[next..next + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => fill(buf, &mut end, covered, next, next + 4)?,
        }
        off = next;
    }
    buf.truncate(end);
    Ok(())
}

/// Decode whatever `bytes` holds. Never panics (property-tested).
pub fn decode(bytes: &[u8]) -> ConfigSpace {
    // Only the first 4096 bytes can be config space; a longer file is garbage past that.
    let b = &bytes[..bytes.len().min(4096)];
    let mut cs = ConfigSpace {
        len: b.len(),
        ..ConfigSpace::default()
    };
    let (Some(vendor), Some(device)) = (rd16(b, 0), rd16(b, 2)) else {
        cs.anomalies.push(format!("only {} bytes", b.len()));
        return cs;
    };
    cs.vendor_id = vendor;
    cs.device_id = device;
    cs.reachable = vendor != 0xffff;
    if !cs.reachable {
        // All-ones: every pointer would read 0xfc and loop. Stop here.
        return cs;
    }
    cs.status = rd16(b, 6).unwrap_or(0);
    cs.header_type = rd8(b, 0x0e).unwrap_or(0);
    if b.len() <= HEADER_LEN {
        return cs;
    }
    if cs.status & 0x10 != 0 {
        walk_caps(b, &mut cs);
    }
    if b.len() > 256 {
        walk_ext_caps(b, &mut cs);
    }
    cs
}

fn walk_caps(b: &[u8], cs: &mut ConfigSpace) {
    let Some(mut ptr) = rd8(b, 0x34).map(|p| usize::from(p & 0xfc)) else {
        return;
    };
    let mut seen = [false; 256];
    // 48 = the most capabilities that fit in 192 bytes at 4 bytes each.
    for _ in 0..48 {
        if ptr == 0 {
            return;
        }
        if ptr < HEADER_LEN || ptr + 2 > b.len().min(256) {
            cs.anomalies
                .push(format!("capability pointer {ptr:#x} out of range"));
            return;
        }
        if seen[ptr] {
            cs.anomalies.push(format!("capability loop at {ptr:#x}"));
            return;
        }
        seen[ptr] = true;
        let (id, next) = (b[ptr], b[ptr + 1]);
        if id == CAP_EXP && cs.express.is_none() {
            cs.express = decode_express(b, ptr);
            if cs.express.is_none() {
                cs.anomalies
                    .push(format!("PCI Express capability at {ptr:#x} truncated"));
            }
        }
        ptr = usize::from(next & 0xfc);
    }
    cs.anomalies.push("capability list too long".into());
}

fn decode_express(b: &[u8], off: usize) -> Option<Express> {
    let flags = rd16(b, off + 2)?;
    let version = (flags & 0xf) as u8;
    let port_type = PortType::from_bits(((flags >> 4) & 0xf) as u8);
    let (lnkcap2, lnkctl2) = if version >= 2 {
        (rd32(b, off + 0x2c), rd16(b, off + 0x30))
    } else {
        (None, None)
    };
    Some(Express {
        offset: off as u16,
        version,
        port_type,
        devsta: rd16(b, off + 0x0a)?,
        lnkcap: rd32(b, off + 0x0c)?,
        lnkctl: rd16(b, off + 0x10)?,
        lnksta: rd16(b, off + 0x12)?,
        lnkcap2,
        lnkctl2,
    })
}

fn walk_ext_caps(b: &[u8], cs: &mut ConfigSpace) {
    let mut off = 0x100usize;
    let mut seen = [false; 1024];
    // (4096 - 256) / 8: the most extended capabilities that fit.
    for _ in 0..480 {
        let Some(hdr) = rd32(b, off) else {
            cs.anomalies
                .push(format!("extended capability at {off:#x} truncated"));
            return;
        };
        if hdr == 0 || hdr == 0xffff_ffff {
            return;
        }
        if seen[off / 4] {
            cs.anomalies
                .push(format!("extended capability loop at {off:#x}"));
            return;
        }
        seen[off / 4] = true;
        let id = (hdr & 0xffff) as u16;
        let next = (hdr >> 20) as usize & 0xffc;
        let at = off as u16;
        match id {
            ECAP_AER if cs.aer.is_none() => {
                let root = cs.express.as_ref().is_some_and(|e| {
                    matches!(
                        e.port_type,
                        PortType::RootPort | PortType::RootComplexEventCollector
                    )
                });
                cs.aer = (|| {
                    Some(AerRegs {
                        offset: at,
                        uncor_status: rd32(b, off + 0x04)?,
                        uncor_mask: rd32(b, off + 0x08)?,
                        uncor_severity: rd32(b, off + 0x0c)?,
                        cor_status: rd32(b, off + 0x10)?,
                        cor_mask: rd32(b, off + 0x14)?,
                        root_status: if root { rd32(b, off + 0x30) } else { None },
                    })
                })();
            }
            ECAP_DPC if cs.dpc.is_none() => {
                cs.dpc = (|| {
                    Some(DpcRegs {
                        offset: at,
                        control: rd16(b, off + 0x06)?,
                        status: rd16(b, off + 0x08)?,
                    })
                })();
            }
            ECAP_L1SS if cs.l1ss.is_none() => {
                cs.l1ss = (|| {
                    Some(L1ss {
                        offset: at,
                        cap: rd32(b, off + 0x04)?,
                        ctl1: rd32(b, off + 0x08)?,
                    })
                })();
            }
            _ => {}
        }
        if next == 0 {
            return;
        }
        if next < 0x100 || next + 4 > b.len() {
            cs.anomalies.push(format!(
                "extended capability pointer {next:#x} out of range"
            ));
            return;
        }
        off = next;
    }
    cs.anomalies
        .push("extended capability list too long".into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `read_sparse` over a file holding `file`, with the bytes it asked for.
    fn sparse(file: &[u8]) -> (Vec<u8>, usize) {
        let (got, asked) = sparse_with(file, None, None);
        (got, asked.iter().map(|(from, to)| to - from).sum())
    }

    /// `read_sparse_into` over a file holding `file`, with the ranges it
    /// asked for, in order.
    fn sparse_with(
        file: &[u8],
        kept: Option<&[(u16, u32)]>,
        walked: Option<&mut EcapHeaders>,
    ) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut asked = Vec::new();
        let mut got = Vec::new();
        let read = read_sparse_into(file.len() as u64, &mut got, kept, walked, |at, buf| {
            asked.push((at, at + buf.len()));
            let part = file.get(at..).unwrap_or_default();
            let n = part.len().min(buf.len());
            buf[..n].copy_from_slice(&part[..n]);
            Ok::<usize, ()>(n)
        });
        assert!(read.is_ok());
        (got, asked)
    }

    fn fixture_config(rel: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(rel);
        crate::read::read_bytes(&path, 8192).unwrap_or_default()
    }

    /// A GPU whose AER and L1 PM Substates capabilities lie past the first
    /// read (the chain: 0x100, 0x250, 0x258 L1SS, 0x128, 0x420 AER, 0x600, 0x900).
    fn far_chain() -> Vec<u8> {
        let b =
            fixture_config("gpu-d3cold/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/config");
        assert_eq!(b.len(), 4096);
        b
    }

    #[test]
    fn no_byte_is_asked_for_twice() {
        for file in [
            far_chain(),
            fixture_config("asus-p6t6-switch/sys/devices/pci0000:00/0000:00:07.0/config"),
            sample(),
        ] {
            let (got, mut asked) = sparse_with(&file, None, None);
            assert_eq!(decode(&got), decode(&file));
            asked.sort_unstable();
            for w in asked.windows(2) {
                assert!(w[0].1 <= w[1].0, "asked twice: {:x?}", w);
            }
        }
    }

    /// A second read of the same device with the headers the first walked:
    /// only the first range and the bodies decoded are asked for, and a
    /// status changed in a body past the first range still shows.
    #[test]
    fn kept_headers_leave_only_the_first_range_and_the_bodies_to_read() {
        let mut file = far_chain();
        let mut walked = EcapHeaders::new();
        let (first, cold) = sparse_with(&file, None, Some(&mut walked));
        let offsets: Vec<u16> = walked.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [0x100, 0x250, 0x258, 0x128, 0x420, 0x600, 0x900]);
        assert_eq!(decode(&first), decode(&file));
        // Uncorrectable status: Completion Timeout, in AER's body at 0x420.
        file[0x424] |= 0x40;
        let (warm, asked) = sparse_with(&file, Some(&walked), None);
        assert_eq!(decode(&warm), decode(&file));
        assert_ne!(decode(&warm), decode(&first), "the new status shows");
        assert_eq!(asked, [(0, 0x138), (0x25c, 0x268), (0x424, 0x458)]);
        assert!(asked.len() < cold.len(), "{cold:x?}");
    }

    /// The kept chain is trusted only while every header read afresh (in
    /// the first range) agrees with it: one that does not means another
    /// chain, walked afresh, past the first range too.
    #[test]
    fn a_fresh_header_unlike_the_kept_one_drops_the_kept_chain() {
        let old = far_chain();
        let mut walked = EcapHeaders::new();
        sparse_with(&old, None, Some(&mut walked));
        let mut new = old.clone();
        // 0x128 (read afresh) now skips AER: next 0x600 instead of 0x420.
        let hdr = u32::from_le_bytes([new[0x128], new[0x129], new[0x12a], new[0x12b]]);
        let hdr = (hdr & 0x000f_ffff) | (0x600 << 20);
        new[0x128..0x12c].copy_from_slice(&hdr.to_le_bytes());
        // And 0x250, past it, skips L1SS: kept, it would still lead there.
        let hdr = u32::from_le_bytes([new[0x250], new[0x251], new[0x252], new[0x253]]);
        let hdr = (hdr & 0x000f_ffff) | (0x128 << 20);
        new[0x250..0x254].copy_from_slice(&hdr.to_le_bytes());
        let (got, _) = sparse_with(&new, Some(&walked), None);
        assert_eq!(decode(&got), decode(&new));
        assert!(decode(&got).aer.is_none());
    }

    /// On real captures (pciutils' dumps, through the fixture tree), a
    /// privileged read asks for a fraction of the 4096 bytes.
    #[test]
    fn sparse_reads_ask_for_little_of_a_real_space() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/asus-p6t6-switch/sys/devices/pci0000:00");
        let mut seen = 0;
        for rel in [
            "0000:00:07.0/config",
            "0000:00:07.0/0000:06:00.0/config",
            "0000:00:03.0/config",
        ] {
            let file = crate::read::read_bytes(&root.join(rel), 8192).unwrap_or_default();
            assert_eq!(file.len(), 4096, "{rel}");
            let (got, asked) = sparse(&file);
            assert_eq!(decode(&got), decode(&file), "{rel}");
            assert!(asked < 600, "{rel}: asked for {asked} bytes");
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    /// A 4096-byte space with a PCIe cap at 0x40 and AER at 0x100.
    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..2].copy_from_slice(&0x10deu16.to_le_bytes());
        b[2..4].copy_from_slice(&0x1c82u16.to_le_bytes());
        b[6] = 0x10; // capabilities list
        b[0x34] = 0x40;
        b[0x40] = 0x10; // PCIe cap, next 0
        b[0x42..0x44].copy_from_slice(&0x0002u16.to_le_bytes()); // v2 endpoint
        b[0x4a..0x4c].copy_from_slice(&0x0009u16.to_le_bytes()); // CorrErr + UnsupReq
        b[0x4c..0x50].copy_from_slice(&(0x3u32 | (16 << 4) | (3 << 10)).to_le_bytes()); // 8GT x16 L0s L1
        b[0x50..0x52].copy_from_slice(&0x0102u16.to_le_bytes()); // L1 + clkpm
        b[0x52..0x54].copy_from_slice(&(0x1u16 | (8 << 4) | (1 << 13)).to_le_bytes()); // 2.5GT x8 DLLLA
        b[0x6c..0x70].copy_from_slice(&0x0000_000eu32.to_le_bytes()); // 2.5,5,8
        b[0x70..0x72].copy_from_slice(&0x0003u16.to_le_bytes()); // target 8
        b[0x100..0x104].copy_from_slice(&0x0001_0001u32.to_le_bytes()); // AER v1, next 0
        b[0x104..0x108].copy_from_slice(&(1u32 << 14 | 1 << 20).to_le_bytes());
        b[0x110..0x114].copy_from_slice(&1u32.to_le_bytes());
        b
    }

    #[test]
    fn decodes_link_and_error_registers() {
        let cs = decode(&sample());
        assert!(cs.reachable && cs.privileged());
        let e = cs.express.expect("pcie cap");
        assert_eq!(e.port_type, PortType::Endpoint);
        assert_eq!(e.max_speed_gts(), Some(8.0));
        assert_eq!(e.max_width(), 16);
        assert_eq!((e.speed_gts(), e.width()), (Some(2.5), 8));
        assert!(e.lnkctl_l1() && !e.lnkctl_l0s() && e.lnkctl_clkpm());
        assert!(e.lnkcap_l0s() && e.lnkcap_l1());
        assert!(e.dll_link_active() && !e.link_training());
        assert!(e.devsta_corr_err() && e.devsta_unsupp_req() && !e.devsta_fatal_err());
        assert_eq!(e.target_speed_gts(), Some(8.0));
        let aer = cs.aer.expect("aer");
        // CmpltTO and UnsupReq; RxErr.
        assert_eq!(aer.uncor_status, 1 << 14 | 1 << 20);
        assert_eq!(aer.cor_status, 1);
        assert_eq!(aer.root_status, None);
        assert!(cs.anomalies.is_empty());
    }

    #[test]
    fn unprivileged_view_has_no_capabilities() {
        let cs = decode(&sample()[..64]);
        assert!(cs.reachable && !cs.privileged());
        assert!(cs.express.is_none() && cs.aer.is_none());
    }

    #[test]
    fn all_ones_is_unreachable_and_not_walked() {
        let cs = decode(&[0xff; 4096]);
        assert!(!cs.reachable);
        assert!(cs.express.is_none() && cs.anomalies.is_empty());
    }

    #[test]
    fn loops_and_wild_pointers_are_refused() {
        let mut b = sample();
        b[0x41] = 0x40; // cap points at itself
        b[0x102..0x104].copy_from_slice(&0x1000u16.to_le_bytes()); // ext next -> 0x100 (loop)
        let cs = decode(&b);
        assert!(cs.express.is_some());
        assert!(
            cs.anomalies.iter().any(|a| a.contains("loop")),
            "{:?}",
            cs.anomalies
        );
        let mut b = sample();
        b[0x34] = 0xfc; // beyond a 256-byte window with 2 bytes needed: fine; make it 0x20
        b[0x34] = 0x20;
        let cs = decode(&b);
        assert!(cs.express.is_none());
        assert!(cs.anomalies.iter().any(|a| a.contains("out of range")));
    }

    #[test]
    fn lnkcap2_beats_lnkcap_for_max_speed() {
        let mut b = sample();
        b[0x6c..0x70].copy_from_slice(&0x0000_001eu32.to_le_bytes()); // up to 16 GT/s
        assert_eq!(
            decode(&b).express.and_then(|e| e.max_speed_gts()),
            Some(16.0)
        );
    }

    /// `space` with bytes set at `idx`, as a file `cut` bytes long (past
    /// 4096, garbage a config space cannot have).
    fn mutated(mut space: Vec<u8>, idx: &[(usize, u8)], cut: usize) -> Vec<u8> {
        space.resize(4200, 0xaa);
        for &(i, v) in idx {
            space[i] = v;
        }
        space.truncate(cut);
        space
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
            let cs = decode(&bytes);
            prop_assert!(cs.len <= 4096);
        }

        /// Reading only what is decoded decodes the same as reading it all,
        /// on garbage of any length and on mutated real spaces (extended
        /// chains with loops and wild pointers included).
        #[test]
        fn sparse_reads_decode_like_whole_reads(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
            prop_assert_eq!(decode(&sparse(&bytes).0), decode(&bytes));
        }

        #[test]
        fn sparse_reads_decode_like_whole_reads_on_real_spaces(idx in proptest::collection::vec((0usize..4096, any::<u8>()), 0..64), cut in 0usize..4200) {
            let b = mutated(sample(), &idx, cut);
            prop_assert_eq!(decode(&sparse(&b).0), decode(&b));
        }

        /// A read with the headers an earlier read of the same bytes walked
        /// decodes the same as a whole read.
        #[test]
        fn sparse_reads_with_their_kept_headers_decode_like_whole_reads(idx in proptest::collection::vec((0usize..4096, any::<u8>()), 0..64), cut in 0usize..4200) {
            let b = mutated(far_chain(), &idx, cut);
            let mut walked = EcapHeaders::new();
            sparse_with(&b, None, Some(&mut walked));
            prop_assert_eq!(decode(&sparse_with(&b, Some(&walked), None).0), decode(&b));
        }

        #[test]
        fn never_panics_on_mutated_real_space(idx in proptest::collection::vec((0usize..4096, any::<u8>()), 0..64), cut in 0usize..4097) {
            let mut b = sample();
            for (i, v) in idx { b[i] = v; }
            b.truncate(cut);
            let _ = decode(&b);
        }
    }
}
