#!/usr/bin/env python3
"""`vigil postmortem` against a real InfluxDB: writes timelines with past
timestamps (one HTTP POST each), runs the binary on each, checks its JSON and
exit status.

Timelines:
- FCM2250: the incident (../shared/data/incident): a GPU passthrough node with
  pci=noaer and log2ram, idle CPU, last heartbeat 2026-02-09T15:54:50Z at
  uptime 202,913 s, back at 19:12:00Z with uptime 1,089 s. Nothing in the
  data explains it: the expected answer is "reset, no hardware clue" (exit 1).
  The one fact added: Telegraf was restarted once that afternoon, so the host's
  vigil had left a stop mark before (what tells a reset from a shutdown).
- pve-link: a GPU link narrows, slows, a fatal AER, then silence (exit 0).
- pve-orderly: a reboot with the stop mark, two hours ago (default mode).
- pve-flappy: three silences in the last day (--since): same boot, orderly, reset.
- pve-down: silent for an hour and not back (back_at null).
- pve-ghost: Telegraf data but no vigil heartbeat (exit 2, clear message).
"""
import argparse
import base64
import calendar
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

def ts(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def esc(v):
    return v.replace("\\", "\\\\").replace('"', '\\"')


def line(meas, tags, fields, t):
    def tesc(v):
        return v.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")
    tag = "".join(f",{k}={tesc(v)}" for k, v in sorted(tags.items()))
    out = []
    for k, v in fields.items():
        if isinstance(v, bool):
            out.append(f"{k}={int(v)}i")
        elif isinstance(v, int):
            out.append(f"{k}={v}i")
        elif isinstance(v, float):
            out.append(f"{k}={v!r}")
        else:
            out.append(f'{k}="{esc(v)}"')
    return f"{meas}{tag} {','.join(out)} {t}"


class Timeline:
    def __init__(self, host):
        self.host, self.lines = host, []

    def add(self, meas, tags, fields, t):
        self.lines.append(line(meas, dict(tags, host=self.host), fields, t))

    def beats(self, start, end, boot, uptime_at_start, step=10, last_stopping=False):
        t = start
        while t <= end:
            f = {"version": "0.1.0", "boot_id": boot, "uptime_s": float(uptime_at_start + t - start),
                 "duration_us": 900, "errors": 0, "privileged": 1, "devices": 4}
            if last_stopping and t + step > end:
                f["stopping"] = 1
            self.add("vigil", {}, f, t)
            t += step

    def resources(self, start, end, idle=99.8, mem=7.4, cpus=24, step=10):
        rx = tx = io = 0
        for i, t in enumerate(range(start, end + 1, step)):
            self.add("cpu", {"cpu": "cpu-total"}, {"usage_idle": idle + (0.05 if i % 2 else -0.02), "usage_iowait": 0.01}, t)
            self.add("mem", {}, {"used_percent": mem, "available_percent": 100.0 - mem - 0.3}, t)
            self.add("system", {}, {"load1": 0.31, "n_cpus": cpus}, t)
            rx, tx, io = rx + 125_000, tx + 60_000, io + 40
            self.add("net", {"interface": "vmbr0"}, {"bytes_recv": rx, "bytes_sent": tx, "err_in": 0, "err_out": 0, "drop_in": 0, "drop_out": 0}, t)
            self.add("diskio", {"name": "nvme0n1"}, {"io_time": io, "reads": i * 3, "writes": i * 7}, t)

    def post(self, url, db):
        body = ("\n".join(self.lines) + "\n").encode()
        req = urllib.request.Request(f"{url}/write?db={db}&precision=s", data=body, method="POST", headers=AUTH)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 204, r.status
        except urllib.error.HTTPError as e:
            raise SystemExit(f"writing {self.host}: HTTP {e.code}: {e.read().decode()[:500]}")


GPU = {"vendor_id": "10de", "device_id": "2204", "class_id": "0300", "vendor": "NVIDIA Corporation", "device": "GA102 [GeForce RTX 3090]"}


def forensics(tl, t, extra=None):
    f = {"journal_storage": "auto", "journal_persistent": 0, "var_log_in_ram": 1, "log2ram": 1, "ram_logger": "log2ram",
         "log_disk_sync_age_s": 57_290, "journal_sync_interval_s": 300, "remote_logging": 0, "netconsole": 0,
         "pstore_backend": "efi_pstore", "pstore_records": 0, "kdump_loaded": 0, "crashkernel_bytes": 0,
         "nmi_watchdog": 1, "hardlockup_panic": 0, "softlockup_panic": 0, "panic_reboot_s": 0, "hw_watchdog": 0,
         "readiness_score": 15, "findings": 8,
         "finding_ids": "ram_logs,journal_not_persistent,no_remote_logging,no_kdump,no_watchdog,aer_disabled,hardlockup_panic_off,panic_no_reboot"}
    f.update(extra or {})
    f = {k: v for k, v in f.items() if v is not None}
    tl.add("crash_forensics", {}, f, t)


def incident():
    tl = Timeline("FCM2250")
    last = ts("2026-02-09T15:54:50Z")
    boot_a, boot_b = "5b0c7e3a-1d2f-4c1e-9a57-0e6d2f4b8a11", "c3e91f06-7a4b-4f8d-b2a0-91d5e7c4f320"
    # Telegraf restarted at 14:29:50 (config change): vigil left its stop mark.
    tl.beats(last - 5100, last - 5100, boot_a, 202_913 - 5100, last_stopping=True)
    tl.beats(last - 5090, last, boot_a, 202_913 - 5090)
    back = ts("2026-02-09T19:12:00Z")
    tl.beats(back, back + 300, boot_b, 1089)
    cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.17.9-1-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt pcie_aspm=off pci=noaer"
    for t in range(last - 900, last + 1, 10):
        # As a long-running vigil writes it: cmdline on change and every 5 min only.
        plat = {"aer_cmdline_disabled": 1, "aer_native": 0, "aspm_cmdline": "off", "aer_devices": 0, "iommu_enabled": 1}
        if (t - last + 900) % 300 == 10:  # not in the last point
            plat["cmdline"] = cmdline
        tl.add("pcie_platform", {}, plat, t)
        tl.add("pcie_device", dict(GPU, address="0000:01:00.0"), {"driver": "vfio-pci", "power_state": "D0", "d_state": 0, "reachable": 1}, t)
        tl.add("pcie_device", {"address": "0000:00:01.0", "vendor_id": "8086", "device_id": "a70d", "class_id": "0604"}, {"driver": "pcieport", "power_state": "D0", "d_state": 0, "reachable": 1}, t)
        tl.add("pcie_device", {"address": "0000:02:00.0", "vendor_id": "144d", "device_id": "a80a", "class_id": "0108"}, {"driver": "nvme", "power_state": "D0", "d_state": 0, "reachable": 1}, t)
        tl.add("pcie_link", {"address": "0000:01:00.0"}, {"speed_gts": 16.0, "max_speed_gts": 16.0, "width": 16, "max_width": 16, "expected_speed_gts": 16.0, "expected_width": 16, "speed_downgraded": 0, "width_downgraded": 0, "link_up": 1}, t)
        tl.add("pcie_link", {"address": "0000:02:00.0"}, {"speed_gts": 16.0, "max_speed_gts": 16.0, "width": 4, "max_width": 4, "expected_speed_gts": 16.0, "expected_width": 4, "speed_downgraded": 0, "width_downgraded": 0, "link_up": 1}, t)
        tl.add("vfio_device", dict(GPU, address="0000:01:00.0", group="14"), {"driver": "vfio-pci", "bound": 1, "intended": 1, "in_use": 1, "holder": "kvm", "holder_pid": 48213, "vmid": "101", "configured_vmids": "101", "power_state": "D0"}, t)
        forensics(tl, t)
    tl.resources(last - 900, last)
    forensics(tl, back)
    return tl


def link_failure():
    tl = Timeline("pve-link")
    last = ts("2026-03-03T10:00:00Z")
    boot_a, boot_b = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a", "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910"
    tl.beats(last - 3000, last - 3000, boot_a, 86_000, last_stopping=True)
    tl.beats(last - 2990, last, boot_a, 86_010)
    tl.beats(last + 1200, last + 1500, boot_b, 300)
    gpu = dict(GPU, address="0000:41:00.0")
    for t in range(last - 900, last + 1, 10):
        narrowed, slowed, fatal = t >= last - 300, t >= last - 150, t >= last - 10
        tl.add("pcie_link", gpu, {"speed_gts": 2.5 if slowed else 16.0, "max_speed_gts": 16.0, "width": 8 if narrowed else 16, "max_width": 16,
                                  "expected_speed_gts": 16.0, "expected_width": 16, "speed_downgraded": int(slowed), "width_downgraded": int(narrowed), "link_up": 1}, t)
        tl.add("pcie_aer", dict(gpu, severity="correctable"), {"total": 3 if narrowed else 0, "bad_tlp": 2 if narrowed else 0, "rx_err": 1 if narrowed else 0}, t)
        tl.add("pcie_aer", dict(gpu, severity="fatal"), {"total": int(fatal), "malf_tlp": int(fatal)}, t)
        tl.add("pcie_aer_status", gpu, {"devsta_corr_err": int(narrowed), "devsta_nonfatal_err": 0, "devsta_fatal_err": int(fatal), "devsta_unsupp_req": 0,
                                        "uncor_status_names": "MalfTLP" if fatal else "", "cor_status_names": "BadTLP,RxErr" if narrowed else ""}, t)
        tl.add("pcie_device", gpu, {"driver": "vfio-pci", "power_state": "D0", "d_state": 0, "reachable": 1}, t)
        tl.add("pcie_platform", {}, {"cmdline": "quiet intel_iommu=on iommu=pt", "aer_cmdline_disabled": 0, "aer_native": 1}, t)
        forensics(tl, t, {"finding_ids": "no_remote_logging,no_kdump", "readiness_score": 75, "log2ram": 0, "var_log_in_ram": 0, "ram_logger": None, "log_disk_sync_age_s": None, "journal_persistent": 1})
    tl.add("kernel_event", {"category": "aer", "address": "0000:41:00.0"},
           {"message": "vfio-pci 0000:41:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Receiver ID)", "priority": 3, "seq": 90211}, last - 9)
    # The kernel's last words, written after the last heartbeat.
    tl.add("kernel_event", {"category": "lockup"},
           {"message": "watchdog: Watchdog detected hard LOCKUP on cpu 7", "priority": 0, "seq": 90212}, last + 4)
    tl.resources(last - 900, last)
    return tl


def orderly(now):
    tl = Timeline("pve-orderly")
    stop = now - 7200
    tl.beats(stop - 1800, stop, "11111111-2222-4333-8444-555555555555", 40_000, last_stopping=True)
    tl.beats(stop + 130, now - 5, "66666666-7777-4888-9999-aaaaaaaaaaaa", 45)
    tl.resources(stop - 600, stop)
    return tl


def flappy(now):
    tl = Timeline("pve-flappy")
    a, b, c = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002", "aaaaaaaa-0000-4000-8000-000000000003"
    t0 = now - 20 * 3600
    tl.beats(t0, t0 + 3600, a, 5000)                       # 1: a same-boot gap of 5 min (network)
    tl.beats(t0 + 3900, t0 + 7200, a, 5000 + 3900, last_stopping=True)  # 2: orderly reboot
    tl.beats(t0 + 7300, t0 + 36000, b, 60)                 # 3: reset (b marked its stops before? a did: same host)
    tl.beats(t0 + 40000, now - 5, c, 3000)
    return tl


def month(now):
    """30 days of heartbeats every 60 s with one reset in the middle: found
    without reading them all."""
    tl = Timeline("pve-month")
    t0 = now - 30 * 86400
    crash = t0 + 17 * 86400 + 4321
    last = None
    for t in range(t0, now - 5, 60):
        if crash < t < crash + 1800:
            continue
        if t <= crash:
            boot, up, last = "cccccccc-0000-4000-8000-000000000001", 99_000 + t - t0, t
        else:
            boot, up = "cccccccc-0000-4000-8000-000000000002", t - crash - 900
        tl.lines.append(f'vigil,host=pve-month boot_id="{boot}",uptime_s={float(up)!r} {t}')
    # A stop mark long before: this host's vigil marks its stops.
    tl.lines.append(f'vigil,host=pve-month boot_id="cccccccc-0000-4000-8000-000000000000",uptime_s=99.0,stopping=1i {t0 - 3600}')
    return tl, last


def down(now):
    tl = Timeline("pve-down")
    tl.beats(now - 7200, now - 3600, "bbbbbbbb-0000-4000-8000-000000000001", 9000)
    return tl


def ghost(now):
    tl = Timeline("pve-ghost")
    tl.resources(now - 600, now - 60)
    return tl


# InfluxDB runs with auth-enabled: every request carries the admin's credentials.
USER, PASSWORD = "vigil-admin", "s3cret pass"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


# InfluxDB serves https with a self-signed certificate (--ca in main).
CA = []


def run(vigil, url, db, host, *extra, auth=("--user", USER, "--password", PASSWORD)):
    tls = ["--ca-cert", CA[0]] if CA and url.startswith("https:") else []
    cmd = [vigil, "postmortem", "--url", url, "--db", db, "--host", host, *auth, *tls, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--show", action="store_true", help="print the incident's text output")
    ap.add_argument("--ca", help="CA certificate (PEM) of an https InfluxDB")
    a = ap.parse_args()
    if a.ca:
        CA.append(a.ca)
        ctx = ssl.create_default_context(cafile=a.ca)
        urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx)))
    now = int(time.time())
    def query(q, headers):
        # Read the whole answer: InfluxDB sends "200 OK" before it runs the
        # statement, so a response not read to the end does not mean done
        # (a CREATE USER still hashing its password; the next request then
        # finds no admin yet and is refused with 403).
        req = urllib.request.Request(f"{a.url}/query", data=urllib.parse.urlencode({"q": q}).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                res = json.load(r)["results"][0]
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{q}: HTTP {e.code}: {e.read().decode()[:300]}")
        if "error" in res:
            raise SystemExit(f"{q}: {res['error']}")
    # The first admin user may be created without credentials.
    query(f"CREATE USER \"{USER}\" WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES", {})
    query(f'CREATE DATABASE "{a.db}"', AUTH)
    long, month_last = month(now)
    for tl in (incident(), link_failure(), orderly(now), flappy(now), down(now), ghost(now), long):
        tl.post(a.url, a.db)
    failed, passed = [], 0

    def check(name, ok, detail=""):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failed.append(f"{name}: {detail}")

    def js(host, *extra):
        rc, out, err = run(a.vigil, a.url, a.db, host, "--format", "json", *extra)
        try:
            return rc, json.loads(out), err
        except ValueError:
            return rc, None, f"not JSON: {out!r} {err!r}"

    # The incident.
    rc, j, err = js("FCM2250", "--at", "2026-02-09T16:30:00Z")
    check("incident exit 1 (found, no hardware clue)", rc == 1, f"rc={rc} {err}")
    if j:
        check("incident last_heartbeat", j["last_heartbeat"] == "2026-02-09T15:54:50Z", j["last_heartbeat"])
        check("incident last uptime", j["last_uptime_s"] == 202913, j["last_uptime_s"])
        check("incident back_at", j["back_at"] == "2026-02-09T19:12:00Z", j["back_at"])
        check("incident back uptime", j["back_uptime_s"] == 1089, j["back_uptime_s"])
        check("incident boot_at", j["boot_at"] == "2026-02-09T18:53:51Z", j["boot_at"])
        check("incident down_s", j["down_s"] == 10741, j["down_s"])
        check("incident reboot", j["reboot"] == "reset", j["reboot"])
        check("incident explained", j["explained"] is False, j["explained"])
        s = j["suspects"]
        check("incident suspect is the passthrough GPU", bool(s) and s[0]["address"] == "0000:01:00.0" and not s[0]["explains"], s)
        check("incident suspect evidence names the VM", bool(s) and any(e["field"] == "vmid" and e["value"] == "101" for e in s[0]["evidence"]), s)
        verdicts = {r["resource"]: r["verdict"] for r in j["resources"]}
        check("incident resources normal", verdicts == {"cpu": "normal", "mem": "normal", "net": "normal", "diskio": "normal", "system": "normal"}, verdicts)
        check("incident AER blind", "pci=noaer" in j["signals"]["AER counters"], j["signals"])
        lost = " ".join(j["readiness"]["lost"])
        for want in ("log2ram", "no kdump", "pci=noaer", "no pstore record"):
            check(f"incident lost: {want}", want in lost, lost)
        ids = [f["id"] for f in j["fixes"]]
        check("incident fixes are the doctor's", ids[:2] == ["ram_logs", "journal_not_persistent"] and "aer_disabled" in ids, ids)
    rc, text, err = run(a.vigil, a.url, a.db, "FCM2250", "--at", "2026-02-09T16:30:00Z")
    check("incident text exit 1", rc == 1, f"rc={rc} {err}")
    check("incident text", "Last beat  2026-02-09T15:54:50Z" in text and "uptime 202,913 s" in text and "reset" in text, text)
    check("incident text fits 80 columns", all(len(l) <= 80 for l in text.splitlines()), max(text.splitlines(), key=len))
    if a.show:
        print(text)
    # --at inside the silence and at the return give the same silence.
    for at in ("2026-02-09T15:55:00Z", "2026-02-09T19:12:00Z", "2026-02-09"):
        rc, j, err = js("FCM2250", "--at", at)
        check(f"incident --at {at}", j is not None and j["last_heartbeat"] == "2026-02-09T15:54:50Z", (rc, err))

    # A link that degrades, a fatal AER, silence.
    rc, j, err = js("pve-link", "--at", "2026-03-03T10:05:00Z")
    check("link exit 0", rc == 0, f"rc={rc} {err}")
    if j:
        s = j["suspects"]
        check("link reboot reset", j["reboot"] == "reset", j["reboot"])
        check("link top suspect is the GPU", bool(s) and s[0]["address"] == "0000:41:00.0" and s[0]["explains"], s[:1])
        fields = {(e["measurement"], e["field"]) for e in (s[0]["evidence"] if s else [])}
        for want in [("pcie_link", "width"), ("pcie_link", "speed_gts"), ("pcie_aer", "malf_tlp"), ("pcie_aer", "bad_tlp"),
                     ("pcie_aer_status", "devsta_fatal_err"), ("kernel_event", "message")]:
            check(f"link evidence {want}", want in fields, sorted(fields))
        check("link lockup after the last heartbeat", any(x["cause"] == "kernel lockup" and x["evidence"][0]["time"] == "2026-03-03T10:00:04Z" for x in s), s)
        found = " | ".join(s[0]["findings"]) if s else ""
        check("link width drop time", "16 lanes -> 8 lanes at 09:55:00" in found, found)
        check("link fatal AER time", any(e["field"] == "malf_tlp" and e["time"] == "2026-03-03T09:59:50Z" for e in s[0]["evidence"]) if s else False, s)

    # An orderly reboot two hours ago, found without --at.
    rc, j, err = js("pve-orderly")
    check("orderly exit 0", rc == 0, f"rc={rc} {err}")
    if j:
        check("orderly reboot", j["reboot"] == "orderly", j["reboot"])
        check("orderly is not a freeze", "not a freeze" in j["verdict"] and j["suspects"] == [], j["verdict"])
        check("orderly down 130 s", j["down_s"] == 130 - 45, j["down_s"])

    # Every silence of a day.
    rc, j, err = js("pve-flappy", "--since", "1d")
    check("flappy exit 1", rc == 1, f"rc={rc} {err}")
    if j:
        got = [x["reboot"] for x in j["silences"]]
        check("flappy three silences", got == ["none", "orderly", "reset"], got)
    rc, text, err = run(a.vigil, a.url, a.db, "pve-flappy", "--since", "1d")
    check("flappy text lists three", text.count(" -> ") == 3 and text.count(", reset\n") == 1, text)

    # A month of heartbeats: the silence found exactly, reading few of them.
    rc, j, err = js("pve-month")
    check("month exit 1", rc == 1, (rc, err))
    if j:
        want = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(month_last))
        check("month silence", j["last_heartbeat"] == want and j["reboot"] == "reset", (j["last_heartbeat"], want, j["reboot"]))
    m = re.search(r"(\d+) requests to InfluxDB, (\d+) rows read", err)
    check("month read little", m is not None and int(m.group(2)) < 2000, err)
    if m:
        print(f"a month of 60 s heartbeats (43,200 points): {m.group(1)} requests, {m.group(2)} rows read")

    # Still silent.
    rc, j, err = js("pve-down")
    check("down exit 1", rc == 1, f"rc={rc} {err}")
    if j:
        check("down back_at null", j["back_at"] is None and j["still_silent"] is True, j["back_at"])
        check("down for about an hour", 3590 <= j["down_s"] <= 3700, j["down_s"])

    # No vigil data; a wrong URL; no silence.
    rc, out, err = run(a.vigil, a.url, a.db, "pve-ghost")
    check("ghost exit 2", rc == 2, rc)
    check("ghost message", "no vigil heartbeat for host \"pve-ghost\"" in err and "FCM2250" in err, err)
    if CA:
        base = [a.vigil, "postmortem", "--url", a.url, "--db", a.db, "--host", "FCM2250", "--user", USER, "--password", PASSWORD]
        p = subprocess.run(base + ["--ca-cert", "/dev/null"], capture_output=True, text=True, timeout=120)
        check("--ca-cert without a certificate exit 2", p.returncode == 2 and "no PEM certificate" in p.stderr, (p.returncode, p.stderr))
        p = subprocess.run(base, capture_output=True, text=True, timeout=120)
        check("an unknown CA is refused (exit 2)", p.returncode == 2 and "UnknownIssuer" in p.stderr, (p.returncode, p.stderr))
    rc, out, err = run(a.vigil, "http://127.0.0.1:1", a.db, "FCM2250")
    check("unreachable exit 2", rc == 2 and "127.0.0.1:1" in err, (rc, err))
    rc, out, err = run(a.vigil, a.url, "nosuchdb", "FCM2250")
    check("unknown database exit 2", rc == 2 and "database not found" in err, (rc, err))
    rc, out, err = run(a.vigil, a.url, a.db, "pve-orderly", "--at", "2026-02-09T16:00:00Z")
    check("no silence exit 3", rc == 3 and "no silence" in out, (rc, out, err))
    rc, out, err = run(a.vigil, a.url, a.db, "FCM2250", "--at", "yesterday-ish")
    check("bad time exit 2", rc == 2 and "invalid time" in err, (rc, err))

    # Credentials: wrong, none, and the password from the environment.
    rc, out, err = run(a.vigil, a.url, a.db, "FCM2250", auth=("--user", USER, "--password", "wrong"))
    check("wrong password exit 2", rc == 2 and "authentication failed" in err, (rc, err))
    rc, out, err = run(a.vigil, a.url, a.db, "FCM2250", auth=())
    check("no credentials exit 2", rc == 2 and "401" in err, (rc, err))
    env = dict(os.environ, INFLUX_PASSWORD=PASSWORD)
    p = subprocess.run([a.vigil, "postmortem", "--url", a.url, "--db", a.db, "--host", "pve-link", "--user", USER, "--at", "2026-03-03T10:05:00Z", *(["--ca-cert", CA[0]] if CA else [])],
                       capture_output=True, text=True, timeout=120, env=env)
    check("INFLUX_PASSWORD", p.returncode == 0, (p.returncode, p.stderr))

    # InfluxDB 2.x's v1 API takes the token as "Authorization: Token T"; 1.6
    # cannot check that, a stand-in server records what arrives.
    seen = []

    class Stub(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            seen.append((self.path, self.headers.get("Authorization"), urllib.parse.parse_qs(body)))
            out = json.dumps({"results": [{"statement_id": 0}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    stub = http.server.HTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{stub.server_address[1]}"
    rc, out, err = run(a.vigil, stub_url, "telegraf/autogen", "pve1", auth=("--token", "tok-123"))
    stub.shutdown()
    check("token: exit 2 on an empty bucket", rc == 2 and "no vigil heartbeat" in err, (rc, err))
    check("token header", bool(seen) and all(h == "Token tok-123" for _, h, _ in seen), seen)
    check("token: db and epoch", bool(seen) and seen[0][0] == "/query" and seen[0][2].get("db") == ["telegraf/autogen"] and seen[0][2].get("epoch") == ["ns"], seen[:1])

    print(f"postmortem e2e: {passed} checks passed, {len(failed)} failed")
    for f in failed:
        print("  FAIL", f)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
