#!/usr/bin/env python3
"""Driver and assertions for tests/aer-derivative.sh (see there)."""
import argparse
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ADDRESS = "0005:00:1c.0"
AER = f"sys/devices/pci0005:00/{ADDRESS}/aer_dev_correctable"
BASE = {"RxErr": 0, "BadTLP": 0, "BadDLLP": 0, "Rollover": 0, "Timeout": 0,
        "NonFatalErr": 0, "CorrIntErr": 0, "HeaderOF": 0, "TOTAL_ERR_COR": 0}
# Counters before each collection: RxErr appears, then grows while BadTLP appears.
STEPS = [{}, {"RxErr": 2, "TOTAL_ERR_COR": 1}, {"RxErr": 3, "BadTLP": 1, "TOTAL_ERR_COR": 2}, {"RxErr": 3, "BadTLP": 1, "TOTAL_ERR_COR": 2}]


def post(url, path, data):
    req = urllib.request.Request(url + path, data=data, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def query(url, q):
    body = post(url, "/query", urllib.parse.urlencode({"db": "deriv", "q": q, "epoch": "ns"}).encode())
    res = json.loads(body)["results"][0]
    if "error" in res:
        raise RuntimeError(res["error"])
    return [v for s in res.get("series", []) for v in s["values"]]


def main():
    ap = argparse.ArgumentParser()
    for a in ("url", "vigil", "root"):
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()
    post(a.url, "/query", urllib.parse.urlencode({"q": "CREATE DATABASE deriv"}).encode())
    p = subprocess.Popen([a.vigil, "--root", a.root, "--collectors", "pcie_aer,pcie_link,pcie_platform,vigil"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    collectors = 4
    for step in STEPS:
        counters = dict(BASE, **step)
        with open(f"{a.root}/{AER}", "w") as f:
            f.writelines(f"{k} {v}\n" for k, v in counters.items())
        p.stdin.write("\n")
        p.stdin.flush()
        batch, seen = [], 0
        while seen < collectors:
            line = p.stdout.readline()
            assert line, "vigil ended mid-batch"
            batch.append(line)
            seen += line.startswith("vigil_collector,")
        post(a.url, "/write?db=deriv&precision=ns", "".join(batch).encode())
        time.sleep(0.05)
    p.stdin.close()
    p.wait(timeout=10)

    where = f"\"address\" = '{ADDRESS}' AND \"severity\" = 'correctable'"
    passed, failed = 0, []

    def check(label, got, want):
        nonlocal passed
        if got == want:
            passed += 1
        else:
            failed.append(f"{label}: got {got!r}, want {want!r}")

    def one(q):
        rows = query(a.url, q)
        return rows[0][1] if rows else None

    for field, rise in (("total", 2), ("rx_err", 3), ("bad_tlp", 1)):
        check(f"spread({field})", one(f'SELECT spread("{field}") FROM "pcie_aer" WHERE {where}'), rise)
        diffs = query(a.url, f'SELECT non_negative_difference("{field}") FROM "pcie_aer" WHERE {where}')
        check(f"sum of non_negative_difference({field})", sum(r[1] for r in diffs), rise)
        ders = query(a.url, f'SELECT non_negative_derivative("{field}", 1s) FROM "pcie_aer" WHERE {where}')
        check(f"non_negative_derivative({field}) > 0 somewhere", any(r[1] > 0 for r in ders), True)
    # The zero of a counter that appeared sits on the previous collection's point.
    first_rx = query(a.url, f'SELECT "rx_err", "total" FROM "pcie_aer" WHERE {where} LIMIT 1')
    check("rx_err's first point is the collection before it rose", [first_rx[0][1], first_rx[0][2]], [0, 0])
    # A fact written in the first collection only is still found by last().
    check("last(cmdline) found", one('SELECT last("cmdline") FROM "pcie_platform"') is not None, True)
    counts = query(a.url, 'SELECT count("cmdline"), count("devices") FROM "pcie_platform"')
    check("cmdline written once in 4 collections", counts[0][1:], [1, len(STEPS)])
    check("last(max_width) found", one(f'SELECT last("max_width") FROM "pcie_link" WHERE "address" = \'{ADDRESS}\'') is not None, True)
    for f in failed:
        print("FAIL", f)
    print(f"aer-derivative: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
