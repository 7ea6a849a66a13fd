#!/usr/bin/env python3
"""Timing, memory and determinism for tools/perf-compare.sh."""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time


def run_median(cmd, n=25):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def peak_rss_kib(cmd):
    """Peak RSS of one run of cmd, measured in a fresh child python."""
    # GNU time forks from a tiny process; a Python child would count Python's own pages.
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def execd_growth(vigil, root, collections):
    once = subprocess.run([vigil, "--once", "--root", root, "--fake-time", "1"], capture_output=True, text=True).stdout
    per_batch = len(once.splitlines())
    p = subprocess.Popen([vigil, "--root", root, "--fake-time", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    samples = {}
    for i in range(1, collections + 1):
        p.stdin.write("\n")
        p.stdin.flush()
        for _ in range(per_batch):
            p.stdout.readline()
        if i in (1000, collections):
            samples[i] = rss_kib(p.pid)
    p.stdin.close()
    p.wait(timeout=10)
    return samples[1000], samples[collections]


def main():
    ap = argparse.ArgumentParser()
    for a in ("root", "files", "functions", "vigil", "floor", "small"):
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()
    vig = [a.vigil, "--once", "--root", a.root]
    lspci = ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={a.root}/sys/bus/pci", "-vvv"]
    floor = [a.floor, a.files]
    nfiles = sum(1 for _ in open(a.files))
    # Warm the page cache, then alternate to share the machine's noise.
    for c in (vig, lspci, floor):
        subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_v, t_l, t_f = run_median(vig), run_median(lspci), run_median(floor)
    rss = peak_rss_kib(vig)
    out1 = subprocess.run(vig + ["--fake-time", "1"], capture_output=True).stdout
    out2 = subprocess.run(vig + ["--fake-time", "1"], capture_output=True).stdout
    before, after = execd_growth(a.vigil, a.small, 10000)
    failures = []
    print(f"tree: {a.functions} PCI functions; vigil opens {nfiles} files per collection")
    print(f"{'':28}{'median ms':>10}{'vs floor':>10}")
    print(f"{'I/O floor (same files)':28}{t_f:10.1f}{1.0:10.2f}")
    print(f"{'vigil --once':28}{t_v:10.1f}{t_v / t_f:10.2f}")
    print(f"{'lspci -vvv':28}{t_l:10.1f}{t_l / t_f:10.2f}")
    print(f"vigil / lspci: {t_v / t_l:.2f}")
    print(f"peak RSS of vigil --once: {rss / 1024:.1f} MiB (target <= 12)")
    print(f"execd RSS after 1,000 / 10,000 collections: {before} / {after} KiB (growth {after - before} KiB, target < 1024)")
    print(f"output identical between runs: {out1 == out2}")
    if rss > 12 * 1024:
        failures.append("peak RSS above 12 MiB")
    if after - before >= 1024:
        failures.append("RSS grew by 1 MiB or more over 10,000 collections")
    if out1 != out2:
        failures.append("output differs between runs")
    for f in failures:
        print("FAIL", f)
    print(f"perf-compare: {3 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
