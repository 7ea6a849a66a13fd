#!/usr/bin/env python3
"""Time from a kernel record appended to the fixture's dev/kmsg to its row in InfluxDB.

Run by tests/telegraf-e2e.sh while Telegraf runs vigil (execd, following dev/kmsg) with the
agent's default 10 s flush and telegraf-snippets/vigil-fast-output.conf. The record is stamped
as the kernel would stamp it now (microseconds since boot, boot time from the fixture's
/proc/stat); the figure must stay within --max seconds.
"""
import argparse
import json
import sys
import time
import urllib.parse
import urllib.request


def rows(url, db, q):
    data = urllib.parse.urlencode({"db": db, "q": q}).encode()
    with urllib.request.urlopen(url + "/query", data=data, timeout=5) as r:
        res = json.load(r)["results"][0]
    return res.get("series", [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--max", type=float, default=2.0)
    args = ap.parse_args()
    # Telegraf and vigil are up once the first heartbeat is in (fast output: about 1 s).
    deadline = time.monotonic() + 15
    while not rows(args.url, args.db, 'SELECT last("uptime_s") FROM "vigil"'):
        if time.monotonic() > deadline:
            print("kmsg latency: no heartbeat within 15 s")
            return 1
        time.sleep(0.05)
    btime = next(int(l.split()[1]) for l in open(f"{args.root}/proc/stat") if l.startswith("btime "))
    seq = 990
    msg = "NVRM: Xid (PCI:0000:06:00): 79, pid=4250, name=kvm, GPU has fallen off the bus."
    appended = time.monotonic()
    us = int((time.time() - btime) * 1e6)
    with open(f"{args.root}/dev/kmsg", "a") as f:
        f.write(f"3,{seq},{us},-;{msg}\n")
    q = f'SELECT "message" FROM "kernel_event" WHERE "seq" = {seq}'
    while not rows(args.url, args.db, q):
        if time.monotonic() - appended > 10:
            print("kmsg latency: the record did not arrive within 10 s")
            return 1
        time.sleep(0.02)
    took = time.monotonic() - appended
    print(f"kmsg latency: record appended -> row in InfluxDB in {took:.2f} s (limit {args.max:.1f} s)")
    return 0 if took <= args.max else 1


if __name__ == "__main__":
    sys.exit(main())
