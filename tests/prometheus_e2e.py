#!/usr/bin/env python3
"""Assertions for tests/prometheus-e2e.sh: what node_exporter served after
reading vigil's textfile.

1. `node_textfile_scrape_error 0`: the textfile collector parsed the file.
2. Every sample vigil wrote is served, with the same value (labels compared
   without empty values: node_exporter fills a family's missing labels with "").
3. Values agree with vigil's line protocol of the same fixture, unit
   conversions included (spot checks on each kind of family).
"""
import argparse
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from telegraf_e2e import parse_lp  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    out, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a sample: {line!r}")
        labels = frozenset((k, unescape(v)) for k, v in LABEL.findall(m.group(2) or "") if v != "")
        out[(m.group(1), labels)] = float(m.group(3))
    return out, types


def main():
    ap = argparse.ArgumentParser()
    for a in ("served", "file", "lp"):
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()
    served, served_types = parse(open(a.served).read())
    mine, my_types = parse(open(a.file).read())
    passed, failed = 0, []

    def check(label, ok, detail=""):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failed.append(f"{label}: {detail}")

    check("node_textfile_scrape_error", served.get(("node_textfile_scrape_error", frozenset())) == 0.0,
          str(served.get(("node_textfile_scrape_error", frozenset()))))
    check("vigil families", len(my_types) > 20, f"only {len(my_types)}")
    for name, kind in my_types.items():
        check(f"TYPE {name}", served_types.get(name) == kind, f"{kind} vs {served_types.get(name)}")
        check(f"name {name}", name.startswith("vigil_") and re.fullmatch(r"[a-z0-9_]+", name) is not None)
        if kind == "counter":
            check(f"counter {name}", name.endswith("_total"))
    for key, v in mine.items():
        check(f"served {key[0]}{dict(key[1])}", served.get(key) == v, f"file {v}, served {served.get(key)}")

    def prom(name, **labels):
        return mine.get((name, frozenset((k, v) for k, v in labels.items() if v != "")))

    for name, tags, fields, _ in parse_lp(open(a.lp).read()):
        addr = {"address": tags["address"]} if "address" in tags else {}
        if name == "pcie_link":
            for f, p in (("width", "vigil_pcie_link_width"), ("speed_gts", "vigil_pcie_link_speed_gigatransfers_per_second"),
                         ("link_up", "vigil_pcie_link_up")):
                if f in fields:
                    check(f"{p} {addr}", prom(p, **addr) == fields[f], f"lp {fields[f]}, prom {prom(p, **addr)}")
        elif name == "pcie_aer":
            p = "vigil_pcie_aer_errors_total"
            got = prom(p, severity=tags["severity"], **addr)
            check(f"{p} {tags}", got == fields.get("total"), f"lp {fields.get('total')}, prom {got}")
        elif name == "pcie_device":
            labels = {k: v for k, v in tags.items()}
            if "driver" in fields:
                labels["driver"] = fields["driver"]
            hit = [k for k in mine if k[0] == "vigil_pcie_device_info" and set(labels.items()) <= set(k[1])]
            check(f"vigil_pcie_device_info {addr}", len(hit) == 1, f"{len(hit)} series with {labels}")
        elif name == "vigil" and "uptime_s" in fields:
            check("vigil_uptime_seconds", prom("vigil_uptime_seconds") == fields["uptime_s"])
        elif name == "pcie_platform" and "cmdline" in fields:
            hit = [k for k in mine if k[0] == "vigil_pcie_platform_info" and ("cmdline", fields["cmdline"]) in k[1]]
            check("cmdline label, escapes undone", len(hit) == 1, fields["cmdline"])
    for f in failed:
        print("FAIL", f)
    print(f"prometheus-e2e: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
