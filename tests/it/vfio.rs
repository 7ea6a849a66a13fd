//! VFIO passthrough and IOMMU groups: the fixtures' point, the Proxmox
//! expectations table, and an unprivileged run.

use std::collections::BTreeSet;

use vigil_collector::vfio::hostpci::{mapping_paths, parse_vm_config, resolve, HostPci};

use crate::util::*;

fn collect(name: &str) -> Vec<Point> {
    let out = run_once(&fixture(name), &[]);
    assert_eq!(out.status.code(), Some(0));
    parse_lp(&String::from_utf8(out.stdout).expect("utf8"))
}

fn group<'a>(ps: &'a [Point], g: &str) -> &'a Point {
    points(ps, "iommu_group")
        .find(|p| p.tags["group"] == g)
        .expect("group line")
}

fn platform(ps: &[Point]) -> &Point {
    points(ps, "pcie_platform").next().expect("platform")
}

#[test]
fn healthy_passthrough_node() {
    let ps = collect("passthrough-gpu-vfio");
    let g = group(&ps, "8");
    assert_eq!(
        (
            int(g, "viable"),
            int(g, "vfio_devices"),
            string(g, "members").as_deref()
        ),
        (Some(1), Some(2), Some("0000:06:00.0,0000:06:00.1"))
    );
    for addr in ["0000:06:00.0", "0000:06:00.1"] {
        let v = one(&ps, "vfio_device", addr);
        assert_eq!(v.tags["group"], "8");
        assert_eq!(
            (int(v, "bound"), int(v, "intended"), int(v, "in_use")),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(
            (
                int(v, "holder_pid"),
                string(v, "holder").as_deref(),
                string(v, "vmid").as_deref()
            ),
            (Some(4242), Some("kvm"), Some("100"))
        );
        assert_eq!(string(v, "configured_vmids").as_deref(), Some("100"));
        assert_eq!(int(v, "host_companions"), Some(0));
    }
    let p = platform(&ps);
    assert_eq!(
        (
            int(p, "iommu_enabled"),
            int(p, "iommu_groups"),
            int(p, "iommu_passthrough")
        ),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(
        (
            int(p, "interrupt_remapping"),
            int(p, "vfio_unsafe_interrupts"),
            int(p, "acs_override")
        ),
        (Some(1), Some(0), Some(0))
    );
}

#[test]
fn a_group_shared_with_a_host_nic_is_not_viable() {
    let ps = collect("vfio-group-not-viable");
    let g = group(&ps, "1");
    assert_eq!(
        (
            int(g, "viable"),
            int(g, "bridges"),
            int(g, "vfio_devices"),
            int(g, "other_devices")
        ),
        (Some(0), Some(1), Some(2), Some(1))
    );
    assert_eq!(
        int(one(&ps, "vfio_device", "0000:01:00.0"), "group_viable"),
        Some(0)
    );
    assert!(
        points(&ps, "vfio_device").all(|p| p.tags["address"] != "0000:02:00.0"),
        "the NIC is not a vfio device"
    );
}

#[test]
fn acs_override_and_unsafe_interrupts_are_flagged() {
    let ps = collect("vfio-acs-override");
    assert_eq!(int(platform(&ps), "acs_override"), Some(1));
    let ps = collect("vfio-unsafe-interrupts");
    let p = platform(&ps);
    assert_eq!(
        (
            int(p, "vfio_unsafe_interrupts"),
            int(p, "interrupt_remapping")
        ),
        (Some(1), Some(0))
    );
}

#[test]
fn misbound_gpu_and_a_companion_left_on_the_host() {
    let ps = collect("vfio-misbound");
    let gpu = one(&ps, "vfio_device", "0000:01:00.0");
    assert_eq!(
        (
            int(gpu, "bound"),
            int(gpu, "intended"),
            string(gpu, "driver").as_deref()
        ),
        (Some(0), Some(1), Some("nouveau"))
    );
    assert_eq!(
        string(gpu, "intended_by").as_deref(),
        Some("cmdline,modprobe")
    );
    assert_eq!(
        string(gpu, "configured_vmids").as_deref(),
        Some("101"),
        "template 999 is ignored"
    );
    let passed = one(&ps, "vfio_device", "0000:02:00.0");
    assert_eq!(
        (int(passed, "bound"), int(passed, "host_companions")),
        (Some(1), Some(1))
    );
    assert_eq!(
        string(passed, "host_companion_addresses").as_deref(),
        Some("0000:02:00.1")
    );
    // /usr/lib/modprobe.d/vfio.conf (ids=dead:beef) is hidden by /etc/modprobe.d/vfio.conf.
    assert_eq!(int(passed, "intended"), Some(0));
}

/// `hostpci0: x-vga=1,pcie=1,host=02:00` names the slot after its options: Proxmox
/// reads `host=` anywhere (only the first item used to be looked at).
#[test]
fn hostpci_with_options_first_still_names_the_device() {
    let ps = collect("vfio-misbound");
    for addr in ["0000:02:00.0", "0000:02:00.1"] {
        assert_eq!(
            string(one(&ps, "vfio_device", addr), "configured_vmids").as_deref(),
            Some("102"),
            "{addr}"
        );
    }
}

/// A `driver` link that could not be read is an unknown driver, not "not vfio":
/// no `bound`, no `driver`, and no viability verdict for its group.
#[test]
fn an_unreadable_driver_link_is_not_a_misbinding() {
    let ps = collect("vfio-misbound");
    let gpu = one(&ps, "vfio_device", "0000:03:00.0");
    assert_eq!(int(gpu, "intended"), Some(1));
    assert_eq!(
        (int(gpu, "bound"), string(gpu, "driver")),
        (None, None),
        "was bound=0i intended=1i"
    );
    assert_eq!(int(gpu, "group_viable"), None);
    assert_eq!(int(group(&ps, "5"), "viable"), None);
    assert_eq!(
        string(one(&ps, "pcie_device", "0000:03:00.0"), "driver"),
        None
    );
}

#[test]
fn iommu_off_node() {
    let ps = collect("iommu-off");
    let p = platform(&ps);
    assert_eq!(
        (int(p, "iommu_enabled"), int(p, "iommu_groups")),
        (Some(0), Some(0))
    );
    assert_eq!(points(&ps, "iommu_group").count(), 0);
    let v = one(&ps, "vfio_device", "0000:01:00.0");
    assert_eq!(
        (int(v, "bound"), int(v, "intended"), v.tags.get("group")),
        (Some(0), Some(1), None)
    );
}

/// The parser against proxmox/qemu-server's own cfg2cmd expectations.
#[test]
fn hostpci_parser_matches_qemu_server_expectations() {
    let dir = repo().join("tests/data/oracles/proxmox-qemu-server-tests");
    let csv = std::fs::read_to_string(dir.join("hostpci_expectations.csv")).expect("csv");
    // The mocked host inventory of run_config2command_tests.pl (header comment of the CSV).
    let inventory: BTreeSet<String> = [
        "0000:00:43.1",
        "0000:00:f4.0",
        "0000:00:ff.1",
        "0000:0f:f2.0",
        "0000:d0:13.0",
        "0000:d0:15.1",
        "0000:d0:15.2",
        "0000:d0:17.0",
        "0000:f0:42.0",
        "0000:f0:43.0",
        "0000:f0:43.1",
        "1234:f0:43.1",
        "0000:01:00.4",
        "0000:01:00.5",
        "0000:01:00.6",
        "0000:07:10.0",
        "0000:07:10.1",
        "0000:07:10.4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The test's mocked mappings: someNic has two NIC functions on this node.
    let mapping = "someNic\n\tmap id=8086:10ca,node=localhost,path=0000:07:10.0\n\tmap id=8086:10ca,node=localhost,path=0000:07:10.1\n";
    let mut checked = 0;
    for line in csv.lines().filter(|l| l.starts_with('"')) {
        let cols: Vec<String> = line
            .split("\",\"")
            .map(|c| c.trim_matches('"').to_string())
            .collect();
        let (file, key, expected) = (&cols[0], &cols[1], &cols[3]);
        let vm = parse_vm_config(&std::fs::read_to_string(dir.join(file)).expect("conf"));
        let entry = vm
            .entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e.clone())
            .expect("entry parsed");
        if expected.starts_with("(none: template") {
            assert!(vm.template, "{file}: template VMs take nothing");
            checked += 1;
            continue;
        }
        let got: Vec<String> = match &entry {
            HostPci::Ids(ids) => resolve(ids, &inventory),
            HostPci::Mapping(name) => {
                resolve(&mapping_paths(mapping, name, "localhost"), &inventory)
            }
        };
        if expected.starts_with("/sys/bus/mdev") {
            // A mediated device (vGPU) is not a PCI function vigil reports on.
            assert_eq!(entry, HostPci::Mapping("someGpu".into()));
            checked += 1;
            continue;
        }
        let want: Vec<String> = expected.split(' ').map(str::to_string).collect();
        match entry {
            // A mapping names a pool; QEMU takes one free member, vigil reports all candidates.
            HostPci::Mapping(_) => assert!(
                want.iter().all(|w| got.contains(w)),
                "{file} {key}: {got:?} lacks {want:?}"
            ),
            HostPci::Ids(_) => assert_eq!(got, want, "{file} {key}"),
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked}");
}

/// Telegraf runs vigil as an unprivileged user: /proc/<pid>/fd of other users
/// cannot be listed. Then no holder fields, `unavailable=permission`, no error storm.
#[test]
fn unprivileged_run_reports_holders_unavailable() {
    // As the kernel has it: another user's fd directory is 0500, owned by that user (root here).
    let Some((_tmp, root)) = unprivileged_copy("passthrough-gpu-vfio", "proc/4242/fd", 0o500)
    else {
        return;
    };
    let out = as_nobody()
        .args(["--once", "--fake-time", FAKE_TIME, "--root"])
        .arg(&root)
        .output()
        .expect("run as nobody");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).lines().count() <= 5,
        "no error storm"
    );
    let ps = parse_lp(&String::from_utf8(out.stdout).expect("utf8"));
    let v = one(&ps, "vfio_device", "0000:06:00.0");
    assert_eq!(
        (int(v, "in_use"), int(v, "holder_pid"), string(v, "vmid")),
        (None, None, None)
    );
    assert_eq!(int(v, "bound"), Some(1), "the rest still works");
    let c = points(&ps, "vigil_collector")
        .find(|p| p.tags["collector"] == "vfio_device")
        .expect("status");
    assert_eq!(string(c, "unavailable").as_deref(), Some("permission"));
    assert_eq!(int(c, "errors"), Some(0));
}
