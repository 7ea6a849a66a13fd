//! Large, valid fixture roots for benchmarks: `n` PCI functions as slots of a
//! root port with a GPU and its HDA function (3 functions per slot), each with a
//! captured 4096-byte config space (ASUS P6T6 pciutils dump), link, `link/`
//! (endpoints), power and AER attributes (root port totals on root ports), its IOMMU group, plus the platform files of the
//! passthrough fixture. Shared by `examples/genroot.rs` and `benches/collect.rs`.

use std::os::unix::fs::symlink;
use std::path::Path;

fn write(p: &Path, data: impl AsRef<[u8]>) -> std::io::Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, data)
}

/// (address, directory under the root, config space, driver, class, IOMMU group).
type Function<'a> = (String, String, &'a [u8], &'a str, &'a str, u32);

const AER_COR: &str = "RxErr 0\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 0\n";
const AER_UNCOR: &str = "Undefined 0\nDLP 0\nSDES 0\nTLP 0\nFCP 0\nCmpltTO 0\nCmpltAbrt 0\nUnxCmplt 0\nRxOF 0\nMalfTLP 0\nECRC 0\nUnsupReq 0\nACSViol 0\nUncorrIntErr 0\nBlockedTLP 0\nAtomicOpBlocked 0\nTLPBlockedErr 0\nPoisonTLPBlocked 0\n";

/// Build a root with `functions` PCI functions under `out` (which must not exist).
pub fn generate(repo: &Path, out: &Path, functions: usize) -> std::io::Result<()> {
    let asus = repo.join("fixtures/asus-p6t6-switch/sys/devices/pci0000:00");
    let rp_cfg = std::fs::read(asus.join("0000:00:07.0/config"))?;
    let gpu_cfg = std::fs::read(asus.join("0000:00:07.0/0000:06:00.0/config"))?;
    let hda_cfg = std::fs::read(asus.join("0000:00:07.0/0000:06:00.1/config"))?;
    let platform = repo.join("fixtures/passthrough-gpu-vfio");
    for dir in [
        "proc",
        "etc",
        "var",
        "sys/module",
        "sys/class",
        "sys/kernel/kexec_crash_loaded",
        "sys/kernel/kexec_crash_size",
    ] {
        let src = platform.join(dir);
        if src.exists() {
            copy_tree(&src, &out.join(dir))?;
        }
    }
    let slots = functions.div_ceil(3);
    let mut made = 0;
    for s in 0..slots {
        let (dom, bus) = (s / 200, (s % 200) + 1);
        let rp = format!("{dom:04x}:00:{:02x}.{}", (s % 200) / 8, s % 8);
        let rp_dir = format!("sys/devices/pci{dom:04x}:00/{rp}");
        let group = s * 2;
        let mut fns: Vec<Function> = vec![(
            rp.clone(),
            rp_dir.clone(),
            &rp_cfg,
            "pcieport",
            "0x060400",
            group as u32,
        )];
        for (f, cfg, drv, class) in [
            (0, &gpu_cfg, "vfio-pci", "0x030000"),
            (1, &hda_cfg, "vfio-pci", "0x040300"),
        ] {
            let a = format!("{dom:04x}:{bus:02x}:00.{f}");
            fns.push((
                a.clone(),
                format!("{rp_dir}/{a}"),
                cfg,
                drv,
                class,
                group as u32 + 1,
            ));
        }
        for f in fns {
            if made == functions {
                break;
            }
            made += 1;
            write_function(out, f)?;
        }
    }
    Ok(())
}

/// One PCI function's directory: attributes, config space, the driver and
/// IOMMU group links, and its entries under the bus and the group.
fn write_function(out: &Path, f: Function) -> std::io::Result<()> {
    let (addr, dir, cfg, drv, class, grp) = f;
    let d = out.join(&dir);
    let vendor = format!("0x{:04x}\n", u16::from_le_bytes([cfg[0], cfg[1]]));
    let device = format!("0x{:04x}\n", u16::from_le_bytes([cfg[2], cfg[3]]));
    for (k, v) in [
        ("vendor", vendor.as_str()),
        ("device", device.as_str()),
        ("class", &format!("{class}\n")),
        ("enable", "1\n"),
        ("d3cold_allowed", "1\n"),
        ("numa_node", "-1\n"),
        ("driver_override", "(null)\n"),
        ("power_state", "D0\n"),
        ("power/runtime_status", "active\n"),
        ("current_link_speed", "2.5 GT/s PCIe\n"),
        ("current_link_width", "16\n"),
        ("max_link_speed", "5.0 GT/s PCIe\n"),
        ("max_link_width", "16\n"),
        ("reset_method", "pm bus\n"),
        ("irq", "16\n"),
        ("revision", "0xa1\n"),
        ("subsystem_vendor", "0x1043\n"),
        ("subsystem_device", "0x8436\n"),
        ("resource", "0x00000000f4000000 0x00000000f4ffffff 0x0000000000040200\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n"),
        ("aer_dev_correctable", AER_COR),
        ("aer_dev_nonfatal", &format!("{AER_UNCOR}TOTAL_ERR_NONFATAL 0\n")),
        ("aer_dev_fatal", &format!("{AER_UNCOR}TOTAL_ERR_FATAL 0\n")),
    ] {
        write(&d.join(k), v)?;
    }
    write(&d.join("config"), cfg)?;
    if drv == "pcieport" {
        for k in [
            "aer_rootport_total_err_cor",
            "aer_rootport_total_err_fatal",
            "aer_rootport_total_err_nonfatal",
        ] {
            write(&d.join(k), "0\n")?;
        }
    } else {
        write(&d.join("link/l0s_aspm"), "0\n")?;
        write(&d.join("link/l1_aspm"), "1\n")?;
    }
    let depth = dir.matches('/').count() + 1;
    let up = "../".repeat(depth);
    symlink(format!("{up}bus/pci/drivers/{drv}"), d.join("driver"))?;
    symlink(
        format!("{up}kernel/iommu_groups/{grp}"),
        d.join("iommu_group"),
    )?;
    std::fs::create_dir_all(out.join(format!("sys/bus/pci/drivers/{drv}")))?;
    let g = out.join(format!("sys/kernel/iommu_groups/{grp}"));
    write(&g.join("type"), "DMA-FQ\n")?;
    std::fs::create_dir_all(g.join("devices"))?;
    symlink(
        format!("../../../../{}", &dir["sys/".len()..]),
        g.join("devices").join(&addr),
    )?;
    std::fs::create_dir_all(out.join("sys/bus/pci/devices"))?;
    symlink(
        format!("../../../{}", &dir["sys/".len()..]),
        out.join("sys/bus/pci/devices").join(&addr),
    )?;
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    if md.file_type().is_symlink() {
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        symlink(std::fs::read_link(src)?, dst)?;
    } else if md.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else {
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(src, dst)?;
    }
    Ok(())
}
