#!/usr/bin/env python3
"""Assertions for tests/telegraf-e2e.sh, against the InfluxDB that Telegraf wrote to.

1. Every measurement vigil printed for the fixture arrived, each series with the same
   field values (time-dependent fields excepted), and every kernel event by sequence.
2. Every query of the Grafana dashboard (panels and the host variable) and of the post-mortem
   page runs without error and returns rows; every alert rule query runs without error (what
   the rules decide is proven by tests/alert_scenarios.py).
"""
import argparse
import json
import re
import sys
import urllib.parse
import urllib.request

import yaml

VOLATILE = {("vigil", "duration_us"), ("vigil_collector", "duration_us")}
CLOSE = {("crash_forensics", "log_disk_sync_age_s"): 120}


def split_unescaped(s, sep):
    out, cur, i, quoted = [], "", 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur += s[i:i + 2]
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


def parse_lp(text):
    points = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, fields, ts = split_unescaped(line, " ")
        parts = split_unescaped(head, ",")
        tags = dict(tuple(unescape(x) for x in split_unescaped(p, "=")) for p in parts[1:])
        fv = {}
        for f in split_unescaped(fields, ","):
            k, v = split_unescaped(f, "=")[0], f[len(split_unescaped(f, "=")[0]) + 1:]
            if v.startswith('"'):
                fv[unescape(k)] = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif v.endswith("i"):
                fv[unescape(k)] = int(v[:-1])
            else:
                fv[unescape(k)] = float(v)
        points.append((unescape(parts[0]), tags, fv, int(ts)))
    return points


class Influx:
    def __init__(self, url, db):
        self.url, self.db = url, db

    def query(self, q):
        data = urllib.parse.urlencode({"db": self.db, "q": q, "epoch": "ns"}).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=30) as r:
            res = json.load(r)["results"][0]
        if "error" in res:
            raise RuntimeError(res["error"])
        return res.get("series", [])


def lit(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


DS = {"type": "influxdb", "uid": "${DS_INFLUXDB}"}


def dashboard_problems(dash):
    """What a Grafana dashboard must have for vigil (no Grafana here: its schema is AGPL code)."""
    out, ids, cells = [], set(), set()
    for p in dash["panels"]:
        name = f"panel {p.get('id')} {p.get('title')!r}"
        for key in ("id", "title", "type", "description", "datasource", "gridPos", "targets", "fieldConfig"):
            if key not in p:
                out.append(f"{name}: no {key}")
        if p.get("id") in ids:
            out.append(f"{name}: id used twice")
        ids.add(p.get("id"))
        if p.get("datasource") != DS:
            out.append(f"{name}: datasource is not the imported InfluxDB")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            out.append(f"{name}: no unit")
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24:
            out.append(f"{name}: wider than the grid")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    out.append(f"{name}: overlaps another panel at {x},{y}")
                cells.add((x, y))
        for t in p.get("targets", []):
            if t.get("datasource") != DS or not t.get("rawQuery") or not t.get("refId"):
                out.append(f"{name}: target without datasource, rawQuery or refId")
            if t.get("resultFormat") == "time_series" and "$tag_host" not in t.get("alias", ""):
                out.append(f"{name}: series without a legend alias naming the host")
            if "$host" not in t.get("query", ""):
                out.append(f"{name}: query ignores the host variable")
        if "d_state" in json.dumps(p.get("targets")):
            maps = p["fieldConfig"]["defaults"].get("mappings", [])
            texts = {o["text"] for m in maps for o in m.get("options", {}).values()}
            if not {"D0", "D1", "D2", "D3hot", "D3cold"} <= texts:
                out.append(f"{name}: power states without value mappings")
    return out


def main():
    ap = argparse.ArgumentParser()
    for a in ("url", "db", "host", "once", "dashboard", "alerts", "queries"):
        ap.add_argument("--" + a, required=True)
    args = ap.parse_args()
    ix = Influx(args.url, args.db)
    passed, failed = 0, []

    def check(name, ok, detail=""):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failed.append(f"{name}: {detail}")

    once_text = open(args.once).read()
    expected = parse_lp(once_text)
    have = {row[0] for s in ix.query("SHOW MEASUREMENTS") for row in s.get("values", [])}
    for m in sorted({p[0] for p in expected}):
        check(f"measurement {m}", m in have, "did not arrive")

    for name, tags, fields, ts in expected:
        if name == "kernel_event":
            if "seq" in fields:
                rows = ix.query(f'SELECT "message" FROM "kernel_event" WHERE "seq" = {fields["seq"]} AND "host" = {lit(args.host)}')
                check(f"kernel_event seq={fields['seq']}", rows and rows[0]["values"][0][0] == ts, "missing or other time")
            continue
        where = " AND ".join([f'"{k}" = {lit(v)}' for k, v in sorted(tags.items())] + [f'"host" = {lit(args.host)}'])
        # Each field's last value, as a dashboard's last() reads it: a long-running
        # vigil writes facts on change and at the refresh, not in every point.
        sel = ", ".join(f'last("{k}") AS "{k}"' for k in sorted(fields))
        rows = ix.query(f'SELECT {sel} FROM "{name}" WHERE {where}')
        label = name + "," + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        if not rows:
            check(label, False, "no series")
            continue
        cols, vals = rows[0]["columns"], rows[0]["values"][0]
        got = dict(zip(cols, vals))
        for k, v in fields.items():
            if (name, k) in VOLATILE:
                continue
            g = got.get(k)
            tol = CLOSE.get((name, k))
            ok = g is not None and (abs(g - v) <= tol if tol is not None else g == v)
            check(f"{label} {k}", ok, f"vigil {v!r}, influx {g!r}")

    # Every query users import, with Grafana's placeholders filled in.
    def fill(q):
        return (q.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "2s")
                 .replace("/^$host$/", "/^.*$/").replace("/^$category$/", "/^.*$/")
                 .replace("$max_priority", "7").replace("$last_heartbeat", "now()"))

    queries = []
    dash = json.load(open(args.dashboard))
    for problem in dashboard_problems(dash):
        check("dashboard structure", False, problem)
    passed += 1
    for p in dash["panels"]:
        for t in p.get("targets", []):
            queries.append((f"dashboard panel {p['id']} {p['title']!r}", t["query"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            queries.append((f"dashboard variable {v['name']}", v["query"]))
    alerts = yaml.safe_load(open(args.alerts))
    for g in alerts["groups"]:
        for r in g["rules"]:
            for d in r["data"]:
                if "query" in d["model"]:
                    queries.append((f"alert {r['uid']}", d["model"]["query"]))
    md = open(args.queries).read()
    for i, q in enumerate(re.findall(r"```influxql\n(.*?)\n```", md, re.S)):
        queries.append((f"post-mortem query {i + 1}", q.strip()))
    for label, q in queries:
        try:
            rows = ix.query(fill(q))
            # An alert rule's query may rightly return nothing on a healthy fixture (no DPC port,
            # no error): tests/alert_scenarios.py proves what each rule does; here it must run.
            if label.startswith("alert "):
                check(label, True)
                continue
            if not (rows and any(s.get("values") for s in rows)) and label.startswith("dashboard panel"):
                # A panel may be empty only when the fixture has none of the fields it shows
                # (the incident fixture has no DPC port).
                fields = set(re.findall(r'last\("([a-z_0-9]+)"\)', q))
                check(label, fields and not any(f"{f}=" in once_text for f in fields),
                      "returned no rows: " + fill(q))
                continue
            check(label, bool(rows) and any(s.get("values") for s in rows), "returned no rows: " + fill(q))
        except Exception as e:  # noqa: BLE001 - any failure of a user-facing query is a test failure
            check(label, False, f"{e}: {fill(q)}")

    for f in failed:
        print("FAIL", f)
    print(f"telegraf-e2e: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
