#!/usr/bin/env python3
"""Build vigil's fixture roots under fixtures/ from real captures in ../shared/data.

Run from the repository root: python3 tools/mkfixtures.py [SHARED_DIR]
Every tree is rebuilt from scratch; each gets a README.md saying what it models
and where its bytes came from. sysfs attributes of captured devices are derived
from their config space the way the kernel derives them (kernel-abi.md §1-§3).
"""
import os, shutil, struct, sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared"))
DATA = os.path.join(SHARED, "data")
SPLIT = os.path.join(DATA, "pciutils-tests", "split")
# VIGIL_FIXTURES_OUT lets CI rebuild into a scratch dir and diff against the committed trees.
OUT = os.environ.get("VIGIL_FIXTURES_OUT") or os.path.join(REPO, "fixtures")
BOOT_ID = "6f1b8d2e-3c4a-4e5f-9a7b-0c1d2e3f4a5b"
# The tests' --fake-time, in seconds: file ages in fixtures are relative to it.
NOW = 1700000000
DEBIAN_SYSCTL = {"nmi_watchdog": 1, "soft_watchdog": 1, "watchdog": 1, "watchdog_thresh": 10, "panic": 0,
                 "panic_on_oops": 0, "hardlockup_panic": 0, "softlockup_panic": 0, "hung_task_panic": 0,
                 "hung_task_timeout_secs": 120}

COR = ["RxErr", "BadTLP", "BadDLLP", "Rollover", "Timeout", "NonFatalErr", "CorrIntErr", "HeaderOF"]
COR_BITS = [0, 6, 7, 8, 12, 13, 14, 15]
# Linux 6.8 (Proxmox 8): PoisonTLPBlocked since 5.5, nothing past bit 26 yet.
UNCOR = ["Undefined", None, None, None, "DLP", "SDES", None, None, None, None, None, None,
         "TLP", "FCP", "CmpltTO", "CmpltAbrt", "UnxCmplt", "RxOF", "MalfTLP", "ECRC", "UnsupReq",
         "ACSViol", "UncorrIntErr", "BlockedTLP", "AtomicOpBlocked", "TLPBlockedErr", "PoisonTLPBlocked"]
SPEED = {1: "2.5 GT/s PCIe", 2: "5.0 GT/s PCIe", 3: "8.0 GT/s PCIe", 4: "16.0 GT/s PCIe", 5: "32.0 GT/s PCIe", 6: "64.0 GT/s PCIe"}


def split(name):
    with open(os.path.join(SPLIT, name + ".config.bin"), "rb") as f:
        return f.read()


def u16(b, o): return struct.unpack_from("<H", b, o)[0]
def u32(b, o): return struct.unpack_from("<I", b, o)[0]


def find_cap(b, cid):
    if len(b) < 64 or not (u16(b, 6) & 0x10):
        return None
    p, seen = b[0x34] & 0xFC, set()
    while p and p not in seen and p + 2 <= min(len(b), 256):
        seen.add(p)
        if b[p] == cid:
            return p
        p = b[p + 1] & 0xFC
    return None


def find_ecap(b, cid):
    off, seen = 0x100, set()
    while len(b) >= off + 4 and off not in seen:
        seen.add(off)
        h = u32(b, off)
        if h in (0, 0xFFFFFFFF):
            return None
        if h & 0xFFFF == cid:
            return off
        off = (h >> 20) & 0xFFC
        if off < 0x100:
            return None
    return None


def add_ecap(cfg, cid, body, at=0xE00):
    """Append an extended capability at `at` (must be free) to the end of the chain."""
    cfg = bytearray(cfg)
    assert len(cfg) == 4096 and not any(cfg[at:at + 4 + len(body)])
    off = 0x100
    while True:
        h = u32(cfg, off)
        nxt = (h >> 20) & 0xFFC
        if nxt == 0:
            struct.pack_into("<I", cfg, off, (h & 0xFFFFF) | (at << 20))
            break
        off = nxt
    struct.pack_into("<I", cfg, at, (1 << 16) | cid)
    cfg[at + 4:at + 4 + len(body)] = body
    return bytes(cfg)


class Tree:
    def __init__(self, name, readme):
        self.name, self.root = name, os.path.join(OUT, name)
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        self.paths = {}  # bdf -> real dir under sys/devices
        self.write("README.md", readme.strip() + "\n")

    def write(self, rel, data, mode=None):
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

    def link(self, rel, target):
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if os.path.lexists(p):
            os.remove(p)
        os.symlink(target, p)

    def platform(self, cmdline, policy="[default] performance powersave powersupersave \n", uptime="86400.25 1234567.89\n", aer_ports=()):
        if cmdline is not None:
            self.write("proc/cmdline", cmdline + "\n")
        self.write("proc/uptime", uptime)
        btime = NOW - int(float(uptime.split()[0]))
        self.write("proc/stat", "cpu  4705 356 584 3699 23 23 0 0 0 0\nintr 12345\nctxt 1990473\nbtime %d\nprocesses 2915\n" % btime)
        self.write("proc/sys/kernel/random/boot_id", BOOT_ID + "\n")
        if policy is not None:
            self.write("sys/module/pcie_aspm/parameters/policy", policy)
        for port in aer_ports:
            svc = port + ":pcie002"
            self.link("sys/bus/pci_express/devices/" + svc, "../../../devices/" + self.rel(port)[len("sys/devices/"):] + "/" + svc)
            self.link(self.rel(port) + "/" + svc + "/driver", "../../../../bus/pci_express/drivers/aer")
        if aer_ports:
            os.makedirs(os.path.join(self.root, "sys/bus/pci_express/drivers/aer"), exist_ok=True)

    def iommu(self, units=("dmar0",), ir=True, unsafe="N", dev_vfio=()):
        """IOMMU units, /proc/interrupts with or without remapped (IR-) chips,
        vfio_iommu_type1's allow_unsafe_interrupts, and /dev/vfio group nodes."""
        for u in units:
            self.write("sys/class/iommu/%s/intel-iommu/version" % u, "1:0\n")
        if not units:
            os.makedirs(os.path.join(self.root, "sys/class/iommu"), exist_ok=True)
        pre = "IR-" if ir else ""
        self.write("proc/interrupts",
                   "            CPU0       CPU1       \n"
                   "   0:         36          0   %sIO-APIC    2-edge      timer\n"
                   "   8:          0          0   %sIO-APIC    8-edge      rtc0\n"
                   " 120:     184201          0   %sPCI-MSI 524288-edge      nvme0q0\n"
                   " NMI:         12         10   Non-maskable interrupts\n" % (pre, pre, pre))
        if unsafe is not None:
            self.write("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", unsafe + "\n")
        for g in dev_vfio:
            self.write("dev/vfio/%s" % g, "")
        if dev_vfio:
            self.write("dev/vfio/vfio", "")

    def process(self, pid, comm, argv, fds):
        """A /proc/<pid> with comm, NUL-separated cmdline and fd links (targets as the kernel shows them)."""
        self.write("proc/%d/comm" % pid, comm + "\n")
        self.write("proc/%d/cmdline" % pid, "\0".join(argv).encode() + b"\0")
        for fd, target in fds.items():
            self.link("proc/%d/fd/%d" % (pid, fd), target)

    def mount(self, *lines):
        """/proc/self/mountinfo from `mount_point fstype source` triples."""
        out = []
        for i, (mp, fstype, src) in enumerate(lines):
            out.append("%d 1 0:%d / %s rw,relatime shared:%d - %s %s rw" % (20 + i, 20 + i, mp.replace(" ", "\\040"), i + 1, fstype, src))
        self.write("proc/self/mountinfo", "\n".join(out) + "\n")

    def aged(self, rel, age_s, data=""):
        """A file whose mtime is `age_s` before NOW (recorded in mtimes.tsv: git keeps no mtimes)."""
        self.write(rel, data)
        with open(os.path.join(self.root, "mtimes.tsv"), "a") as f:
            f.write("%s\t%d\n" % (rel, NOW - age_s))

    def crash(self, sysctl=None, kexec=(0, 0), pstore="(null)", watchdog=None, consoles="tty0                 -WU (EC p  )    4:1\n"):
        for k, v in dict(DEBIAN_SYSCTL, **(sysctl or {})).items():
            self.write("proc/sys/kernel/" + k, "%d\n" % v)
        self.write("sys/kernel/kexec_crash_loaded", "%d\n" % kexec[0])
        self.write("sys/kernel/kexec_crash_size", "%d\n" % kexec[1])
        self.write("sys/module/pstore/parameters/backend", pstore + "\n")
        self.write("proc/consoles", consoles)
        os.makedirs(os.path.join(self.root, "sys/class/watchdog"), exist_ok=True)
        if watchdog:
            for k, v in watchdog.items():
                self.write("sys/class/watchdog/watchdog0/" + k, v + "\n")

    def edac(self, controllers):
        """/sys/devices/system/edac/mc as edac_mc_sysfs.c lays it out: `controllers` maps
        `mcN` to (attrs, {dimm_dir: attrs}); values are written as the kernel prints them."""
        base = "sys/devices/system/edac/mc"
        self.write(base + "/power/runtime_status", "unsupported\n")
        for mc, (attrs, dimms) in controllers.items():
            for k, v in attrs.items():
                self.write("%s/%s/%s" % (base, mc, k), "%s\n" % v)
            for dimm, dattrs in dimms.items():
                for k, v in dattrs.items():
                    self.write("%s/%s/%s/%s" % (base, mc, dimm, k), "%s\n" % v)
                self.write("%s/%s/%s/power/runtime_status" % (base, mc, dimm), "unsupported\n")

    def kmsg(self, records):
        """dev/kmsg as a capture: records as /dev/kmsg returns them (header + continuation lines)."""
        self.write("dev/kmsg", b"".join(r if isinstance(r, bytes) else r.encode() for r in records))

    def rel(self, bdf):
        return self.paths[bdf]

    def device(self, bdf, parent=None, config=None, cfg_view=None, vendor=None, device=None, cls=None,
               driver=None, power="D0", runtime="active", link=None, aspm=None, aer=None, aer_counts=None,
               rootport=None, iommu_group=None, numa="-1", extra=None, traps=()):
        """One function. `link` = (cur_speed, cur_width, max_speed, max_width) strings, or
        'derive' to compute them from `config`. `cfg_view` truncates the config file
        (64 = what an unprivileged reader gets)."""
        dom, bus = bdf.split(":")[:2]
        if parent is None:
            base = "sys/devices/pci%s:%s" % (dom, bus)
        elif parent.split(":")[0] != dom:
            # A domain that hangs below a device of another (Intel VMD: pci10000:e0
            # sits in the VMD endpoint's directory).
            base = "%s/pci%s:%s" % (self.paths[parent], dom, bus)
        else:
            base = self.paths[parent]
        d = base + "/" + bdf
        self.paths[bdf] = d
        depth = d.count("/")
        self.link("sys/bus/pci/devices/" + bdf, "../../.." + "/" + d[len("sys"):])
        if config is not None and len(config) >= 12:
            vendor = vendor or "0x%04x" % u16(config, 0)
            device = device or "0x%04x" % u16(config, 2)
            cls = cls or "0x%06x" % (u32(config, 8) >> 8)
        attrs = {"vendor": vendor, "device": device, "class": cls, "enable": "1", "d3cold_allowed": "1",
                 "numa_node": numa, "driver_override": "(null)", "irq": "16", "revision": "0x00",
                 "resource": "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 6}
        if power is not None:
            attrs["power_state"] = power
        if runtime is not None:
            attrs["power/runtime_status"] = runtime
            attrs["power/control"] = "auto" if driver == "vfio-pci" else "on"
        if link == "derive":
            link = derive_link(config)
        if link:
            for k, v in zip(["current_link_speed", "current_link_width", "max_link_speed", "max_link_width"], link):
                if v is not None:
                    attrs[k] = v
        if aspm == "derive":
            aspm = derive_aspm(config)
        for k, v in (aspm or {}).items():
            attrs["link/" + k] = v
        if aer == "derive":
            aer = config is not None and find_ecap(config, 1) is not None
        if aer:
            counts = aer_counts or {}
            attrs["aer_dev_correctable"] = aer_text(COR, counts.get("cor", {}), "TOTAL_ERR_COR", counts.get("cor_total"))
            attrs["aer_dev_nonfatal"] = aer_text(UNCOR, counts.get("nonfatal", {}), "TOTAL_ERR_NONFATAL", counts.get("nonfatal_total"))
            attrs["aer_dev_fatal"] = aer_text(UNCOR, counts.get("fatal", {}), "TOTAL_ERR_FATAL", counts.get("fatal_total"))
        if rootport is not None:
            for sev, v in zip(["cor", "nonfatal", "fatal"], rootport):
                attrs["aer_rootport_total_err_" + sev] = str(v)
        attrs.update(extra or {})
        for k, v in attrs.items():
            if v is None:
                continue
            if k in traps:
                # A directory where a file should be: any read fails and is counted,
                # so a golden with errors=0 proves vigil never opened it.
                os.makedirs(os.path.join(self.root, d, k), exist_ok=True)
                continue
            self.write(d + "/" + k, v if v.endswith("\n") else v + "\n")
        if config is not None:
            data = config if cfg_view is None else config[:cfg_view]
            if "config" in traps:
                os.makedirs(os.path.join(self.root, d, "config"), exist_ok=True)
            else:
                self.write(d + "/config", data)
        if driver:
            self.link(d + "/driver", "../" * depth + "bus/pci/drivers/" + driver)
            os.makedirs(os.path.join(self.root, "sys/bus/pci/drivers", driver), exist_ok=True)
        if iommu_group is not None:
            self.link(d + "/iommu_group", "../" * depth + "kernel/iommu_groups/%d" % iommu_group)
            self.link("sys/kernel/iommu_groups/%d/devices/%s" % (iommu_group, bdf), "../../../../" + d[len("sys/"):])
            self.write("sys/kernel/iommu_groups/%d/type" % iommu_group, "DMA-FQ\n")
        return d


def aer_text(names, counts, total_name, total):
    lines = []
    for i, n in enumerate(names):
        if n is not None:
            lines.append("%s %d" % (n, counts.get(n, 0)))
    for bit, v in sorted((k, v) for k, v in counts.items() if isinstance(k, int)):
        lines.append("%s_bit[%d] %d" % ("dev_cor_errs" if names is COR else "dev_fatal_errs", bit, v))
    if total is None:
        total = sum(v for v in counts.values())
    lines.append("%s %d" % (total_name, total))
    return "\n".join(lines) + "\n"


def derive_link(b):
    e = find_cap(b, 0x10)
    if e is None:
        return None
    lnkcap, lnksta = u32(b, e + 0x0C), u16(b, e + 0x12)
    cap2 = u32(b, e + 0x2C) if (u16(b, e + 2) & 0xF) >= 2 and len(b) > e + 0x30 else 0
    vec = (cap2 >> 1) & 0x7F
    maxs = vec.bit_length() if vec else lnkcap & 0xF
    return (SPEED.get(lnksta & 0xF, "Unknown"), str((lnksta >> 4) & 0x3F), SPEED.get(maxs, "Unknown"), str((lnkcap >> 4) & 0x3F))


def derive_aspm(b):
    """link/ as the kernel shows it for a device below a link (no aspm=off): the
    states this end supports, enabled as its Link Control says."""
    e = find_cap(b, 0x10)
    if e is None:
        return None
    lnkcap, lnkctl = u32(b, e + 0x0C), u16(b, e + 0x10)
    out = {}
    if lnkcap & (1 << 10):
        out["l0s_aspm"] = "1" if lnkctl & 1 else "0"
    if lnkcap & (1 << 11):
        out["l1_aspm"] = "1" if lnkctl & 2 else "0"
    if lnkcap & (1 << 18):
        out["clkpm"] = "1" if lnkctl & (1 << 8) else "0"
    return out


def header64(vendor, device, cls, bridge=False):
    """The 64 bytes an unprivileged reader gets, for devices whose full dump is not
    in the captures: IDs, class, capabilities-list bit, header type."""
    b = bytearray(64)
    struct.pack_into("<HHHH", b, 0, vendor, device, 0x0406, 0x0010)
    struct.pack_into("<I", b, 8, cls << 16 | 0xA1)
    b[0x0E] = 1 if bridge else 0
    b[0x34] = 0x40
    return bytes(b)


ASUS = "tree-asus-p6t6__"


def asus_tree(t, gpu_driver="nouveau", audio_driver="snd_hda_intel", link=True, aspm=True, cfg_view=None, groups=False, power=None):
    """The ASUS P6T6 WS Revolution whole-machine dump (pciutils tests/tree-asus-p6t6):
    X58 root ports, an NF200 PCIe switch, a SAS HBA, a GT218 GPU and its HDA function."""
    g = (lambda n: n) if groups else (lambda n: None)
    p = power or {}
    for bdf, parent, drv, grp in [
        ("0000:00:01.0", None, "pcieport", 1), ("0000:00:03.0", None, "pcieport", 2), ("0000:00:07.0", None, "pcieport", 3),
        ("0000:02:00.0", "0000:00:03.0", "pcieport", 4), ("0000:03:00.0", "0000:02:00.0", "pcieport", 5),
        ("0000:03:02.0", "0000:02:00.0", "pcieport", 6), ("0000:04:00.0", "0000:03:00.0", "mpt2sas", 7),
        ("0000:06:00.0", "0000:00:07.0", gpu_driver, 8), ("0000:06:00.1", "0000:00:07.0", audio_driver, 8),
    ]:
        cfg = split(ASUS + bdf[5:].replace(":", "-"))
        t.device(bdf, parent, config=cfg, cfg_view=cfg_view, driver=drv, link="derive" if link else None,
                 aspm="derive" if (aspm and parent is not None) else None, aer="derive",
                 rootport=(0, 0, 0) if (parent is None and find_ecap(cfg, 1) is not None) else None,
                 iommu_group=g(grp), power=p.get(bdf, "D0"),
                 runtime="suspended" if p.get(bdf, "D0") != "D0" else "active")


def untar_ttar(archive, dest, strip=""):
    """Extract a ttar text archive (prometheus' format: `Path:` + `Lines: N` content with
    `NULLBYTE` for 0x00 and a final `EOF` for no trailing newline, `SymlinkTo:`, `Directory:`)."""
    with open(archive, "rb") as f:
        lines = f.read().split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith(b"Directory: "):
            rel = line[11:].decode()[len(strip):].lstrip("/")
            os.makedirs(os.path.join(dest, rel), exist_ok=True)
        elif line.startswith(b"Path: "):
            rel = line[6:].decode()[len(strip):].lstrip("/")
            full = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            nxt = lines[i]
            i += 1
            if nxt.startswith(b"SymlinkTo: "):
                os.symlink(nxt[11:].decode(), full)
            elif nxt.startswith(b"Lines: "):
                n = int(nxt[7:])
                body = lines[i:i + n]
                i += n
                data = b"\n".join(body)
                if data.endswith(b"EOF"):
                    data = data[:-3]
                elif n:
                    data += b"\n"
                with open(full, "wb") as f:
                    f.write(data.replace(b"NULLBYTE", b"\0"))


def build_all():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)

    # -- node_exporter's and procfs' own trees, copied as captured -------------
    for name, src, strip, readme in [
        ("node-exporter-pci", os.path.join(DATA, "node_exporter", "sys_pci_core.ttar"), "",
         "node_exporter's PCI sysfs fixture, extracted unchanged from ../shared/data/node_exporter/sys_pci_core.ttar\n"
         "(prometheus/node_exporter @ a7dcc3a, Apache-2.0). Quirks kept on purpose: dangling `driver`,\n"
         "`iommu_group` and `subsystem` links, an empty `link/`, `driver_override` = `(null)`, and `config`\n"
         "files corrupted by a text round-trip (bytes >= 0x80 became EF BF BD): vigil must notice the IDs do\n"
         "not match and ignore them. Tests reproduce node_exporter's expected values from\n"
         "../shared/data/node_exporter/e2e-output.pcidevice.txt."),
        ("procfs-aer", os.path.join(DATA, "procfs", "fixtures_pci_core.ttar"), "fixtures",
         "prometheus/procfs' PCI fixture, extracted unchanged from ../shared/data/procfs/fixtures_pci_core.ttar\n"
         "(prometheus/procfs @ 3c943fd, Apache-2.0). Non-zero AER counters whose TOTAL_ERR_* lines do not\n"
         "equal the counters' sum, and an `aer_dev_nonfatal` ending in `TOTAL_ERR_FATAL`: vigil reports the\n"
         "kernel's totals as printed. Tests reproduce ../shared/data/procfs/expected_aer.csv and\n"
         "expected_pci_device.csv."),
    ]:
        os.makedirs(os.path.join(OUT, name))
        untar_ttar(src, os.path.join(OUT, name), strip)
        with open(os.path.join(OUT, name, "README.md"), "w") as f:
            f.write(readme + "\n")

    # -- a whole real machine, privileged ----------------------------------------
    t = Tree("asus-p6t6-switch", """
# asus-p6t6-switch

A whole real machine read with privileges: the ASUS P6T6 WS Revolution dump from the pciutils
test suite (../shared/data/pciutils-tests/split/tree-asus-p6t6__*, pciutils @ 0f5b941,
GPL-2.0-or-later): three X58 root ports, an NVIDIA NF200 PCIe 2.0 switch (upstream 02:00.0,
downstream 03:00.0 and 03:02.0 with an empty slot), an LSI SAS2008 HBA and a GT218 GPU with its
HDA function. `config` files are the captured 4096-byte spaces; link, `link/` and AER attributes
are derived from them as the kernel derives them. Kernel 6.8 formats, OS-native AER on the root
ports with an AER capability. Models link partners through a switch (expected_* across
upstream/downstream ports) and an empty hot-plug slot (width 0, link down).
""")
    asus_tree(t)
    t.platform("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet",
               aer_ports=["0000:00:03.0", "0000:00:07.0"])

    # -- the incident's shape: passthrough GPU, aspm=off, noaer -----------------
    t = Tree("passthrough-gpu-vfio", """
# passthrough-gpu-vfio

The incident node's shape: a GPU and its HDA audio function passed through with vfio-pci under
one root port, booted with the post-mitigation command line of the incident
(../shared/data/incident/proc-cmdline.post-mitigation.txt: `intel_iommu=on iommu=pt
pcie_aspm=off pci=noaer`). Devices are the real root port 00:07.0, GT218 GPU 06:00.0 and HDA
06:00.1 from the ASUS P6T6 pciutils dump (GPL-2.0-or-later), read with privileges (4096-byte
config). VM 100 is running: `/proc/4242` (`kvm -id 100`) holds `/dev/vfio/8`; its config
`/etc/pve/qemu-server/100.conf` is a real user's VM config (../shared/data/proxmox-vm-configs,
blog-homelab-umbrella 101.conf) with `hostpci0` moved from `0000:01:00` to this GPU's slot
`0000:06:00`; `/etc/modprobe.d/vfio.conf` lists both functions' IDs. Intel IOMMU `dmar0`,
remapped interrupts (`IR-` chips), `allow_unsafe_interrupts=N`: a healthy passthrough node.

Crash forensics as on the incident node: log2ram on tmpfs (upstream `log2ram.conf`,
../shared/data/log2ram, MIT) with its disk copy `/var/hdd.log` last written 9 days 3 hours
before the test clock (mtimes in `mtimes.tsv`, applied by the tests: git keeps none), the
journal at `Storage=auto` inside the RAM disk, Debian's sysctl defaults (`panic=0`,
`hardlockup_panic=0`), no kdump, no pstore backend, no watchdog, no forwarding.

`dev/kmsg` holds what such a node logs before it freezes (formats of drivers/pci/pci.c and
vfio, kernel/watchdog.c, kernel/hung_task.c): a vfio reset, a failed D3cold->D0 transition, a
soft lockup of a KVM vCPU thread, a hung task; plus an escaped and a non-UTF-8 byte, a
2000-character message (truncated to 1024) and unrelated lines (dropped). `/sys/devices/system/edac/mc` exists (EDAC core built in) but no driver registered a memory
controller: nothing counts memory errors (`vigil_collector,collector=edac
unavailable=no_controller`). Because of `pcie_aspm=off` there is no `link/` directory anywhere and the policy file
cannot change anything; because of `pci=noaer` no `pcie002` AER service exists. Config space
still shows what firmware left enabled in Link Control: `pcie_aspm source=config` is the only
way to see it. GPU and audio share IOMMU group 8.
""")
    for bdf, parent, drv in [("0000:00:07.0", None, "pcieport"), ("0000:06:00.0", "0000:00:07.0", "vfio-pci"),
                             ("0000:06:00.1", "0000:00:07.0", "vfio-pci")]:
        cfg = split(ASUS + bdf[5:].replace(":", "-"))
        t.device(bdf, parent, config=cfg, driver=drv, link="derive", aer="derive", iommu_group=3 if parent is None else 8,
                 rootport=(0, 0, 0) if parent is None else None,
                 extra={"reset_method": "pm bus"} if parent else None)
    with open(os.path.join(DATA, "incident", "proc-cmdline.post-mitigation.txt")) as f:
        t.platform(f.read().strip(), uptime="775.02 18233.10\n")
    t.iommu(dev_vfio=[8])
    # Debian's kernel has the EDAC core built in; no driver registered a controller
    # (desktop memory without ECC): the mc directory holds only its power/ group.
    t.edac({})
    # VM 100 runs (Proxmox starts QEMU as /usr/bin/kvm -id 100) and holds group 8.
    t.process(4242, "kvm", ["/usr/bin/kvm", "-id", "100", "-name", "gpu-vm,debug-threads=on", "-no-shutdown"],
              {0: "/dev/null", 27: "/dev/vfio/vfio", 28: "/dev/vfio/8", 29: "anon_inode:[vfio-device]"})
    t.process(1, "systemd", ["/sbin/init"], {0: "/dev/null", 7: "socket:[18211]"})
    with open(os.path.join(DATA, "proxmox-vm-configs", "blog-homelab-umbrella__qemu-server__101.conf")) as f:
        vm = f.read().replace("hostpci0: 0000:01:00,", "hostpci0: 0000:06:00,")
    t.write("etc/pve/qemu-server/100.conf", vm)
    t.write("etc/hostname", "pve1\n")
    t.write("etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:0a65,10de:0be3 disable_vga=1\nsoftdep nouveau pre: vfio-pci\n")
    # Crash forensics as on the incident node: log2ram (tmpfs, upstream config from
    # ../shared/data/log2ram) whose disk copy was last synced 9 days ago, journald at its
    # default (auto) with /var/log/journal inside the RAM disk, Debian's sysctl defaults,
    # no kdump, no pstore backend, no watchdog, nothing forwarded.
    t.mount(("/", "ext4", "/dev/mapper/pve-root"), ("/var/hdd.log", "ext4", "/dev/mapper/pve-root"),
            ("/var/log", "tmpfs", "log2ram"))
    with open(os.path.join(DATA, "log2ram", "azlux-log2ram__log2ram.conf")) as f:
        t.write("etc/log2ram.conf", f.read())
    t.write("etc/systemd/journald.conf", "[Journal]\n#Storage=auto\n#SyncIntervalSec=5m\n")
    t.write("var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "")
    t.aged("var/hdd.log/syslog", 9 * 86400 + 3 * 3600)
    t.aged("var/hdd.log/log2ram.log", 9 * 86400 + 3 * 3600 + 60)
    t.crash()
    pci = lambda a: " SUBSYSTEM=pci\n DEVICE=+pci:%s\n" % a
    t.kmsg([
        "6,880,700000000,-;vfio-pci 0000:06:00.0: enabling device (0000 -> 0003)\n" + pci("0000:06:00.0"),
        "6,881,700000100,-;vfio-pci 0000:06:00.0: resetting\n" + pci("0000:06:00.0"),
        "3,902,770000000,-;vfio-pci 0000:06:00.0: Unable to change power state from D3cold to D0, device inaccessible\n" + pci("0000:06:00.0"),
        b"4,903,770000500,-;vfio-pci 0000:06:00.1: BAR 0: can't reserve [mem \\x0a\xff\xfe]\n SUBSYSTEM=pci\n DEVICE=+pci:0000:06:00.1\n",
        "3,910,773000000,-;watchdog: BUG: soft lockup - CPU#7 stuck for 23s! [CPU 0/KVM:4250]\n",
        "3,911,774000000,-;INFO: task kworker/u64:2:1234 blocked for more than 122 seconds.\n",
        "4,912,774500000,-;vfio-pci 0000:06:00.0: " + "x" * 2000 + "\n" + pci("0000:06:00.0"),
        "6,913,774600000,-;systemd[1]: Started session-7.scope.\n",
    ])

    # -- downgraded links, unprivileged -----------------------------------------
    t = Tree("links-downgraded", """
# links-downgraded

Links that trained below what both ends support, read unprivileged (64-byte `config`).
Values are the real ones of two machines:
- Dell XPS 15 7590 with a Razer Thunderbolt eGPU, `lspci -vvnn` from linuxhw/LsPCI
  (../shared/data/lspci-vvv-evidence/, kernel 5.13): root port 00:01.0 8086:1901 Gen3 x16 at
  2.5 GT/s with the TU117M GPU 01:00.0 (speed drop at idle: normal), and the RTX 2070 SUPER
  07:00.0 (10de:1e84, Gen3 x16 capable) at 5 GT/s x4 behind the Thunderbolt bridge 06:01.0,
  Gen3 x4 (both speed and width downgraded).
- A Gen4 x16 slot (AMD GPP bridge 00:02.0) whose RTX 4000 SFF Ada GPU trained at x8: a width
  downgrade at full speed (synthetic values on real IDs).
- Samsung PM174X NVMe 2e:00.0 at 16 of 32 GT/s "(downgraded)" from pciutils tests/cap-phy32
  (its first 64 config bytes are the captured ones), under a Gen5 x4 root port 00:1d.0, with
  the `link/` values of the NVMe example in kernel-abi.md §3.2 (L1 substates enabled).
- A Gen5 x4 root port 00:1b.0 (8086:7a38) above a Gen4 NVMe 03:00.0 (Samsung PM9A1 144d:a80a)
  that runtime PM put in D3hot: the NVMe's link files and config are traps (directories), so
  they are never read and the port's partner maximum is unknown. The port trained at 16 GT/s
  is not called downgraded: no `expected_*`, no verdict (synthetic values on real IDs).
sysfs strings use the >= 5.7 format. The Thunderbolt bridge's max width is x4 (its LnkCap),
so the eGPU's expected width is 4: not width-downgraded, only speed.
""")
    t.device("0000:00:01.0", None, config=header64(0x8086, 0x1901, 0x0604, True), driver="pcieport",
             link=("2.5 GT/s PCIe", "16", "8.0 GT/s PCIe", "16"))
    t.device("0000:01:00.0", "0000:00:01.0", config=header64(0x10DE, 0x1F91, 0x0302), driver="nvidia",
             link=("2.5 GT/s PCIe", "16", "8.0 GT/s PCIe", "16"), aspm={"l0s_aspm": "1", "l1_aspm": "1"}, aer=True,
             aer_counts={"cor": {"BadTLP": 3, "Rollover": 1, "Timeout": 7}, "cor_total": 9})
    t.device("0000:00:1c.4", None, config=header64(0x8086, 0xA334, 0x0604, True), driver="pcieport",
             link=("8.0 GT/s PCIe", "4", "8.0 GT/s PCIe", "4"), aer=True, rootport=(12, 0, 1))
    t.device("0000:06:01.0", "0000:00:1c.4", config=header64(0x8086, 0x15EA, 0x0604, True), driver="pcieport",
             link=("5.0 GT/s PCIe", "4", "8.0 GT/s PCIe", "4"))
    t.device("0000:07:00.0", "0000:06:01.0", config=header64(0x10DE, 0x1E84, 0x0300), driver="nvidia",
             link=("5.0 GT/s PCIe", "4", "8.0 GT/s PCIe", "16"), aspm={"l0s_aspm": "1", "l1_aspm": "1"}, aer=True,
             aer_counts={"cor": {"BadTLP": 41, "Rollover": 2, "Timeout": 19}, "cor_total": 58, "fatal": {"DLP": 1}})
    t.device("0000:00:1d.0", None, config=header64(0x8086, 0x7A30, 0x0604, True), driver="pcieport",
             link=("32.0 GT/s PCIe", "4", "32.0 GT/s PCIe", "4"))
    # link/ values of the NVMe example in kernel-abi.md §3.2 (all L1 substates on).
    t.device("0000:2e:00.0", "0000:00:1d.0", config=split("cap-phy32__2e-00.0")[:64], driver="nvme",
             link=("16.0 GT/s PCIe", "4", "32.0 GT/s PCIe", "4"), aer=True,
             aspm={"clkpm": "1", "l1_1_aspm": "1", "l1_1_pcipm": "1", "l1_2_aspm": "1", "l1_2_pcipm": "1", "l1_aspm": "1"})
    # A width downgrade behind a healthy speed: x16 slot trained at x8.
    t.device("0000:00:02.0", None, config=header64(0x1022, 0x1483, 0x0604, True), driver="pcieport",
             link=("16.0 GT/s PCIe", "8", "16.0 GT/s PCIe", "16"))
    t.device("0000:41:00.0", "0000:00:02.0", config=header64(0x10DE, 0x27B0, 0x0300), driver="nvidia",
             link=("16.0 GT/s PCIe", "8", "16.0 GT/s PCIe", "16"), aer=True, numa="0")
    # A Gen5 x4 port above a Gen4 NVMe that runtime PM put in D3hot: the NVMe's link
    # files are skipped (traps prove it), so the port has no known partner maximum.
    t.device("0000:00:1b.0", None, config=header64(0x8086, 0x7A38, 0x0604, True), driver="pcieport",
             link=("16.0 GT/s PCIe", "4", "32.0 GT/s PCIe", "4"))
    t.device("0000:03:00.0", "0000:00:1b.0", config=header64(0x144D, 0xA80A, 0x0108), driver="nvme",
             power="D3hot", runtime="suspended", link=("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"),
             traps=("current_link_speed", "current_link_width", "max_link_speed", "max_link_width", "config"))
    t.platform("BOOT_IMAGE=/boot/vmlinuz-5.13.0-30-generic root=UUID=2b1c ro quiet splash",
               aer_ports=["0000:00:1c.4"])

    # -- a sleeping GPU next to a working one -----------------------------------
    t = Tree("gpu-d3cold", """
# gpu-d3cold

Two NVIDIA GPUs (GP108M from pciutils tests/cap-exp-lnkcap2, GPL-2.0-or-later, placed twice):
01:00.0 and its audio 01:00.1 are idle passthrough devices, runtime-suspended in D3cold under a
runtime-suspended root port 00:01.0 (kernel-abi.md §5.4); 02:00.0 is in D0 under an active
root port 00:1c.0. On kernels >= 6.18 (and Oct-2025 stable backports) reading the sleeping
devices' link attributes or config space would resume them and their root port.

Trap: the sleeping devices' `current_link_speed`, `current_link_width`, `max_link_speed`,
`max_link_width` and `config`, and the suspended root port's `config`, are directories here.
Opening any of them fails and is counted as an error, so a golden with `errors=0i` proves vigil
never touched them (`link_skipped=1`). Cached attributes (`power_state`, `link/*`, `aer_*`) are
still read.
""")
    rp = split("cap-exp-lnkcap2__00-1c.0")
    gpu = split("cap-exp-lnkcap2__02-00.0")
    sleeping_traps = ("current_link_speed", "current_link_width", "max_link_speed", "max_link_width", "config")
    t.device("0000:00:01.0", None, config=rp, driver="pcieport", power="D3hot", runtime="suspended",
             link="derive", traps=sleeping_traps, aer="derive", rootport=(0, 0, 0))
    t.device("0000:01:00.0", "0000:00:01.0", config=gpu, driver="vfio-pci", power="D3cold", runtime="suspended",
             link="derive", traps=sleeping_traps, aspm="derive", aer="derive", iommu_group=11)
    t.device("0000:01:00.1", "0000:00:01.0", vendor="0x10de", device="0x0fb9", cls="0x040300", driver="vfio-pci",
             power="D3cold", runtime="suspended", link=("Unknown", "63", "8.0 GT/s PCIe", "16"), traps=sleeping_traps,
             iommu_group=11)
    t.device("0000:00:1c.0", None, config=rp, driver="pcieport", link="derive", aer="derive", rootport=(0, 0, 0))
    t.device("0000:02:00.0", "0000:00:1c.0", config=gpu, driver="nvidia", link="derive", aspm="derive", aer="derive",
             iommu_group=12)
    t.platform("BOOT_IMAGE=/boot/vmlinuz-6.18.2-1-pve root=/dev/mapper/pve-root ro quiet amd_iommu=on",
               aer_ports=["0000:00:1c.0", "0000:00:01.0"])

    # -- a device that fell off the bus -----------------------------------------
    t = Tree("device-fell-off-bus", """
# device-fell-off-bus

A GPU that stopped answering while the kernel still believes it is in D0 (the incident's
suspected PCIe stall): every config read returns all-ones, `current_link_width` reads `63`
and `current_link_speed` `Unknown` (kernel-abi.md §1.2, §4.3), while the cached `vendor` and
`device` keep their old values. `dev/kmsg` holds the kernel's last words about it, in the
formats of aer.c, dpc.c and pciehp (uncorrectable fatal AER with CmpltTO, DPC containment, link
down) and the NVIDIA driver's Xid 79 as quoted in NVIDIA/NVSentinel issue #155. Root port 00:1c.0 and GPU 02:00.0 are the Sunrise Point root
port and GP108M from pciutils tests/cap-exp-lnkcap2 (GPL-2.0-or-later), read with privileges.
The root port's Link Status is patched to what a dead link shows: width 0, Data Link Layer
Link Active clear (synthetic edit, bytes 0x52-0x53 of its PCIe capability), and a DPC extended
capability is appended at 0xe00 (synthetic; the pciutils DPC dump stops at 256 bytes) showing
what containment looks like: DPC Control trigger on ERR_FATAL with interrupt (0x0009), DPC
Status Trigger Status set with reason ERR_FATAL (0x0005), error source 02:00.0.
""")
    rp = bytearray(split("cap-exp-lnkcap2__00-1c.0"))
    e = find_cap(rp, 0x10)
    struct.pack_into("<H", rp, e + 0x12, (u16(rp, e + 0x12) & ~(0x3F << 4) & ~(1 << 13)) & 0xFFFF)
    rp = bytearray(add_ecap(rp, 0x1D, struct.pack("<HHHH", 0x1082, 0x0009, 0x0005, 0x0200)))
    t.device("0000:00:1c.0", None, config=bytes(rp), driver="pcieport", link="derive", aer="derive", rootport=(0, 1, 3),
             aer_counts={"fatal": {"SDES": 1, "CmpltTO": 2}, "nonfatal": {"CmpltTO": 1}})
    t.device("0000:02:00.0", "0000:00:1c.0", config=b"\xff" * 4096, vendor="0x10de", device="0x1d10", cls="0x030200",
             driver="nvidia", link=("Unknown", "63", "8.0 GT/s PCIe", "4"), aer=True,
             aer_counts={"nonfatal": {"CmpltTO": 4}})
    t.platform("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet", aer_ports=["0000:00:1c.0"])
    # The kernel's last words about it (formats: drivers/pci/pcie/aer.c, dpc.c,
    # hotplug/pciehp_ctrl.c; NVRM Xid as quoted in NVIDIA/NVSentinel issue #155).
    pci = lambda a: " SUBSYSTEM=pci\n DEVICE=+pci:%s\n" % a
    t.kmsg([
        "6,1,912345,-;pci 0000:02:00.0: [10de:1d10] type 00 class 0x030200 PCIe Endpoint\n" + pci("0000:02:00.0"),
        "6,2,5123456,-;EXT4-fs (dm-1): mounted filesystem 0f3cd65a r/w with ordered data mode. Quota mode: none.\n",
        "3,2001,86390000001,-;pcieport 0000:00:1c.0: AER: Uncorrectable (Fatal) error message received from 0000:02:00.0\n" + pci("0000:00:1c.0"),
        "3,2002,86390000050,-;nvidia 0000:02:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Requester ID)\n" + pci("0000:02:00.0"),
        "3,2003,86390000060,-;nvidia 0000:02:00.0:   device [10de:1d10] error status/mask=00004000/00000000\n" + pci("0000:02:00.0"),
        "3,2004,86390000070,-;nvidia 0000:02:00.0:    [14] CmpltTO                (First)\n" + pci("0000:02:00.0"),
        "3,2005,86390000200,-;pcieport 0000:00:1c.0: DPC: containment event, status:0x1f05 source:0x0200\n" + pci("0000:00:1c.0"),
        "6,2006,86390100000,-;pcieport 0000:00:1c.0: pciehp: Slot(1): Link Down\n" + pci("0000:00:1c.0"),
        "4,2007,86391000000,-;NVRM: Xid (PCI:0000:02:00): 79, pid=2231, name=Xorg, GPU has fallen off the bus.\n",
    ])

    # -- an old kernel's formats -------------------------------------------------
    t = Tree("old-kernel-formats", """
# old-kernel-formats

String formats of kernels 4.19-5.6 (kernel-abi.md §1.2, §2.2, §3.1, §5.1), on the GP108M and
Sunrise Point root port IDs from pciutils tests/cap-exp-lnkcap2, unprivileged (64-byte config):
- speeds without `.0` and without ` PCIe` (`8 GT/s`, `5 GT/s`), `Unknown speed` for a Gen4
  device on a 4.13-4.16 kernel;
- no `power_state` (added in 5.11) and no `link/` directory (added in 5.5): power comes from
  `power/runtime_status` alone;
- the ASPM policy without `powersupersave` and without a trailing newline (before ~5.8);
- AER counter names as the stale ABI document prints them (`Receiver Error`, `Bad TLP`) and a
  `dev_fatal_errs_bit[27]` fallback line with a name no kernel knew yet (synthetic, per the ABI
  document and aer.c's fallback format): every name is kept, none dropped;
- the old `pcie02`-style port service name is ignored; `pcie002` bound to `aer` is native AER.
""")
    t.device("0000:00:1c.0", None, config=split("cap-exp-lnkcap2__00-1c.0")[:64], driver="pcieport", power=None,
             link=("8 GT/s", "4", "8 GT/s", "4"), aer=False, rootport=(5, 0, 0),
             extra={"aer_dev_correctable": "Receiver Error 2\nBad TLP 1\nBad DLLP 0\nRELAY_NUM Rollover 0\nReplay Timer Timeout 0\nAdvisory Non-Fatal 0\nTOTAL_ERR_COR 3\n",
                    "aer_dev_fatal": "Undefined 0\nData Link Protocol 0\nSurprise Down Error 1\nTOTAL_ERR_FATAL 1\n",
                    "aer_dev_nonfatal": "Undefined 0\nData Link Protocol 0\nTOTAL_ERR_NONFATAL 0\n"})
    t.device("0000:02:00.0", "0000:00:1c.0", config=split("cap-exp-lnkcap2__02-00.0")[:64], driver="nouveau",
             power=None, link=("5 GT/s", "4", "8 GT/s", "4"), aer=True,
             aer_counts={"fatal": {27: 2}, "cor": {"RxErr": 1}})
    t.device("0000:00:1d.0", None, vendor="0x8086", device="0x9d18", cls="0x060400", driver="pcieport", power=None,
             link=("Unknown speed", "4", "Unknown speed", "4"))
    t.platform("BOOT_IMAGE=/boot/vmlinuz-4.19.0-27-amd64 root=/dev/sda1 ro quiet",
               policy="[default] performance powersave ", aer_ports=["0000:00:1c.0"])
    t.link("sys/bus/pci_express/devices/0000:00:1d.0:pcie02", "../../../devices/pci0000:00/0000:00:1d.0/0000:00:1d.0:pcie02")

    # -- passthrough gone wrong ----------------------------------------------------
    def vfio_host(name, readme, cmdline, devices, iommu_kw, extra_files=None):
        t = Tree(name, readme)
        for d in devices:
            t.device(**d)
        t.platform(cmdline)
        t.iommu(**iommu_kw)
        for k, v in (extra_files or {}).items():
            t.write(k, v)
        return t

    def hdr(v, d, c, bridge=False):
        return header64(v, d, c, bridge)

    rp = lambda bdf, grp: dict(bdf=bdf, parent=None, config=hdr(0x8086, 0x1901, 0x0604, True), driver="pcieport",
                               link=("8.0 GT/s PCIe", "16", "8.0 GT/s PCIe", "16"), iommu_group=grp)
    gpu = lambda bdf, parent, drv, grp, **kw: dict(bdf=bdf, parent=parent, config=hdr(0x10DE, 0x1B80, 0x0300), driver=drv,
                                                   link=("8.0 GT/s PCIe", "16", "8.0 GT/s PCIe", "16"), iommu_group=grp, **kw)
    audio = lambda bdf, parent, drv, grp, **kw: dict(bdf=bdf, parent=parent, config=hdr(0x10DE, 0x10F0, 0x0403), driver=drv,
                                                     link=("8.0 GT/s PCIe", "16", "8.0 GT/s PCIe", "16"), iommu_group=grp, **kw)
    nic = lambda bdf, parent, drv, grp: dict(bdf=bdf, parent=parent, config=hdr(0x8086, 0x1521, 0x0200), driver=drv,
                                            link=("5.0 GT/s PCIe", "4", "5.0 GT/s PCIe", "4"), iommu_group=grp)
    PVE_CMD = "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on"
    TESTS = os.path.join(DATA, "proxmox-qemu-server-tests")
    SRC = """IDs: NVIDIA GP104 [GeForce GTX 1080] 10de:1b80 and its HDA 10de:10f0 (the IDs of the common
`options vfio-pci ids=10de:1b80,10de:10f0` guides), Intel I350 NIC 8086:1521 (node_exporter's
fixture), Intel 8086:1901 root port (linuxhw lspci evidence); unprivileged 64-byte configs.
Synthetic topology (no public capture has these faults), real ID and file formats."""

    vfio_host("vfio-group-not-viable", """
# vfio-group-not-viable

A GPU and its audio function on vfio-pci that share IOMMU group 1 with an I350 NIC still on
`igb` behind the same root port (no ACS isolation on the board): the group is not viable, QEMU
refuses to start (`group 1 is not viable`), and the NIC's DMA is not isolated from the guest.
""" + SRC, PVE_CMD,
        [rp("0000:00:01.0", 1), gpu("0000:01:00.0", "0000:00:01.0", "vfio-pci", 1), audio("0000:01:00.1", "0000:00:01.0", "vfio-pci", 1),
         nic("0000:02:00.0", "0000:00:01.0", "igb", 1)],
        dict(dev_vfio=[]),
        {"etc/modprobe.d/vfio.conf": "options vfio-pci ids=10de:1b80,10de:10f0\n"})

    vfio_host("vfio-acs-override", """
# vfio-acs-override

Proxmox's out-of-tree `pcie_acs_override=downstream,multifunction` on the command line
(kernel-abi.md §6.6): the GPU got its own IOMMU group 16 and the NIC group 17, but only because
the kernel was told to pretend ACS isolation exists. `pcie_platform acs_override=1`.
""" + SRC, PVE_CMD + " iommu=pt pcie_acs_override=downstream,multifunction",
        [rp("0000:00:01.0", 15), gpu("0000:01:00.0", "0000:00:01.0", "vfio-pci", 16), audio("0000:01:00.1", "0000:00:01.0", "vfio-pci", 16),
         nic("0000:02:00.0", "0000:00:01.0", "igb", 17)],
        dict(dev_vfio=[16]))

    vfio_host("vfio-unsafe-interrupts", """
# vfio-unsafe-interrupts

A platform without interrupt remapping (no `IR-` chips in `/proc/interrupts`) where passthrough
was forced with `vfio_iommu_type1.allow_unsafe_interrupts=1`
(`/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts` = `Y`): a guest can inject
interrupts into the host (MSI attacks). `vfio_unsafe_interrupts=1`, `interrupt_remapping=0`.
""" + SRC, PVE_CMD + " vfio_iommu_type1.allow_unsafe_interrupts=1",
        [rp("0000:00:01.0", 1), gpu("0000:01:00.0", "0000:00:01.0", "vfio-pci", 2), audio("0000:01:00.1", "0000:00:01.0", "vfio-pci", 2)],
        dict(ir=False, unsafe="Y", dev_vfio=[2]))

    t = vfio_host("vfio-misbound", """
# vfio-misbound

The classic misbinding: `vfio-pci.ids=10de:1b80,10de:10f0` on the command line and in
`/etc/modprobe.d/vfio.conf`, and VM 101 configured with `hostpci0: 0000:01:00` (the real
q35 user config from ../shared/data/proxmox-vm-configs, blog-Taguiad 204.conf, renamed 101),
yet `nouveau` grabbed the GPU and `snd_hda_intel` its audio before vfio-pci loaded:
`bound=0 intended=1`. A second GPU slot 02:00 is passed through with vfio-pci but its HDA
function 02:00.1 was left on `snd_hda_intel`: `host_companions=1`. A template VM (999) that
lists the same slot is ignored, as Proxmox ignores it. The modprobe.d directories check
precedence: `/usr/lib/modprobe.d/vfio.conf` is hidden by the same name in `/etc/modprobe.d`, so
its `ids=dead:beef` never applies.

VM 102 takes the 02:00 slot with its options first, `hostpci0: x-vga=1,pcie=1,host=02:00`
(Proxmox's property string: `host=` anywhere; the config is qemu-server's
q35-linux-hostpci.conf test with that line, ../shared/data/proxmox-qemu-server-tests,
AGPL-3.0-or-later): `configured_vmids=102` on both functions. A third GP104 03:00.0, also
listed in `vfio-pci.ids`, has a `driver` link that does not point into `bus/pci/drivers`
(unreadable, synthetic): its driver is unknown, so no `bound` and no `driver` is reported, not
a misbinding, and its IOMMU group 5's viability is unknown.
""" + SRC, PVE_CMD + " vfio-pci.ids=10de:1b80,10de:10f0",
        [rp("0000:00:01.0", 1), gpu("0000:01:00.0", "0000:00:01.0", "nouveau", 2), audio("0000:01:00.1", "0000:00:01.0", "snd_hda_intel", 2),
         rp("0000:00:02.0", 3), dict(gpu("0000:02:00.0", "0000:00:02.0", "vfio-pci", 4), config=hdr(0x10DE, 0x1C82, 0x0300)),
         dict(audio("0000:02:00.1", "0000:00:02.0", "snd_hda_intel", 4), config=hdr(0x10DE, 0x0FB9, 0x0403)),
         rp("0000:00:03.0", 5), gpu("0000:03:00.0", "0000:00:03.0", None, 5)],
        dict(dev_vfio=[4]),
        {"etc/modprobe.d/vfio.conf": "options vfio-pci ids=10de:1b80,10de:10f0\n",
         "usr/lib/modprobe.d/vfio.conf": "options vfio-pci ids=dead:beef\n",
         "etc/hostname": "pve2\n"})
    with open(os.path.join(DATA, "proxmox-vm-configs", "blog-Taguiad-thinkpad-p51__qemu-server__204.conf")) as f:
        t.write("etc/pve/qemu-server/101.conf", f.read())
    with open(os.path.join(TESTS, "q35-linux-hostpci-template.conf")) as f:
        t.write("etc/pve/qemu-server/999.conf", f.read() + "hostpci5: 02:00\n")
    with open(os.path.join(TESTS, "q35-linux-hostpci.conf")) as f:
        vm = [l for l in f.read().splitlines() if not l.startswith("hostpci")]
    t.write("etc/pve/qemu-server/102.conf", "\n".join(vm + ["hostpci0: x-vga=1,pcie=1,host=02:00"]) + "\n")
    # A driver link that leads nowhere a driver lives: the driver is unknown.
    t.link(t.rel("0000:03:00.0") + "/driver", "../../../../module/nouveau")

    vfio_host("iommu-off", """
# iommu-off

A node booted with `intel_iommu=off`: no IOMMU unit in `/sys/class/iommu`, an empty
`/sys/kernel/iommu_groups`, no group links. The GPU is listed for vfio-pci in modprobe.d, but
vfio-pci cannot bind without an IOMMU, so it sits unbound: `iommu_enabled=0`, `iommu_groups=0`,
`vfio_device bound=0 intended=1` with no group.
""" + SRC, "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=off",
        [dict(rp("0000:00:01.0", None)), gpu("0000:01:00.0", "0000:00:01.0", None, None)],
        dict(units=(), ir=False, unsafe=None),
        {"etc/modprobe.d/vfio.conf": "options vfio-pci ids=10de:1b80\n"})
    os.makedirs(os.path.join(OUT, "iommu-off", "sys/kernel/iommu_groups"), exist_ok=True)

    # -- Intel VMD: a PCI domain with five hex digits --------------------------------
    t = Tree("intel-vmd", """
# intel-vmd

An Intel client board with VMD (Volume Management Device) enabled in firmware, as many
workstations ship: the VMD endpoint 0000:00:0e.0 (8086:467f, class 0104, driver `vmd`) remaps
the NVMe root port into its own PCI domain, which the kernel numbers from 0x10000. The remapped
root port 10000:e0:06.0 (8086:464d) and the Samsung 980 PRO NVMe 10000:e1:00.0 below it
(144d:a80a, Gen4 x4) appear in sysfs under `pci0000:00/0000:00:0e.0/pci10000:e0/`, as the
kernel lays them out (drivers/pci/controller/vmd.c, domain from 0x10000). They share the VMD
endpoint's IOMMU group 9 (their DMA carries its requester ID). Next to it, an ordinary root
port 00:1c.0 with an I350 NIC in domain 0000. Unprivileged (64-byte configs), OS-native AER on
00:1c.0. Synthetic values on real IDs and the kernel's naming; addresses as in issue reports
of `10000:e1:00.0`. Every device must be listed, placed in the topology and its group.
""")
    t.device("0000:00:0e.0", None, config=header64(0x8086, 0x467F, 0x0104), driver="vmd", iommu_group=9)
    t.device("10000:e0:06.0", "0000:00:0e.0", config=header64(0x8086, 0x464D, 0x0604, True), driver="pcieport",
             link=("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"), iommu_group=9)
    t.device("10000:e1:00.0", "10000:e0:06.0", config=header64(0x144D, 0xA80A, 0x0108), driver="nvme",
             link=("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"), aer=True, iommu_group=9,
             aspm={"l1_aspm": "1", "l1_1_aspm": "1", "l1_2_aspm": "1", "clkpm": "1"},
             aer_counts={"cor": {"RxErr": 2}, "cor_total": 2})
    t.device("0000:00:1c.0", None, config=header64(0x8086, 0x7A38, 0x0604, True), driver="pcieport",
             link=("5.0 GT/s PCIe", "4", "8.0 GT/s PCIe", "4"), aer=True, rootport=(0, 0, 0), iommu_group=10)
    t.device("0000:02:00.0", "0000:00:1c.0", config=header64(0x8086, 0x1521, 0x0200), driver="igb",
             link=("5.0 GT/s PCIe", "4", "5.0 GT/s PCIe", "4"), aer=True, iommu_group=11)
    t.platform(PVE_CMD, aer_ports=["0000:00:1c.0"])
    t.iommu()

    # -- memory errors (EDAC) and firmware-first AER ---------------------------------
    t = Tree("edac-firmware-first", """
# edac-firmware-first

An AMD Zen node whose memory controller is watched by `amd64_edac` and whose firmware kept PCIe
AER (`_OSC` did not grant it: firmware-first).

EDAC: `mc0` with `mc_name` `F17h` and ranks laid out as in a real `grep -r .
/sys/devices/system/edac/mc/` by the EDAC maintainer (Borislav Petkov, linux-edac, 11 Nov 2021,
"Re: [PATCH v6 5/5] EDAC/amd64: Enumerate memory on Aldebaran GPU nodes": `rankN/` with
`dimm_ce_count`, `dimm_ue_count`, `dimm_label` `mc#0csrow#2channel#1`, `dimm_location`
`csrow 2 channel 1 ` with its trailing space, `size` 8192, `Unbuffered-DDR4`, `SECDED`,
`power/`, and `mc0/dram_hole`, `topmem`). Ranks 4-7 are modelled (the post lists 5 and 7, the
others follow the driver's csrow/channel numbering). Rank 5 has corrected 12 errors, so `mc0`
has `ce_count` 12 (synthetic counts). The legacy `csrow2/` directory repeats rank 4-5's counts
and must not be counted twice.

AER: root port 00:01.1 (1022:1483) and an NVMe below it have AER counter files (zeros), and
`/sys/bus/pci_express/devices` holds the port's PME service `0000:00:01.1:pcie001` bound to
`pcie_pme` but no `pcie002`: the OS does not own AER, so the kernel never counts into those files
(kernel-abi.md §2.3-2.4). `pcie_aer` must not present the zeros; `vigil_collector` says
`unavailable=aer_not_native`. Unprivileged (64-byte configs).
""")
    t.device("0000:00:01.1", None, config=header64(0x1022, 0x1483, 0x0604, True), driver="pcieport",
             link=("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"), aer=True, rootport=(0, 0, 0))
    t.device("0000:01:00.0", "0000:00:01.1", config=header64(0x144D, 0xA80A, 0x0108), driver="nvme",
             link=("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"), aer=True)
    t.platform(PVE_CMD.replace("intel_iommu=on", "amd_iommu=on"))
    svc = "0000:00:01.1:pcie001"
    t.link("sys/bus/pci_express/devices/" + svc, "../../../devices/" + t.rel("0000:00:01.1")[len("sys/devices/"):] + "/" + svc)
    t.link(t.rel("0000:00:01.1") + "/" + svc + "/driver", "../../../../bus/pci_express/drivers/pcie_pme")
    os.makedirs(os.path.join(t.root, "sys/bus/pci_express/drivers/pcie_pme"), exist_ok=True)
    rank = lambda csrow, ch, ce: {"dimm_ce_count": ce, "dimm_ue_count": 0, "dimm_mem_type": "Unbuffered-DDR4",
                                  "dimm_dev_type": "Unknown", "size": 8192,
                                  "dimm_label": "mc#0csrow#%dchannel#%d" % (csrow, ch),
                                  "dimm_location": "csrow %d channel %d " % (csrow, ch), "dimm_edac_mode": "SECDED"}
    t.edac({"mc0": ({"mc_name": "F17h", "size_mb": 32768, "seconds_since_reset": 86400, "ce_count": 12,
                     "ue_count": 0, "ce_noinfo_count": 0, "ue_noinfo_count": 0, "max_location": "csrow 3 channel 1",
                     "dram_hole": "0 0 0", "topmem": "0x00000000e0000000"},
                    {"rank4": rank(2, 0, 0), "rank5": rank(2, 1, 12), "rank6": rank(3, 0, 0), "rank7": rank(3, 1, 0),
                     "csrow2": {"ce_count": 12, "ue_count": 0, "size_mb": 16384, "ch0_ce_count": 0, "ch1_ce_count": 12,
                                "ch0_dimm_label": "mc#0csrow#2channel#0", "ch1_dimm_label": "mc#0csrow#2channel#1"}})})

    # -- crash-forensics readiness ----------------------------------------------------
    JD = os.path.join(DATA, "journald")
    def jd(name):
        with open(os.path.join(JD, name)) as f:
            return f.read()

    def forensics_node(name, readme, cmdline=PVE_CMD):
        t = Tree(name, readme)
        t.device("0000:00:1c.0", None, config=split("cap-exp-lnkcap2__00-1c.0")[:64], driver="pcieport",
                 link="derive" if False else ("8.0 GT/s PCIe", "4", "8.0 GT/s PCIe", "4"), aer=True, rootport=(0, 0, 0))
        t.platform(cmdline, aer_ports=["0000:00:1c.0"])
        return t

    t = forensics_node("forensics-log2ram-zram", """
# forensics-log2ram-zram

log2ram in zram mode (`ZL2R=true`, kernel-abi.md §9.1): `/dev/zram0` formatted ext4 mounted on
`/var/log`, the disk copy bind-mounted at `/var/hdd.log`, last synced 26 hours before the test
clock. The journal is `Storage=persistent` (../shared/data/journald, waggle-sensor-core
journald.conf, LGPL-2.1+ text) yet lands on zram: `journal_persistent=0`. Config from a real
Raspberry Pi (../shared/data/log2ram keks24 log2ram.conf, MIT) with `ZL2R=true` set.
""")
    t.mount(("/", "ext4", "/dev/mmcblk0p2"), ("/var/hdd.log", "ext4", "/dev/mmcblk0p2"), ("/var/log", "ext4", "/dev/zram0"))
    with open(os.path.join(DATA, "log2ram", "keks24-raspberry-pi-headless__etc__log2ram.conf")) as f:
        t.write("etc/log2ram.conf", f.read().replace("ZL2R=false", "ZL2R=true"))
    t.write("etc/systemd/journald.conf", jd("waggle-sensor-core__etc__systemd__journald.conf"))
    t.write("var/log/journal/.keep", "")
    t.aged("var/hdd.log/daemon.log", 26 * 3600)
    t.aged("var/hdd.log/journal/0123/system@0001.journal", 27 * 3600)
    t.crash()

    t = forensics_node("forensics-folder2ram", """
# forensics-folder2ram

folder2ram (OpenMediaVault flashmemory plugin, kernel-abi.md §9.2): tmpfs with source
`folder2ram` on `/var/log`, disk copy bind-mounted at `/var/folder2ram/var/log`, which is only
synced at shutdown: its newest file is 41 days older than the test clock.
""")
    t.mount(("/", "ext4", "/dev/sda1"), ("/var/folder2ram/var/log", "ext4", "/dev/sda1"), ("/var/log", "tmpfs", "folder2ram"))
    t.write("etc/folder2ram/folder2ram.conf", "tmpfs\t\t/var/log\t\tdefaults\n")
    t.aged("var/folder2ram/var/log/syslog", 41 * 86400)
    t.crash()

    t = forensics_node("forensics-log2ram-timer", """
# forensics-log2ram-timer

log2ram (tmpfs with source `log2ram` on `/var/log`, disk copy `/var/hdd.log`) whose sync timer
was made hourly: the packaged `log2ram-daily.timer` in /usr/lib/systemd/system says
`OnCalendar=*-*-* 23:55:00` (daily, as azlux/log2ram's timer did before it said `daily`), and a
drop-in `/etc/systemd/system/log2ram-daily.timer.d/hourly.conf` clears it (`OnCalendar=`) and sets
`hourly`. A second drop-in of the same name in /usr/lib is hidden by the /etc one. The disk copy
was last written 3 hours before the test clock: `log_disk_sync_interval_s` 3600 against
`log_disk_sync_age_s` 10800, a stalled timer.
""")
    t.mount(("/", "ext4", "/dev/sda1"), ("/var/hdd.log", "ext4", "/dev/sda1"), ("/var/log", "tmpfs", "log2ram"))
    t.write("usr/lib/systemd/system/log2ram-daily.timer",
            "[Unit]\nDescription=Daily Log2Ram writing activities\n\n[Timer]\n"
            "OnCalendar=*-*-* 23:55:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n")
    t.write("etc/systemd/system/log2ram-daily.timer.d/hourly.conf", "[Timer]\nOnCalendar=\nOnCalendar=hourly\n")
    t.write("usr/lib/systemd/system/log2ram-daily.timer.d/hourly.conf", "[Timer]\nOnCalendar=weekly\n")
    t.aged("var/hdd.log/syslog", 3 * 3600)
    t.crash()

    t = forensics_node("forensics-volatile-journal", """
# forensics-volatile-journal

A `Storage=volatile` drop-in (../shared/data/journald, fspv-bootc-images volatile.conf, without
a trailing newline) over a main journald.conf that says `Storage=persistent` (waggle): drop-ins
win, the journal lives in /run only. A second drop-in in /usr/lib with the same name is masked
by the /etc one; a third in /run is a link to /dev/null and ignored.
""")
    t.mount(("/", "ext4", "/dev/sda1"), ("/run", "tmpfs", "tmpfs"))
    t.write("etc/systemd/journald.conf", jd("waggle-sensor-core__etc__systemd__journald.conf"))
    t.write("etc/systemd/journald.conf.d/volatile.conf", jd("fspv-bootc-images__etc__systemd__journald.conf.d__volatile.conf"))
    t.write("usr/lib/systemd/journald.conf.d/volatile.conf", "[Journal]\nStorage=persistent\n")
    t.link("run/systemd/journald.conf.d/zz-masked.conf", "/dev/null")
    t.write("var/log/journal/.keep", "")
    t.crash()

    t = forensics_node("forensics-auto-no-journal-dir", """
# forensics-auto-no-journal-dir

The stock journald.conf with everything commented out (../shared/data/journald, Webconverger
journald.conf): `Storage=auto`, and no `/var/log/journal` directory, so journald stays
volatile. Debian's default until the directory is created.
""")
    t.mount(("/", "ext4", "/dev/sda1"))
    t.write("etc/systemd/journald.conf", jd("Webconverger-webc__etc__systemd__journald.conf"))
    t.write("var/log/syslog", "")
    t.crash()

    t = forensics_node("forensics-well-prepared", """
# forensics-well-prepared

A node prepared to leave evidence: persistent journal on ext4 (waggle journald.conf with a
`SyncIntervalSec=30s` drop-in), rsyslog forwarding to a log host, netconsole registered
(`netcon0` in /proc/consoles), kdump loaded with 512 MiB reserved (kernel-abi.md §7.2 example),
an `efi_pstore` backend with one archived record, the softdog watchdog armed by Proxmox's
watchdog-mux (kernel-abi.md §7.4 example), `hardlockup_panic=1`, `panic=10`, OS-native AER.
Scores 100 with no findings.
""")
    t.mount(("/", "ext4", "/dev/mapper/pve-root"), ("/boot/efi", "vfat", "/dev/nvme0n1p2"))
    t.write("etc/systemd/journald.conf", jd("waggle-sensor-core__etc__systemd__journald.conf"))
    t.write("etc/systemd/journald.conf.d/50-sync.conf", "[Journal]\nSyncIntervalSec=30s\n")
    t.write("var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "")
    t.write("etc/rsyslog.conf", DEBIAN_RSYSLOG_CONF)
    t.write("usr/sbin/rsyslogd", "")
    t.write("etc/rsyslog.d/90-remote.conf", "*.* @@logs.example.org:514\n")
    telegraf_shipping(t)
    t.write("var/lib/systemd/pstore/1699990000/dmesg-efi_pstore-169999000001001", "")
    t.crash(sysctl={"hardlockup_panic": 1, "panic": 10}, kexec=(1, 536870912), pstore="efi_pstore",
            watchdog={"identity": "Software Watchdog", "state": "active", "timeout": "10", "bootstatus": "0",
                      "status": "0x0", "nowayout": "0"},
            consoles="tty0                 -WU (EC p  )    4:1\nnetcon0              -W- (E     )\n")

    build_logging_configs(forensics_node, jd)

    # -- every captured PCI Express function, for lspci as an oracle -----------
    t = Tree("pciutils-captures", """
# pciutils-captures

Every device with a PCI Express capability among the pciutils test-suite dumps
(../shared/data/pciutils-tests/split/*.config.bin, pciutils @ 0f5b941, GPL-2.0-or-later), read
with privileges. Each sits alone on its own PCI domain (domain N = Nth file in name order, bus,
device and function as captured) so that addresses never collide; sysfs link and AER attributes
are derived from the config space. `pciutils-sources.tsv` maps each address to its capture.
The lspci test decodes this tree with `lspci -A linux-sysfs` and compares with vigil. Includes a
Haswell-E root port with AER root registers, the DPC and RCEC mock-ups, an NVMe at 16 of 32 GT/s,
NICs with `DevSta: CorrErr+`, and the synthetic `cap-dev3`, `cap-flitmode`, `cap-ide` mock-ups.
""")
    rows = []
    n = 0
    for fname in sorted(os.listdir(SPLIT)):
        if not fname.endswith(".config.bin"):
            continue
        cfg = split(fname[:-len(".config.bin")])
        if len(cfg) < 256 or find_cap(cfg, 0x10) is None or u16(cfg, 0) == 0xFFFF:
            continue
        n += 1
        orig = fname.split("__")[1][:-len(".config.bin")]  # 00-1c.0
        bdf = "%04x:%s:%s" % (n, orig[:2], orig[3:])
        e = find_cap(cfg, 0x10)
        ptype = (u16(cfg, e + 2) >> 4) & 0xF
        t.device(bdf, None, config=cfg, driver="pcieport" if ptype in (4, 5, 6) else None, link="derive", aer="derive",
                 rootport=(0, 0, 0) if (ptype in (4, 10) and find_ecap(cfg, 1) is not None) else None)
        rows.append("%s\t%s" % (bdf, fname))
    t.write("pciutils-sources.tsv", "address\tcapture\n" + "\n".join(rows) + "\n")
    t.platform("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet")

    # -- garbage of every kind ---------------------------------------------------
    t = Tree("corrupt-inputs", """
# corrupt-inputs

Bad input is normal input. Built by hand (no capture has these on purpose), on the GP108M and
root-port IDs of pciutils tests/cap-exp-lnkcap2:
- 00:1c.0: `current_link_speed` = `fast`, `current_link_width` = `x4`, empty `max_link_speed`,
  non-UTF-8 `power_state`, `numa_node` = `banana`, an `aer_dev_correctable` with a line without
  a count and a non-numeric count, a truncated (3-byte) `config`;
- 02:00.0: `driver` is a symlink loop, `iommu_group` points at a non-number, `class` is
  `0xzz`, `enable` = `maybe`, `config` with a capability list that loops and an extended
  capability pointing past the end (privileged view, first 256+ bytes mutated);
- 03:00.0: the bus entry dangles (device vanished mid-walk): skipped, not an error;
- 04:00.0: a directory that holds nothing at all;
- `/proc/uptime` = `NaN`, `/proc/sys/kernel/random/boot_id` is not a UUID, the ASPM policy
  has no bracketed entry.
Expected: exit 0, valid lines, each bad value omitted and counted in `vigil_collector`.
00:1c.0's unreadable power state counts as asleep (no wake fails closed): its link files and
`config`, and 02:00.0's below it, are not read (`link_skipped=1`, `pcie_link`
`unavailable="power_unknown"`); their bad values are kept for the day that rule changes.
""")
    t.device("0000:00:1c.0", None, config=split("cap-exp-lnkcap2__00-1c.0")[:3], driver="pcieport",
             vendor="0x8086", device="0x9d10", cls="0x060400",
             link=("fast", "x4", "", "4"), numa="banana",
             extra={"power_state": None, "aer_dev_correctable": "RxErr 1\nBadTLP\nBadDLLP many\nTOTAL_ERR_COR 1\n"})
    t.write(t.rel("0000:00:1c.0") + "/power_state", b"D\xff\xfe0\n")
    cfg = bytearray(split("cap-exp-lnkcap2__02-00.0"))
    e = find_cap(cfg, 0x10)
    cfg[e + 1] = e  # capability loops onto itself
    struct.pack_into("<I", cfg, 0x100, (0xFF8 << 20) | 0x10001)  # AER, next -> 0xff8 ... then off the end
    struct.pack_into("<I", cfg, 0xFF8, (0xFFC << 20) | 0x0002)
    t.device("0000:02:00.0", "0000:00:1c.0", config=bytes(cfg), cls="0xzz", driver=None, link="derive",
             extra={"enable": "maybe"})
    d = t.rel("0000:02:00.0")
    t.link(d + "/driver", "driver")
    t.link(d + "/iommu_group", "../../../../kernel/iommu_groups/not-a-number")
    t.link("sys/bus/pci/devices/0000:03:00.0", "../../../devices/pci0000:00/0000:00:1c.0/0000:03:00.0")
    os.makedirs(os.path.join(t.root, "sys/devices/pci0000:00/0000:04:00.0"))
    t.link("sys/bus/pci/devices/0000:04:00.0", "../../../devices/pci0000:00/0000:04:00.0")
    t.write("proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro pcie_aspm=\"for ce\" pci=noaer\n")
    t.write("proc/uptime", "NaN NaN\n")
    t.write("proc/sys/kernel/random/boot_id", "not-a-uuid\n")
    t.write("sys/module/pcie_aspm/parameters/policy", "default performance\n")


# -- logging configurations as the daemons read them (issue 21 items 4, 5, 7) --------

# The layout of Debian 12's stock /etc/rsyslog.conf (rsyslog 8.2302): modules with
# trailing comments, legacy `$` directives, `$IncludeConfig` of rsyslog.d, legacy rules.
DEBIAN_RSYSLOG_CONF = """# /etc/rsyslog.conf configuration file for rsyslog
#
# For more information install rsyslog-doc and see
# /usr/share/doc/rsyslog-doc/html/configuration/index.html

#################
#### MODULES ####
#################

module(load="imuxsock") # provides support for local system logging
module(load="imklog")   # provides kernel logging support
#module(load="immark")  # provides --MARK-- message capability

# provides UDP syslog reception
#module(load="imudp")
#input(type="imudp" port="514")

###########################
#### GLOBAL DIRECTIVES ####
###########################

$FileOwner root
$FileGroup adm
$FileCreateMode 0640
$DirCreateMode 0755
$Umask 0022
$WorkDirectory /var/spool/rsyslog

#
# Include all config files in /etc/rsyslog.d/
#
$IncludeConfig /etc/rsyslog.d/*.conf

###############
#### RULES ####
###############

*.*;auth,authpriv.none\t\t-/var/log/syslog
auth,authpriv.*\t\t\t/var/log/auth.log
kern.*\t\t\t\t-/var/log/kern.log
*.emerg\t\t\t\t:omusrmsg:*
"""


def telegraf_shipping(t):
    """Telegraf running as user telegraf with CAP_SYSLOG (vigil's example drop-in
    installed), the shipped vigil snippet in telegraf.d, and Proxmox's
    kernel.dmesg_restrict=1: vigil's data leaves the node, kernel events included."""
    with open(os.path.join(REPO, "telegraf-snippets", "vigil.conf")) as f:
        t.write("etc/telegraf/telegraf.d/vigil.conf", f.read())
    with open(os.path.join(REPO, "telegraf-snippets", "systemd", "telegraf.service.d", "vigil.conf")) as f:
        t.write("etc/systemd/system/telegraf.service.d/vigil.conf", f.read())
    t.process(812, "telegraf", ["/usr/bin/telegraf", "-config", "/etc/telegraf/telegraf.conf",
                                "-config-directory", "/etc/telegraf/telegraf.d"], {0: "/dev/null"})
    t.write("proc/812/status", "Name:\ttelegraf\nUid:\t998\t998\t998\t998\n"
            "CapInh:\t0000000000000000\nCapPrm:\t0000000400000000\nCapEff:\t0000000400000000\n"
            "CapBnd:\t000001ffffffffff\nCapAmb:\t0000000400000000\n")
    t.write("proc/sys/kernel/dmesg_restrict", "1\n")


def build_logging_configs(forensics_node, jd):
    t = forensics_node("forensics-journald-syntax", """
# forensics-journald-syntax

journald settings that journald itself ignores (systemd src/shared/conf-parser.h
`DEFINE_CONFIG_PARSE_ENUM`: `Storage=` values are case-sensitive, an invalid or empty value is
logged and ignored, the earlier setting stays). Main journald.conf says `Storage=volatile`;
`/usr/lib/systemd/journald.conf.d/20-reset.conf` has an empty `Storage=`;
`/etc/systemd/journald.conf.d/30-case.conf` says `Storage=Persistent` and `SyncIntervalSec=30S`
(both invalid). Drop-ins from all directories apply in file-name order. journald stays
volatile: `journal_storage=volatile`, `journal_persistent=0`, sync interval the default 300 s,
although `/var/log/journal` exists on ext4. `/proc/net/route` has the default route on `eno1`,
which doctor's netconsole fix names.
""")
    t.mount(("/", "ext4", "/dev/mapper/pve-root"), ("/run", "tmpfs", "tmpfs"))
    t.write("etc/systemd/journald.conf", "[Journal]\nStorage=volatile\n#SyncIntervalSec=5m\n")
    t.write("usr/lib/systemd/journald.conf.d/20-reset.conf", "[Journal]\nStorage=\n")
    t.write("etc/systemd/journald.conf.d/30-case.conf", "[Journal]\nStorage=Persistent\nSyncIntervalSec=30S\n")
    # The default route, for doctor's netconsole fix (interface names from a real PVE host).
    t.write("proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eno1\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eno1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    t.write("var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "")
    t.crash()

    t = forensics_node("forensics-rsyslog-includes", """
# forensics-rsyslog-includes

rsyslog as Debian ships it (`$IncludeConfig /etc/rsyslog.d/*.conf` in the stock layout of
/etc/rsyslog.conf) with `50-local.conf` ending in a comment and no final newline, then
`90-remote.conf` forwarding everything to a log host. Each file is its own: the comment must
not swallow the next file's first line. Also present and not read by rsyslog: `README` and
`90-remote.conf.dpkg-old` in rsyslog.d (not `*.conf`), and a RainerScript
`include(file="/etc/rsyslog.d/extra/*.conf" mode="optional")` naming a directory that does not
exist. syslog-ng is configured too (`@include "scl.conf"` and `conf.d/*.conf`) with file
destinations only. Expected: `remote_logging_via="rsyslog"`, no `no_remote_logging`. Proxmox VE
installs neither daemon (journal only), so `usr/sbin/rsyslogd` and `usr/sbin/syslog-ng` are
present to say they are installed: a configuration without its program (removed, not purged)
forwards nothing.
""")
    t.mount(("/", "ext4", "/dev/mapper/pve-root"))
    t.write("etc/rsyslog.conf", DEBIAN_RSYSLOG_CONF + 'include(file="/etc/rsyslog.d/extra/*.conf" mode="optional")\n')
    t.write("usr/sbin/rsyslogd", "")
    t.write("etc/rsyslog.d/50-local.conf", "local7.*\t-/var/log/boot.log\n# keep boot messages apart")
    t.write("etc/rsyslog.d/90-remote.conf", "*.* @@logs.example.org:514\n")
    t.write("etc/rsyslog.d/90-remote.conf.dpkg-old", "*.* @@old-loghost:514\n")
    t.write("etc/rsyslog.d/README", "*.* @@not-a-config:514\n")
    t.write("etc/syslog-ng/syslog-ng.conf", '@version: 3.38\n@include "scl.conf"\n'
            'source s_src { system(); internal(); };\n'
            'destination d_syslog { file("/var/log/syslog"); }; # was: network("10.0.0.9")\n'
            'log { source(s_src); destination(d_syslog); };\n'
            '@include "/etc/syslog-ng/conf.d/*.conf"\n')
    t.write("etc/syslog-ng/conf.d/10-kern.conf", 'destination d_kern { file("/var/log/kern.log"); };\n')
    t.write("usr/sbin/syslog-ng", "")
    t.write("var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "")
    t.crash()

    t = forensics_node("forensics-unreadable-configs", """
# forensics-unreadable-configs

Every way off the node is configured in a file vigil cannot read: rsyslog's
`/etc/rsyslog.d/90-remote.conf`, syslog-ng's main file, the enabled systemd-journal-upload's
`journal-upload.conf.d/90-url.conf` and netconsole's configfs `enabled` attribute are symlink
loops (the one unreadable file git can keep and root cannot read; permission is tested on a
copy run as `nobody`), and so is a journald drop-in after a `Storage=persistent` main file.
Unknown is not "no": no `no_remote_logging` finding, no `remote_logging`, `netconsole`,
`journal_storage`, `journal_sync_interval_s` or `journal_persistent` field,
`unchecked_ids="journal_not_persistent,no_remote_logging"`, and each of the 5 failed reads
counted in `vigil_collector,collector=crash_forensics errors`.
""")
    t.mount(("/", "ext4", "/dev/mapper/pve-root"))
    t.write("etc/rsyslog.conf", DEBIAN_RSYSLOG_CONF)
    t.write("usr/sbin/rsyslogd", "")
    t.write("usr/sbin/syslog-ng", "")
    t.link("etc/rsyslog.d/90-remote.conf", "90-remote.conf")
    t.link("etc/syslog-ng/syslog-ng.conf", "syslog-ng.conf")
    t.link("etc/systemd/system/multi-user.target.wants/systemd-journal-upload.service",
           "/usr/lib/systemd/system/systemd-journal-upload.service")
    t.write("etc/systemd/journal-upload.conf", "[Upload]\n# URL=\n")
    t.link("etc/systemd/journal-upload.conf.d/90-url.conf", "90-url.conf")
    t.link("sys/kernel/config/netconsole/target1/enabled", "enabled")
    t.write("etc/systemd/journald.conf", "[Journal]\nStorage=persistent\n")
    t.link("etc/systemd/journald.conf.d/10-local.conf", "10-local.conf")
    t.write("var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "")
    t.crash()


def apply_mtimes():
    for name in os.listdir(OUT):
        tsv = os.path.join(OUT, name, "mtimes.tsv")
        if os.path.exists(tsv):
            for line in open(tsv):
                rel, t = line.rstrip("\n").split("\t")
                os.utime(os.path.join(OUT, name, rel), (int(t), int(t)), follow_symlinks=False)


def keep_empty_dirs():
    """git stores no empty directory; several fixtures need them (trap directories,
    a device directory with nothing in it, drivers/ link targets)."""
    for dirpath, dirnames, filenames in os.walk(OUT):
        if not dirnames and not filenames:
            open(os.path.join(dirpath, ".gitkeep"), "w").close()


if __name__ == "__main__":
    build_all()
    keep_empty_dirs()
    apply_mtimes()
    print("fixtures written to", OUT)
