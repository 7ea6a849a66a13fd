#!/usr/bin/env python3
"""Timing, memory and determinism for tools/perf-compare.sh."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time


def run_once(cmd, devnull):
    """Wall and CPU (user + system, all threads) seconds of one run of cmd."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvp(cmd[0], cmd)
    _, _, ru = os.wait4(pid, 0)
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime


def timings(cmds, rounds=25, raw=False):
    """Run the commands in turn, `rounds` times, so that they share the
    machine's drift and noise. Per command: median wall and CPU ms, and the
    medians of its per-round ratios to the last command (the floor). A
    command is an argv, or a function of /dev/null's descriptor returning
    wall and CPU seconds. With `raw`, also each command's (wall, CPU) per
    round."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    runs = [[] for _ in cmds]
    for _ in range(rounds):
        for i, c in enumerate(cmds):
            runs[i].append(c(devnull) if callable(c) else run_once(c, devnull))
    os.close(devnull)
    floor = runs[-1]
    out = []
    for r in runs:
        out.append((
            statistics.median(w for w, _ in r) * 1000,
            statistics.median(c for _, c in r) * 1000,
            statistics.median(w / fw for (w, _), (fw, _) in zip(r, floor)),
            statistics.median(c / fc for (_, c), (_, fc) in zip(r, floor)),
        ))
    return (out, runs) if raw else out


def peak_rss_kib(cmd):
    """Peak RSS of one run of cmd, measured in a fresh child python."""
    # GNU time forks from a tiny process; a Python child would count Python's own pages.
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def median_peak_rss_kib(cmd, runs=3):
    """Median peak RSS of a few runs: how far threads overlap, and so how
    many malloc arenas are touched at once, varies from run to run."""
    return statistics.median(peak_rss_kib(cmd) for _ in range(runs))


def rss_target_mib(functions):
    """Issue 20's peak RSS targets for --once: 8 MiB up to 460 functions,
    12 MiB up to 2,000; none set beyond."""
    if functions <= 460:
        return 8
    return 12 if functions <= 2000 else None


def rss_kib(pid, fields=("VmRSS",)):
    """The sum of some /proc/PID/status sizes, in KiB."""
    total = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.split(":")[0] in fields:
                total += int(line.split()[1])
    return total


class Execd:
    """A long-running vigil triggered through stdin, as Telegraf runs it. A
    batch ends with its vigil_collector lines, one per collector (counted on a
    `--once` run): after the first, a long-running process leaves unchanged
    facts out, so batches are shorter and their length says nothing."""

    def __init__(self, vigil, args, stderr=None):
        once = subprocess.run([vigil, "--once", *args], capture_output=True, text=True).stdout
        self.per_batch = sum(1 for line in once.splitlines() if line.startswith("vigil_collector,"))
        self.p = subprocess.Popen([vigil, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)

    def trigger(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        seen = 0
        while seen < self.per_batch:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("vigil ended mid-batch")
            seen += line.startswith("vigil_collector,")


def execd_growth(vigil, root, collections):
    """Anonymous memory (heap, stacks; resident or swapped) after 1,000
    collections and at the end: where a leak would show. VmRSS also counts
    the binary's mapped pages, which the kernel reclaims and faults back as
    it likes: on the development VM, whose kernel runs a DAMON pageout
    scheme, one sample found 921 KiB and the next 6,064."""
    e = Execd(vigil, ["--root", root, "--fake-time", "1"])
    samples = {}
    for i in range(1, collections + 1):
        e.trigger()
        if i in (1000, collections):
            samples[i] = rss_kib(e.p.pid, ("RssAnon", "VmSwap"))
    e.p.stdin.close()
    e.p.wait(timeout=10)
    return samples[1000], samples[collections]


def proc_cpu_s(pid):
    """User + system seconds of a process, all its threads, ended ones too."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm_vs_cold(vigil, root, rounds):
    """CPU ms of a cold `vigil --once` (median) and of a warm execd trigger
    (mean: /proc counts in clock ticks, so the triggers are summed), in
    turn, so that they share the machine's noise; and the execd process's
    RSS at the end. The first two triggers (the cold read and the first
    warm one) are not counted."""
    once = [vigil, "--once", "--root", root]
    e = Execd(vigil, ["--root", root], stderr=subprocess.DEVNULL)
    p, trigger = e.p, e.trigger
    trigger()
    trigger()
    devnull = os.open(os.devnull, os.O_WRONLY)
    cold, warm = [], 0.0
    for _ in range(rounds):
        cold.append(run_once(once, devnull)[1])
        before = proc_cpu_s(p.pid)
        trigger()
        warm += proc_cpu_s(p.pid) - before
    os.close(devnull)
    rss = rss_kib(p.pid)
    p.stdin.close()
    p.wait(timeout=30)
    return statistics.median(cold) * 1000, warm / rounds * 1000, rss


# The file system calls traced: what traced_io counts and ioreplay replays.
TRACED = "openat,openat2,open,read,pread64,close,getdents64,readlinkat,statx,fstat,newfstatat"
# One file per thread (-ff), each call stamped (-ttt, to merge the threads in
# time order), descriptors shown with their paths (-y).
STRACE = ["strace", "-ff", "-ttt", "-qq", "-y", "-e", "trace=" + TRACED]


def cold_trace(vigil, root, prefix):
    """strace of one `vigil --once`, into prefix.*. Tracing slows every call
    down: a long deadline, so the whole tree is read."""
    subprocess.run([*STRACE, "-o", prefix, vigil, "--once", "--deadline", "60s", "--root", root],
                   stdout=subprocess.DEVNULL, check=True)


def warm_trace(vigil, root, prefix):
    """strace -ff -ttt -y of one warm execd trigger (the third), into
    prefix.*: strace attaches to the idle process and leaves when the batch
    is out. Read by traced_io and replay_ops alike."""
    e = Execd(vigil, ["--root", root, "--deadline", "60s"], stderr=subprocess.DEVNULL)
    e.trigger()
    e.trigger()
    tracer = subprocess.Popen([*STRACE, "-o", prefix, "-p", str(e.p.pid)], stderr=subprocess.PIPE, text=True)
    # strace names a file for each thread it attached to: then it is in.
    base = os.path.basename(prefix)
    threads = len(os.listdir(f"/proc/{e.p.pid}/task"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(n.startswith(base + ".") for n in os.listdir(os.path.dirname(prefix))) >= threads:
            break
        time.sleep(0.01)
    e.trigger()
    tracer.terminate()
    tracer.wait(timeout=30)
    e.p.stdin.close()
    e.p.wait(timeout=30)


# Rounds of warm vs cold on the large tree: 16 take about 4 s. With 8, runs
# of the same code read 0.49 to 0.52, close to the target either way.
BIG_ROUNDS = 16

COLLECTORS = "pcie_device,pcie_link,pcie_aer,pcie_aer_status,pcie_aspm,pcie_platform,iommu_group,vfio_device,crash_forensics,vigil"


def execd_batches(vigil, root, extra, n=2):
    """Bytes of the first n collections of one execd process (kernel events,
    which stream on their own, left out)."""
    # A realistic 19-digit timestamp: it is 20 bytes of every line.
    p = subprocess.Popen([vigil, "--root", root, "--fake-time", "1700000000000000000", "--collectors", COLLECTORS, *extra],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sizes = []
    for _ in range(n):
        p.stdin.write(b"\n")
        p.stdin.flush()
        size, seen = 0, 0
        while seen < len(COLLECTORS.split(",")):
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("vigil ended mid-batch")
            size += len(line)
            seen += line.startswith(b"vigil_collector,")
        sizes.append(size)
    p.stdin.close()
    p.wait(timeout=30)
    return sizes


def traced_io(prefix, root):
    """Regular files opened (path -> count) and directories listed to the end
    (path -> count) in the strace -ff -ttt -y files starting with prefix."""
    opened, listed = {}, {}
    d = os.path.dirname(prefix)
    for name in os.listdir(d):
        if not name.startswith(os.path.basename(prefix) + "."):
            continue
        for line in open(os.path.join(d, name)):
            line = re.sub(r'^\d+\.\d+ ', '', line)
            # openat2 under --root (resolved inside it); O_PATH opens only stat.
            m = re.match(r'(?:openat2|openat|open)\(.*\) = \d+<(.*)>$', line.strip())
            if m and "O_PATH" in line:
                m = None
            if m and m.group(1).startswith(root + "/") and os.path.isfile(m.group(1)):
                opened[m.group(1)] = opened.get(m.group(1), 0) + 1
            # A listing is complete when getdents64 returns 0.
            m = re.match(r'getdents64\(\d+<(.*)>, .*\) = 0$', line.strip())
            if m:
                listed[m.group(1)] = listed.get(m.group(1), 0) + 1
    return opened, listed


def replay_ops(prefix):
    """The file system calls of an `strace -ff -ttt -y` trace (one file per
    thread, prefix.*), as ops for the ioreplay example, in the order the calls
    began across threads: `open AT NAME FLAGS RESOLVE RESULT`, `read PATH N`,
    `pread PATH N OFFSET`, `getdents PATH`, `readlink AT NAME`, `stat PATH`,
    `close PATH` (tab-separated; a descriptor is named by its path, as `-y`
    prints it)."""
    stamped = []
    d, base = os.path.dirname(prefix), os.path.basename(prefix) + "."
    for name in sorted(n for n in os.listdir(d) if n.startswith(base)):
        for line in open(os.path.join(d, name)):
            m = re.match(r'^(\d+\.\d+) (.*)$', line.rstrip("\n"))
            if m:
                stamped.append((float(m.group(1)), m.group(2)))
    # Stable: a thread's calls with the same stamp keep their order.
    calls = [c for _, c in sorted(stamped, key=lambda t: t[0])]
    fd = r'(?:\d+|AT_FDCWD)<([^>]*)>'
    forms = [
        (r'^(?:openat|openat2)\(' + fd + r', "([^"]*)", (.*)\)\s+= -?\d+', "open"),
        (r'^read\(' + fd + r', .*, (\d+)\)\s+= ', "read"),
        (r'^pread64\(' + fd + r', .*, (\d+), (\d+)\)\s+= ', "pread"),
        (r'^getdents64\(' + fd + r', ', "getdents"),
        (r'^readlinkat\(' + fd + r', "([^"]*)", ', "readlink"),
        (r'^(?:statx|newfstatat)\(' + fd + r', "", ', "stat"),
        (r'^fstat\(' + fd, "stat"),
        (r'^close\(' + fd + r'\s*\)', "close"),
    ]
    ops = []
    for c in calls:
        for form, op in forms:
            m = re.match(form, c)
            if not m:
                continue
            g = list(m.groups())
            if op == "open":
                args = g.pop()
                flags = re.search(r'flags=([A-Z_|]+)', args)
                flags = flags.group(1) if flags else args.split(",")[0].strip()
                resolve = re.search(r'resolve=([A-Z_|]+)', args)
                result = re.search(r'= \d+<([^>]*)>$', c)
                g += [flags, resolve.group(1) if resolve else "-", result.group(1) if result else "-"]
            ops.append("\t".join([op, *g]))
            break
    return ops


def syscall_floor(replay, empty):
    """The system-call floor as a timings() command: the CPU ioreplay reports
    for its replay loop (reading its ops file is left out) plus a process
    that only starts and exits (`empty`). Wall: the same (one thread)."""
    def run(devnull):
        out = subprocess.run(replay, capture_output=True, text=True).stdout
        loop = float(re.search(r'replay CPU ([0-9.]+) ms', out).group(1)) / 1000
        cpu = loop + run_once(empty, devnull)[1]
        return cpu, cpu
    return run


def replays(a, warm):
    """Ops files for the cold trace (a.trace) and the warm one (`warm`); an
    empty list for the floor program (a process that starts
    and exits); and per replay its calls, the descriptors opened before its
    loop and the calls it skipped for want of a descriptor (more than a few,
    and the floor would be too low to mean anything)."""
    work = os.path.dirname(a.trace)
    ops, warm_ops = os.path.join(work, "cold.ops"), os.path.join(work, "warm.ops")
    replayed = {}
    for name, path, trace in (("cold", ops, a.trace), ("warm", warm_ops, warm)):
        lines = replay_ops(trace)
        with open(path, "w") as f:
            f.writelines(op + "\n" for op in lines)
        out = subprocess.run([a.replay, path], capture_output=True, text=True).stdout
        m = re.search(r'(\d+) calls; (\d+) opened beforehand; (\d+) skipped', out)
        replayed[name] = tuple(int(g) for g in m.groups())
    empty = os.path.join(work, "none")
    open(empty, "w").close()
    return ops, warm_ops, empty, replayed


def main():
    ap = argparse.ArgumentParser()
    for a in ("root", "trace", "functions", "vigil", "floor", "small", "replay"):
        ap.add_argument("--" + a, required=True)
    # --trace: where the straces go (a path prefix in a scratch directory).
    ap.add_argument("--big", help="a larger tree: warm vs cold and RSS only, fewer rounds")
    ap.add_argument("--big-functions")
    ap.add_argument("--native", help="the tree with OS-native AER: warm vs cold only")
    a = ap.parse_args()
    vig = [a.vigil, "--once", "--root", a.root]
    lspci = ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={a.root}/sys/bus/pci", "-vvv"]
    work = os.path.dirname(a.trace)
    cold_trace(a.vigil, a.root, a.trace)
    opened, listed = traced_io(a.trace, a.root)
    files = os.path.join(work, "cold.files")
    with open(files, "w") as f:
        f.writelines(p + "\n" for p in sorted(opened))
    floor = [a.floor, files]
    # What a warm trigger cannot go below: the files it opens, read by the
    # floor, and all its calls, replayed.
    warm = a.trace + "-warm"
    warm_trace(a.vigil, a.root, warm)
    warm_opened, _ = traced_io(warm, a.root)
    warm_files = os.path.join(work, "warm.files")
    with open(warm_files, "w") as f:
        f.writelines(p + "\n" for p in sorted(warm_opened))
    warm_floor = [a.floor, warm_files]
    ops, warm_ops, empty, replayed = replays(a, warm)
    nfiles = len(opened)
    twice = sorted(p for p, n in opened.items() if n > 1)
    relisted = sorted(p for p, n in listed.items() if n > 1)
    # Warm the page cache, then alternate to share the machine's noise.
    for c in (vig, lspci, floor):
        subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    replay = syscall_floor([a.replay, ops], [a.floor, empty])
    summary, runs = timings([vig, lspci, replay, floor], raw=True)
    (t_v, c_v, rw_v, rc_v), (t_l, c_l, rw_l, rc_l), (_, c_r, _, rc_r), (t_f, c_f, _, _) = summary
    # vigil against the system-call floor, round by round.
    rc_vr = statistics.median(v / r for (_, v), (_, r) in zip(runs[0], runs[2]))
    # What is left is vigil's own work (user space and threads), per function.
    own_us = statistics.median((v - r) * 1e6 / int(a.functions) for (_, v), (_, r) in zip(runs[0], runs[2]))
    rss = median_peak_rss_kib(vig)
    cold, warm, execd_rss = warm_vs_cold(a.vigil, a.root, 25)
    native = warm_vs_cold(a.vigil, a.native, 25) if a.native else None
    subprocess.run(warm_floor, stdout=subprocess.DEVNULL)
    warm_replay = syscall_floor([a.replay, warm_ops], [a.floor, empty])
    (_, c_wr, _, _), (_, c_wf, _, _) = timings([warm_replay, warm_floor])
    big = None
    if a.big:
        big_cold, big_warm, big_execd = warm_vs_cold(a.vigil, a.big, BIG_ROUNDS)
        big = (big_cold, big_warm, big_execd, median_peak_rss_kib([a.vigil, "--once", "--root", a.big]))
    out1 = subprocess.run(vig + ["--fake-time", "1"], capture_output=True).stdout
    out2 = subprocess.run(vig + ["--fake-time", "1"], capture_output=True).stdout
    before, after = execd_growth(a.vigil, a.small, 10000)
    n = int(a.functions)
    v1 = ["--aer-detail", "all", "--device-tags", "all", "--refresh", "0"]
    full, steady = execd_batches(a.vigil, a.root, [])
    v1_full, _ = execd_batches(a.vigil, a.root, v1)
    # At a 10 s interval a 5 min refresh rewrites the facts once in 30 collections.
    per_collection = (steady + full / 30) / n
    failures = []
    print(f"tree: {a.functions} PCI functions; vigil opens {nfiles} files per collection")
    print("25 rounds, the four in turn; medians, and medians of each round's ratio to the I/O floor")
    print(f"{'':28}{'wall ms':>10}{'vs floor':>10}{'CPU ms':>10}{'vs floor':>10}")
    for label, t, c, rw, rc in (
        ("I/O floor (same files)", t_f, c_f, 1.0, 1.0),
        ("system-call floor, 1 thread", c_r, c_r, rc_r, rc_r),
        ("vigil --once", t_v, c_v, rw_v, rc_v),
        ("lspci -vvv", t_l, c_l, rw_l, rc_l),
    ):
        print(f"{label:28}{t:10.1f}{rw:10.2f}{c:10.1f}{rc:10.2f}")
    print(f"vigil / lspci: wall {t_v / t_l:.2f}, CPU {c_v / c_l:.2f}; vigil --once CPU vs floor {rc_v:.2f} (target <= 1.3)")
    for name, (calls, before, skipped) in replayed.items():
        print(f"replay of a {name} collection: {calls} calls, {before} descriptors opened beforehand, {skipped} skipped")
    print(f"vigil --once CPU vs the system-call floor (its own file system calls, replayed in one thread "
          f"with nothing between them): {rc_vr:.2f}; vigil's own work above it {own_us:.0f} us per function")
    print(f"line protocol per function: first collection (= --once) {full / n:.0f} B, steady {steady / n:.0f} B, "
          f"per collection with the facts' refresh {per_collection:.0f} B (budget 1000); v1 output {v1_full / n:.0f} B")
    print(f"peak RSS of vigil --once (median of 3): {rss / 1024:.1f} MiB (target <= {rss_target_mib(n)}); execd after 27 collections {execd_rss / 1024:.1f} MiB")
    print("warm execd trigger vs cold --once, in turn (CPU ms; cold: median, warm: mean, /proc clock ticks)")
    print(f"  {n} functions, 25 rounds: cold {cold:.1f}, warm {warm:.1f}, warm/cold {warm / cold:.2f} (target <= 0.5)")
    print(f"  a warm trigger opens {len(warm_opened)} files; their I/O floor {c_wf:.1f} ms CPU "
          f"({c_wf / cold:.2f} of cold); warm vs that floor {warm / c_wf:.2f}")
    print(f"  its file system calls replayed in one thread: {c_wr:.1f} ms CPU ({c_wr / cold:.2f} of cold); "
          f"warm vs that floor {warm / c_wr:.2f}")
    if native:
        nc, nw, _ = native
        print(f"  {n} functions with OS-native AER (counts read), 25 rounds: cold {nc:.1f}, warm {nw:.1f}, "
              f"warm/cold {nw / nc:.2f}")
    if big:
        bc, bw, be, br = big
        print(f"  {a.big_functions} functions, {BIG_ROUNDS} rounds: cold {bc:.1f}, warm {bw:.1f}, warm/cold {bw / bc:.2f} (target <= 0.5); "
              f"peak RSS --once (median of 3) {br / 1024:.1f} MiB (target <= {rss_target_mib(int(a.big_functions))}), execd {be / 1024:.1f} MiB")
    print(f"execd anonymous RSS after 1,000 / 10,000 collections: {before} / {after} KiB (growth {after - before} KiB, target < 1024)")
    print(f"output identical between runs: {out1 == out2}")
    print(f"files opened more than once: {len(twice)}; directories listed more than once: {len(relisted)}")
    for p in twice[:5] + relisted[:5]:
        print("   ", p)
    for functions, peak in ((n, rss), (int(a.big_functions or 0), big[3] if big else None)):
        target = rss_target_mib(functions)
        if peak is not None and target is not None and peak > target * 1024:
            failures.append(f"peak RSS at {functions} functions above {target} MiB")
    if after - before >= 1024:
        failures.append("anonymous RSS grew by 1 MiB or more over 10,000 collections")
    if out1 != out2:
        failures.append("output differs between runs")
    if any(skipped > calls // 100 for calls, _, skipped in replayed.values()):
        failures.append("the replay skipped more than 1% of the traced calls")
    if per_collection > 1000:
        failures.append("more than 1000 bytes of line protocol per function per collection")
    if twice:
        failures.append("a file was opened more than once")
    if relisted:
        failures.append("a directory was listed more than once")
    for f in failures:
        print("FAIL", f)
    print(f"perf-compare: {7 + bool(big) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
