#!/usr/bin/env python3
"""Every vigil alert rule evaluated the way Grafana evaluates it, on timelines in a real InfluxDB.

Run by tests/telegraf-e2e.sh against the InfluxDB it started. Each scenario is a timeline of
line protocol (field names checked against docs/metrics.md) written to its own database with
timestamps in the past; "now" is computed once. The rules of telegraf-snippets/grafana-alerts.yaml
are then evaluated at explicit times T on each group's interval, as Grafana's scheduler does,
and the database only ever holds the points with time <= T when a rule is evaluated at T (the
timeline is written as the clock advances), so InfluxDB's now() is replaced by T and every query
sees what it would see live. Nothing depends on the wall clock.

What is modelled, and where Grafana does it (grafana/grafana):
- Query: raw InfluxQL, `$timeFilter` -> `time >= {from}ms and time <= {to}ms` from the query's
  relativeTimeRange (pkg/tsdb/influxdb/models/query.go, renderTimeFilter/epochMStoInfluxTime).
  Each returned series and value column is one frame, labelled with the series' tags.
  A query with no series is NoData.
- Reduce (pkg/expr/mathexp/reduce.go), strict mode: a null/NaN in the series gives NaN;
  `last`, `sum`, `min`, `max`, `mean`, `count`.
- Math and threshold (pkg/expr/mathexp/exp.go): binary operators on labelled numbers joined by
  `union` (equal labels, or one label set contains the other; unmatched items dropped); `&&`/`||`
  short-circuit; NaN in -> NaN out. A threshold is the comparison `$B > x` / `$B < x`.
- Condition (pkg/services/ngalert/eval/eval.go): per number: nil -> NoData, 0 -> Normal,
  anything else (NaN included) -> Alerting; no number at all -> one NoData result.
- State (pkg/services/ngalert/state): Alerting results go Pending and then Alerting once `for`
  has elapsed (at once when `for` is 0); NoData follows noDataState (Alerting, NoData, OK);
  an instance whose series is missing is resolved after 2 evaluation intervals (MissingSeries,
  docs/sources/alerting/fundamentals/alert-rule-evaluation/stale-alert-instances.md).
- Annotations: `{{ $labels.X }}` and `{{ $values.R.Value }}` rendered per instance.

A rule fails the test when it fires where it should not, fires late, fires only at some
evaluation phases, leaves the host or device out of its summary, or fires in no scenario at
all (its silence elsewhere would prove nothing).
"""
import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

NS = 1_000_000_000


# --------------------------------------------------------------------------- InfluxDB client
class Influx:
    def __init__(self, url):
        self.url = url

    def _post(self, path, params, body=None):
        data = body if body is not None else urllib.parse.urlencode(params).encode()
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if body is not None else "")
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
            return r.read()

    def admin(self, q):
        self._post("/query", {"q": q})

    def write(self, db, lines):
        for i in range(0, len(lines), 5000):
            self._post("/write", {"db": db, "precision": "ns"}, "\n".join(lines[i:i + 5000]).encode())

    def query(self, db, q):
        res = json.loads(self._post("/query", {"db": db, "q": q, "epoch": "ns"}))["results"][0]
        if "error" in res:
            raise RuntimeError(f"{res['error']}: {q}")
        return res.get("series", [])


# --------------------------------------------------------------------------- values
class Num:
    """A labelled number (Grafana's mathexp Number); value None is null."""

    def __init__(self, labels, value):
        self.labels, self.value = labels, value


NODATA = "nodata"


def frames(series):
    """InfluxQL series -> Grafana frames: one per value column, labelled by the series' tags."""
    out = []
    for s in series:
        labels = dict(s.get("tags") or {})
        cols = s["columns"]
        for i, c in enumerate(cols):
            if c == "time":
                continue
            pts = []
            for row in s.get("values", []):
                v = row[i]
                pts.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
            out.append((labels, pts))
    return out


def reduce_series(pts, reducer):
    if any(p is None or math.isnan(p) for p in pts):
        return math.nan  # strict mode
    if reducer == "count":
        return float(len(pts))
    if not pts:
        return math.nan
    return {"last": lambda: pts[-1], "sum": lambda: sum(pts), "min": lambda: min(pts),
            "max": lambda: max(pts), "mean": lambda: sum(pts) / len(pts)}[reducer]()


def binary_op(op, a, b):
    if op == "||" and a != 0:
        return 1.0
    if op == "&&" and a == 0:
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return float({"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                  "/": lambda: a / b if b else math.copysign(math.inf, a) if a else math.nan,
                  "==": lambda: a == b, "!=": lambda: a != b, ">": lambda: a > b, "<": lambda: a < b,
                  ">=": lambda: a >= b, "<=": lambda: a <= b,
                  "||": lambda: a != 0 or b != 0, "&&": lambda: a != 0 and b != 0}[op]())


def contains(big, small):
    return all(big.get(k) == v for k, v in small.items())


def union(avals, bvals):
    """mathexp union(): pairs of items whose labels are equal or one contains the other."""
    if not avals or not bvals:
        return []
    if (len(avals) == 1 or len(bvals) == 1) and (avals[0] == NODATA or bvals[0] == NODATA):
        return [(None, avals[0], bvals[0])]
    out = []
    for a in avals:
        for b in bvals:
            la, lb = a.labels, b.labels
            if la == lb or not la or not lb:
                labels = la or lb
            elif len(la) == len(lb):
                continue
            elif contains(la, lb):
                labels = la
            elif contains(lb, la):
                labels = lb
            else:
                continue
            out.append((labels, a, b))
    if not out and len(avals) == 1 and len(bvals) == 1:
        out.append(({}, avals[0], bvals[0]))
    return out


TOKEN = re.compile(r"\s*(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\|\||&&|==|!=|>=|<=|[-+*/()<>!])")
PRECEDENCE = [["||"], ["&&"], ["==", "!=", ">", "<", ">=", "<="], ["+", "-"], ["*", "/"]]


def parse_math(text):
    toks = TOKEN.findall(text)
    if "".join(toks).replace(" ", "") != text.replace(" ", ""):
        raise ValueError(f"unsupported math expression: {text}")
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        pos[0] += 1
        return toks[pos[0] - 1]

    def primary():
        t = take()
        if t == "(":
            e = level(0)
            assert take() == ")"
            return e
        if t in ("!", "-"):
            return ("un", t, primary())
        if t.startswith("$"):
            return ("var", t.strip("${}"))
        return ("num", float(t))

    def level(i):
        if i == len(PRECEDENCE):
            return primary()
        left = level(i + 1)
        while peek() in PRECEDENCE[i]:
            op = take()
            left = ("bin", op, left, level(i + 1))
        return left

    tree = level(0)
    assert pos[0] == len(toks), text
    return tree


def eval_math(node, env):
    kind = node[0]
    if kind == "num":
        return [Num({}, node[1])]
    if kind == "var":
        return env[node[1]]
    if kind == "un":
        out = []
        for v in eval_math(node[2], env):
            if v == NODATA or v.value is None:
                out.append(v)
            elif math.isnan(v.value):
                out.append(Num(v.labels, math.nan))
            else:
                out.append(Num(v.labels, -v.value if node[1] == "-" else float(v.value == 0)))
        return out
    a, b = eval_math(node[2], env), eval_math(node[3], env)
    out = []
    for labels, x, y in union(a, b):
        if x == NODATA or y == NODATA:
            out.append(NODATA)
        elif x.value is None or y.value is None:
            out.append(Num(labels, None))
        else:
            out.append(Num(labels, binary_op(node[1], x.value, y.value)))
    return out


# --------------------------------------------------------------------------- one evaluation
def render_query(q, t_ms, rel):
    frm, to = t_ms - int(rel.get("from", 0)) * 1000, t_ms - int(rel.get("to", 0)) * 1000
    q = q.replace("$timeFilter", f"time >= {frm}ms and time <= {to}ms")
    return q.replace("now()", f"{t_ms}ms")


def evaluate_rule(influx, db, rule, t_ms):
    """One evaluation at t_ms: list of (labels, 'Alerting'|'Normal'|'NoData', values)."""
    env = {}
    for d in rule["data"]:
        m = d["model"]
        ref = d["refId"]
        if d["datasourceUid"] != "__expr__":
            fr = frames(influx.query(db, render_query(m["query"], t_ms, d["relativeTimeRange"])))
            env[ref] = ("series", fr) if fr else NODATA
            continue
        kind = m["type"]
        if kind == "reduce":
            src = env[m["expression"]]
            env[ref] = [NODATA] if src == NODATA else [Num(lb, reduce_series(p, m["reducer"])) for lb, p in src[1]]
        elif kind == "math":
            env[ref] = eval_math(parse_math(m["expression"]), env)
        elif kind == "threshold":
            ev = m["conditions"][0]["evaluator"]
            op = {"gt": ">", "lt": "<"}[ev["type"]]
            env[ref] = eval_math(parse_math(f"${m['expression']} {op} {ev['params'][0]}"), env)
        else:
            raise ValueError(f"expression type {kind} not modelled")
    cond = env[rule["condition"]]
    nums = [v for v in cond if v != NODATA] if isinstance(cond, list) else []
    if not nums:
        return [({}, "NoData", {})]
    values = {k: v for k, v in env.items() if isinstance(v, list)}
    out = []
    for n in nums:
        state = "NoData" if n.value is None else "Normal" if n.value == 0 else "Alerting"
        vals = {}
        for ref, items in values.items():
            for it in items:
                if it != NODATA and contains(n.labels, it.labels) and it.value is not None:
                    vals[ref] = it.value
        out.append((n.labels, state, vals))
    return out


def fmt_value(v):
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def render_template(text, labels, vals):
    # {{ with $labels.x }}...{{ . }}...{{ end }}: the block only when the label is
    # non-empty (text/template's "with"), its dot the label's value.
    def with_block(m):
        v = labels.get(m.group(1), "")
        return re.sub(r"\{\{\s*\.\s*\}\}", lambda _: v, m.group(2)) if v else ""
    text = re.sub(r"\{\{\s*with \$labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}(.*?)\{\{\s*end\s*\}\}",
                  with_block, text)

    def sub(m):
        expr = m.group(1).strip()
        lm = re.fullmatch(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", expr)
        if lm:
            return labels.get(lm.group(1), "<no value>")
        vm = re.fullmatch(r"\$values\.([A-Za-z0-9_]+)\.Value", expr)
        if vm:
            v = vals.get(vm.group(1))
            return "<no value>" if v is None else fmt_value(v)
        raise ValueError(f"template not modelled: {{{{ {expr} }}}}")
    return re.sub(r"\{\{(.*?)\}\}", sub, text)


# --------------------------------------------------------------------------- state over time
class RuleState:
    """Grafana's state cache for one rule: instances by label set."""

    def __init__(self, rule, interval_s):
        self.rule, self.interval = rule, interval_s
        self.for_s = parse_duration(rule.get("for", "0s"))
        self.inst = {}  # key -> dict(state, since, last_eval, labels)
        self.fired = {}  # key -> (first Alerting time, labels, summary)
        self.alerting_results = 0

    def apply(self, t, results):
        seen = set()
        for labels, state, vals in results:
            if state == "NoData":
                state = {"Alerting": "Alerting", "OK": "Normal", "NoData": "NoData"}[self.rule["noDataState"]]
            key = tuple(sorted(labels.items()))
            seen.add(key)
            cur = self.inst.get(key, {"state": "Normal", "since": t})
            if state == "Alerting":
                self.alerting_results += 1
                if cur["state"] == "Alerting":
                    pass
                elif cur["state"] == "Pending" and t - cur["since"] >= self.for_s:
                    cur = {"state": "Alerting", "since": t}
                elif cur["state"] != "Pending":
                    cur = {"state": "Alerting" if self.for_s == 0 else "Pending", "since": t}
            elif state != cur["state"]:
                cur = {"state": state, "since": t}
            cur["last_eval"] = t
            self.inst[key] = cur
            if cur["state"] == "Alerting" and key not in self.fired:
                summary = render_template(self.rule["annotations"]["summary"], labels, vals)
                self.fired[key] = (t, labels, summary)
        for key in list(self.inst):
            if key not in seen and self.inst[key]["last_eval"] + 2 * self.interval <= t:
                del self.inst[key]  # stale: resolved as MissingSeries


def parse_duration(s):
    m = re.fullmatch(r"(\d+)([smhd])", str(s))
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def load_rules(path):
    doc = yaml.safe_load(open(path))
    return [(g, r) for g in doc["groups"] for r in g["rules"]]


# --------------------------------------------------------------------------- line protocol
def esc_tag(v):
    return str(v).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def lp_field(v):
    if isinstance(v, bool):
        return f"{int(v)}i"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Timeline:
    """Points of one scenario, with the (measurement, field) pairs used, for the contract check."""

    def __init__(self, now):
        self.now, self.points, self.used = now, [], set()

    def add(self, rel_s, meas, tags, fields, arrive_s=None):
        """A point stamped rel_s; it reaches InfluxDB at arrive_s (default: at once)."""
        t = int(round((self.now + rel_s) * NS))
        arrive = int(round((self.now + (rel_s if arrive_s is None else arrive_s)) * NS))
        tagstr = "".join(f",{k}={esc_tag(v)}" for k, v in sorted(tags.items()))
        fs = ",".join(f"{k}={lp_field(v)}" for k, v in fields.items())
        self.points.append((arrive, f"{meas}{tagstr} {fs} {t}"))
        self.used.update((meas, k) for k in fields)


def documented_fields(path):
    """(measurement, field) pairs of docs/metrics.md; `<counter>` allows any pcie_aer counter."""
    out, meas = set(), None
    for line in open(path):
        m = re.match(r"### `([a-z_]+)`", line)
        if m:
            meas = m.group(1)
            continue
        m = re.match(r"\| (`[^|]+`) \|", line)
        if meas and m:
            for f in re.findall(r"`([^`]+)`", m.group(1)):
                out.add((meas, f))
    return out


# --------------------------------------------------------------------------- the nodes
GPU = {"address": "0000:41:00.0", "vendor_id": "10de", "device_id": "27b0", "class_id": "0300",
       "vendor": "NVIDIA Corporation", "device": "AD104GL [RTX 4000 SFF Ada Generation]"}
PORT = {"address": "0000:00:02.0", "vendor_id": "1022", "device_id": "1483", "class_id": "0604",
        "vendor": "Advanced Micro Devices, Inc. [AMD]", "device": "Starship/Matisse GPP Bridge"}


def node_state(**kw):
    st = {
        "boot_id": "0d5e0c1c-7a43-4b8e-9a51-3f0e5a7c2b11", "boot_at": -200000.0,
        "gpu_driver": "vfio-pci", "gpu_power": "D0", "gpu_speed": 16.0, "gpu_width": 16,
        "port_power": "D0", "aer": {"correctable": 12, "nonfatal": 0, "fatal": 0},
        "devsta": {"corr": 0, "nonfatal": 0, "fatal": 0, "ur": 0}, "dpc_triggered": 0,
        "privileged": True, "aer_files": True, "vfio": True, "intended": 1, "group_viable": 1,
        "readiness": 50, "log2ram": True, "sync_age": 3600, "gpu_reachable": 1,
        "sync_interval": None, "edac": None,
    }
    st.update(kw)
    return st


def collect(tl, rel, host, st):
    """What vigil prints for this node state at time rel (one batch, one timestamp)."""
    h = {"host": host}
    up = rel - st["boot_at"]
    tl.add(rel, "vigil", h, {"boot_id": st["boot_id"], "uptime_s": float(round(up, 2)), "version": "0.1.0",
                             "duration_us": 2100, "errors": 0, "privileged": int(st["privileged"]), "devices": 2})
    cf = {"readiness_score": st["readiness"], "findings": (100 - st["readiness"]) // 10,
          "kdump_loaded": 0, "journal_sync_interval_s": 300, "log2ram": int(st["log2ram"])}
    if st["log2ram"]:
        cf.update(ram_logger="log2ram", log_disk_sync_age_s=int(st["sync_age"]))
        if st["sync_interval"] is not None:
            cf["log_disk_sync_interval_s"] = st["sync_interval"]
    tl.add(rel, "crash_forensics", h, cf)
    if st["edac"] is not None:
        edac(tl, rel, h, st["edac"])
    gpu_sleeps = st["gpu_power"] != "D0" or st["port_power"] != "D0"
    d_state = {"D0": 0, "D3hot": 3, "D3cold": 4}
    tl.add(rel, "pcie_device", {**h, **PORT}, {
        "driver": "pcieport", "power_state": st["port_power"], "d_state": d_state[st["port_power"]],
        "runtime_status": "active" if st["port_power"] == "D0" else "suspended",
        "link_skipped": int(st["port_power"] != "D0"), **({"reachable": 1} if st["port_power"] == "D0" else {})})
    tl.add(rel, "pcie_device", {**h, **GPU}, {
        "driver": st["gpu_driver"], "power_state": st["gpu_power"], "d_state": d_state[st["gpu_power"]],
        "runtime_status": "active" if st["gpu_power"] == "D0" else "suspended", "link_skipped": int(gpu_sleeps),
        "upstream_port": PORT["address"], **({} if gpu_sleeps else {"reachable": st["gpu_reachable"]})})
    if not gpu_sleeps:  # vigil never reads a sleeping device's link (nor its parent's)
        for dev in (PORT, GPU):
            tl.add(rel, "pcie_link", {**h, **dev}, {
                "speed_gts": st["gpu_speed"], "max_speed_gts": 16.0, "expected_speed_gts": 16.0,
                "width": st["gpu_width"], "max_width": 16, "expected_width": 16, "link_up": 1,
                "speed_downgraded": int(st["gpu_speed"] < 16), "width_downgraded": int(st["gpu_width"] < 16)})
    if st["aer_files"]:
        for sev, total in st["aer"].items():
            tl.add(rel, "pcie_aer", {**h, **GPU, "severity": sev}, {"total": total})
    if st["privileged"] and not gpu_sleeps:
        ds = st["devsta"]
        tl.add(rel, "pcie_aer_status", {**h, **GPU}, {
            "devsta_corr_err": ds["corr"], "devsta_nonfatal_err": ds["nonfatal"],
            "devsta_fatal_err": ds["fatal"], "devsta_unsupp_req": ds["ur"]})
        tl.add(rel, "pcie_aer_status", {**h, **PORT}, {
            "devsta_corr_err": 0, "devsta_nonfatal_err": 0, "devsta_fatal_err": 0, "devsta_unsupp_req": 0,
            "dpc_triggered": st["dpc_triggered"], "dpc_status": 0x1f01 if st["dpc_triggered"] else 0,
            "dpc_trigger_enabled": 1})
    if st["vfio"]:
        tl.add(rel, "vfio_device", {**h, **GPU, "group": "27"}, {
            "driver": st["gpu_driver"], "bound": int(st["gpu_driver"] == "vfio-pci"), "intended": st["intended"],
            "group_viable": st["group_viable"], "power_state": st["gpu_power"]})
        tl.add(rel, "iommu_group", {**h, "group": "27"}, {
            "devices": 1, "vfio_devices": int(st["gpu_driver"] == "vfio-pci"), "viable": st["group_viable"],
            "members": GPU["address"]})


def edac(tl, rel, h, dimms):
    """EDAC as an amd64_edac node prints it: dimms {name: (ce, ue)} on mc0, all placed."""
    for i, (name, (ce, ue)) in enumerate(sorted(dimms.items())):
        tl.add(rel, "edac_dimm", {**h, "controller": "mc0", "dimm": name}, {
            "ce_count": ce, "ue_count": ue, "label": f"mc#0csrow#{2 + i // 2}channel#{i % 2}",
            "location": f"csrow {2 + i // 2} channel {i % 2}", "size_mb": 8192, "mem_type": "Unbuffered-DDR4",
            "edac_mode": "SECDED"})
    tl.add(rel, "edac_mc", {**h, "controller": "mc0"}, {
        "ce_count": sum(c for c, _ in dimms.values()), "ue_count": sum(u for _, u in dimms.values()),
        "ce_noinfo_count": 0, "ue_noinfo_count": 0, "mc_name": "F17h", "size_mb": 8192 * len(dimms),
        "dimms": len(dimms)})


def event(tl, rel, host, category, priority, message, address=None, seq=1000, arrive=None):
    tags = {"host": host, "category": category, **({"address": address} if address else {})}
    tl.add(rel, "kernel_event", tags, {"message": message, "priority": priority, "seq": seq}, arrive)


def run_nodes(tl, start, end, step, hosts):
    """hosts: {name: fn(rel) -> state or None (silent)}; a collection every `step` seconds."""
    t = start
    while t <= end:
        for host, fn in hosts.items():
            st = fn(t)
            if st is not None:
                collect(tl, t, host, st)
        t += step


# --------------------------------------------------------------------------- scenarios
# Each scenario: (name, timeline builder, eval window, expectations). An expectation is
# (rule uid, {label: value}, deadline in s after the scenario's t=0 or None); every rule instance
# that fires and is not expected fails the test.

def sc_frozen(tl):
    healthy = lambda t: node_state()
    run_nodes(tl, -3600, 600, 10, {"pve1": healthy, "pve2": lambda t: node_state() if t <= 0 else None,
                                   "pve3": healthy})


def sc_reboot(tl):
    new_boot = 15.0  # kernel starts 15 s after the last heartbeat; vigil's first one at +40 s
    def pve1(t):
        if t <= 0:
            return node_state(aer={"correctable": 57, "nonfatal": 2, "fatal": 0},
                              edac={"rank4": (0, 0), "rank5": (340, 1)})
        if t < 40:
            return None
        return node_state(boot_id="7c1f3a90-55e2-4d0b-8f6e-2a9b4c8d1e07", boot_at=new_boot,
                          aer={"correctable": 0, "nonfatal": 0, "fatal": 0},
                          devsta={"corr": 1, "nonfatal": 0, "fatal": 0, "ur": 1},
                          edac={"rank4": (0, 0), "rank5": (0, 0)})
    run_nodes(tl, -3600, 1200, 10, {"pve1": pve1, "pve2": lambda t: node_state()})
    # The new boot's ring, replayed by vigil at start with the records' own times. The last
    # line is a firmware warning that a looser classifier could call an IOMMU fault.
    ring = [(0.00, "lockup", 6, "NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.", None),
            (0.40, "mce", 6, "mce: CPU0: Thermal monitoring enabled (TM1)", None),
            (1.10, "dpc", 6, "pcieport 0000:00:02.0: DPC: error containment capabilities: Int Msg #0, RPExt+ PoisonedTLP+ SwTrigger+ RP PIO Log 6, DL_ActiveErr+", "0000:00:02.0"),
            (1.20, "pcie_link", 6, "pci 0000:41:00.0: 252.048 Gb/s available PCIe bandwidth, limited by 16.0 GT/s PCIe x16 link at 0000:00:02.0 (capable of 504.112 Gb/s with 32.0 GT/s PCIe x16 link)", "0000:41:00.0"),
            (2.00, "iommu_fault", 4, "DMAR: [Firmware Bug]: No firmware reserved region can cover this RMRR [0x000000007b800000-0x000000007fffffff], contact BIOS vendor for fixes", None),
            (9.50, "vfio", 6, "vfio-pci 0000:41:00.0: resetting", "0000:41:00.0")]
    for i, (dt, cat, prio, msg, addr) in enumerate(ring):
        # vigil starts at +31 s and writes the ring at once; Telegraf's first tick (the first
        # heartbeat of the new boot) comes at +40 s.
        event(tl, new_boot + dt, "pve1", cat, prio, msg, addr, seq=10 + i, arrive=31)


def sc_incident(tl):
    def pve1(t):
        if t > 0:
            return None
        st = node_state()
        if t >= -90:  # the GPU link retrains to 2.5 GT/s, correctable errors climb
            st.update(gpu_speed=2.5, aer={"correctable": 12 + int(t + 100) // 5, "nonfatal": 0, "fatal": 0})
        if t >= -40:  # a fatal AER
            st["aer"]["fatal"] = 1
            st["devsta"] = {"corr": 1, "nonfatal": 0, "fatal": 1, "ur": 0}
        return st
    run_nodes(tl, -3600, 900, 10, {"pve1": pve1, "pve2": lambda t: node_state()})
    event(tl, -89.6, "pve1", "pcie_link", 6, "pcieport 0000:00:02.0: Link Bandwidth changed to 2.5 GT/s x16", "0000:00:02.0", seq=88001)
    event(tl, -41.2, "pve1", "aer", 3, "pcieport 0000:00:02.0: AER: Uncorrected (Fatal) error received: 0000:41:00.0", "0000:41:00.0", seq=88020)
    event(tl, -35.0, "pve1", "gpu_xid", 3, "NVRM: Xid (PCI:0000:41:00): 79, pid=4250, name=kvm, GPU has fallen off the bus.", "0000:41:00.0", seq=88031)


DAY = 86400


def sync_age(t, stop_at=None):
    """log2ram's daily timer at 00:00 + 7 min (scenario clock), or none after stop_at."""
    last = math.floor((t - 420) / DAY) * DAY + 420
    if stop_at is not None and last > stop_at:
        last = math.floor((stop_at - 420) / DAY) * DAY + 420
    return t - last


def sc_stock(tl):
    """8 days of two stock nodes: no kdump, log2ram daily, an idle host GPU at 2.5 GT/s in D0,
    Device Status CorrErr/UnsupReq latched since boot, a few correctable errors a day. pve2's
    log2ram timer stops on day 6."""
    def node(stop_at):
        def fn(t):
            return node_state(gpu_driver="nvidia", vfio=False, gpu_speed=2.5, sync_age=sync_age(t, stop_at),
                              aer={"correctable": 3 + int((t + 8 * DAY) // 28800), "nonfatal": 0, "fatal": 0},
                              devsta={"corr": 1, "nonfatal": 0, "fatal": 0, "ur": 1}, boot_at=-40 * DAY)
        return fn
    run_nodes(tl, -8 * DAY, 0, 60, {"pve1": node(None), "pve2": node(-2 * DAY - 3 * 3600)})
    # the heartbeat itself every 10 s, as vigil sends it
    for host in ("pve1", "pve2"):
        t = -8 * DAY
        while t <= 0:
            if t % 60:
                tl.add(t, "vigil", {"host": host}, {"boot_id": "0d5e0c1c-7a43-4b8e-9a51-3f0e5a7c2b11",
                                                    "uptime_s": float(t + 40 * DAY)})
            t += 10


def sc_suspend(tl):
    """A host GPU goes idle: 2.5 GT/s in D0, then runtime-suspended (D3cold, its root port
    D3hot) for an hour, then busy again."""
    def pve1(t):
        if t < 0:
            return node_state(gpu_driver="nvidia", vfio=False)
        if t < 120:
            return node_state(gpu_driver="nvidia", vfio=False, gpu_speed=2.5)
        if t < 3720:
            return node_state(gpu_driver="nvidia", vfio=False, gpu_power="D3cold", port_power="D3hot")
        return node_state(gpu_driver="nvidia", vfio=False)
    run_nodes(tl, -1800, 4200, 10, {"pve1": pve1})


def sc_noaer(tl):
    """pci=noaer: no AER counters, no AER messages. The GPU's Device Status latches a non-fatal
    error at t=0; the root port's DPC triggers at t=300."""
    def pve1(t):
        st = node_state(aer_files=False)
        if t >= 0:
            st["devsta"] = {"corr": 0, "nonfatal": 1, "fatal": 0, "ur": 0}
        if t >= 300:
            st["dpc_triggered"] = 1
        return st
    run_nodes(tl, -1800, 900, 10, {"pve1": pve1})


def sc_drift(tl):
    """Every other rule must be able to fire. pve1's configuration drifts at t=0: kdump
    unloaded (readiness 60 -> 50) and the passthrough GPU taken by nouveau (misbound, its
    group no longer viable). pve2's GPU link trains at x8 at t=0, takes a burst of 200
    correctable errors, and the GPU falls off the bus at t=600."""
    def pve1(t):
        if t < 0:
            return node_state(readiness=60)
        return node_state(readiness=50, gpu_driver="nouveau", group_viable=0)
    def pve2(t):
        st = node_state()
        if t >= 0:
            st["gpu_width"] = 8
            st["aer"] = {"correctable": 12 + min(200, int(t)), "nonfatal": 0, "fatal": 0}
        if t >= 600:
            st["gpu_reachable"] = 0
        return st
    run_nodes(tl, -3 * 3600, 1800, 10, {"pve1": pve1, "pve2": pve2})


def sc_memory(tl):
    """pve1's DIMM rank5 starts correcting an error a minute at t=0 (a weak cell), then takes
    an uncorrected one at t=1800. pve2's counters are non-zero from an old event and never move."""
    def pve1(t):
        ce = max(0, int(t) // 60)
        return node_state(edac={"rank4": (0, 0), "rank5": (ce, int(t >= 1800))})
    run_nodes(tl, -3600, 3600, 10, {
        "pve1": pve1, "pve2": lambda t: node_state(edac={"rank4": (4, 0), "rank5": (1250, 2)})})


def sc_sync_timer(tl):
    """Three log2ram nodes that report their timer's period: pve1 stock (daily at 23:55, which
    is +1h on this clock), pve2 the same timer stopped after its sync at -1h, pve3 an hourly
    timer stalled after its sync at 0. Collections every 5 minutes, the heartbeat every 10 s."""
    def synced(t, period, phase, stop_at=None):
        last = math.floor((t - phase) / period) * period + phase
        if stop_at is not None and last > stop_at:
            last = stop_at
        return node_state(sync_interval=period, sync_age=t - last)
    hosts = {"pve1": lambda t: synced(t, DAY, 3600), "pve2": lambda t: synced(t, DAY, 3600, -3600),
             "pve3": lambda t: synced(t, 3600, 0, 0)}
    run_nodes(tl, -DAY, DAY + 7200, 300, hosts)
    for host in hosts:
        t = -DAY
        while t <= DAY + 7200:
            if t % 300:
                tl.add(t, "vigil", {"host": host}, {"boot_id": "0d5e0c1c-7a43-4b8e-9a51-3f0e5a7c2b11",
                                                    "uptime_s": float(t + 40 * DAY)})
            t += 10


GPU_A = GPU["address"]
SCENARIOS = [
    ("3 hosts, pve2 freezes", sc_frozen, (-600, 600), [
        ("vigil-heartbeat-missing", {"host": "pve2"}, 120)]),
    ("normal reboot of pve1 (40 s gap, its EDAC counts reset)", sc_reboot, (-600, 1200), [
        ("vigil-rebooted", {"host": "pve1"}, None)]),
    ("incident on pve1", sc_incident, (-600, 900), [
        ("vigil-link-speed-downgrade-errors", {"host": "pve1", "address": GPU_A}, 0),
        ("vigil-aer-uncorrectable", {"host": "pve1", "address": GPU_A, "severity": "fatal"}, 0),
        ("vigil-device-status-error", {"host": "pve1", "address": GPU_A}, 0),
        ("vigil-kernel-critical-events", {"host": "pve1", "category": "gpu_xid", "address": GPU_A}, 0),
        ("vigil-heartbeat-missing", {"host": "pve1"}, 120)]),
    # pve2 fires by its last sync + 24 h + the 30-minute margin + the 15-minute evaluation step
    # + the 5-minute collection step; pve3's hourly timer, stalled at 0, by +1.5 h + 20 minutes:
    # well within its 3 hours.
    ("log2ram timers with their interval reported (pve2's daily stops, pve3's hourly stalls)", sc_sync_timer,
     (-3600, DAY + 7200), [
        ("vigil-ram-logs-unsynced", {"host": "pve2"}, -3600 + DAY + 1800 + 900 + 300),
        ("vigil-ram-logs-unsynced", {"host": "pve3"}, 3600 + 1800 + 900 + 300)]),
    ("memory: pve1's DIMM fails, pve2's counters static from an old event", sc_memory, (-600, 3600), [
        ("vigil-memory-corrected-rate", {"host": "pve1", "controller": "mc0", "dimm": "rank5"}, 11 * 60 + 300),
        ("vigil-memory-uncorrected", {"host": "pve1", "controller": "mc0", "dimm": "rank5"}, 1800 + 30)]),
    ("stock nodes for 8 days (pve2's log2ram timer stops)", sc_stock, (-3 * DAY, 0), [
        ("vigil-ram-logs-unsynced", {"host": "pve2"}, None)]),
    ("GPU runtime-suspended at idle", sc_suspend, (-600, 4200), []),
    ("configuration drift on pve1, a failing link on pve2", sc_drift, (-600, 1800), [
        ("vigil-readiness-drop", {"host": "pve1"}, 1200),
        ("vigil-vfio-misbound", {"host": "pve1", "address": GPU_A}, 900),
        ("vigil-iommu-group-not-viable", {"host": "pve1", "address": GPU_A}, 900),
        ("vigil-link-width-downgrade", {"host": "pve2", "address": GPU_A}, 360),
        ("vigil-link-width-downgrade", {"host": "pve2", "address": PORT["address"]}, 360),  # both ends
        ("vigil-aer-correctable-rate", {"host": "pve2", "address": GPU_A}, 180),
        ("vigil-device-unreachable", {"host": "pve2", "address": GPU_A}, 630)]),
    ("pci=noaer: Device Status bit, then DPC", sc_noaer, (-600, 900), [
        ("vigil-device-status-error", {"host": "pve1", "address": GPU_A}, 30),
        ("vigil-dpc-triggered", {"host": "pve1", "address": PORT["address"]}, 330)]),
]


def eval_times(window, interval, phase):
    start, end = window
    t = start - (start % interval) + phase
    while t <= end:
        if t >= start:
            yield t
        t += interval


def run_scenario(influx, now, name, build, window, rules, phase, long_step=None):
    """Evaluate every rule over the window; returns {uid: RuleState}."""
    tl = Timeline(now)
    build(tl)
    tl.points.sort()
    db = "vigil_alerts_" + re.sub(r"\W+", "_", name)[:40] + f"_{phase}"
    influx.admin(f'DROP DATABASE "{db}"')
    influx.admin(f'CREATE DATABASE "{db}"')
    states = {r["uid"]: RuleState(r, parse_duration(g["interval"])) for g, r in rules}
    schedule = []
    for g, r in rules:
        step = parse_duration(g["interval"])
        if long_step:
            step = max(step, long_step)  # days-long timeline: coarser, see the check in main()
        schedule += [(t, r["uid"]) for t in eval_times(window, step, phase)]
    schedule.sort()
    by_uid = {r["uid"]: r for _, r in rules}
    written = 0
    for t, uid in schedule:
        t_ns = int(round((now + t) * NS))
        upto = written
        while upto < len(tl.points) and tl.points[upto][0] <= t_ns:
            upto += 1
        if upto > written:
            influx.write(db, [p[1] for p in tl.points[written:upto]])
            written = upto
        states[uid].apply(t, evaluate_rule(influx, db, by_uid[uid], t_ns // 1_000_000))
    influx.admin(f'DROP DATABASE "{db}"')
    return states, tl.used


def rel_time(t):
    """Seconds after the scenario's t=0, in hours past a day's worth of seconds."""
    return f"{t:+d}s" if abs(t) < 7200 else f"{t / 3600:+.1f}h"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--alerts", required=True)
    ap.add_argument("--metrics-doc", required=True)
    ap.add_argument("--rule-before", help="the heartbeat rule before issue 17: must miss the frozen host")
    ap.add_argument("--only", help="run only the scenarios whose name starts with this")
    args = ap.parse_args()
    influx = Influx(args.url)
    rules = load_rules(args.alerts)
    documented = documented_fields(args.metrics_doc)
    now = (int(time.time()) // 3600) * 3600 - 2 * 3600  # once; every timestamp is relative to it
    failures, rows, fired_somewhere = [], [], set()

    for g, r in rules:
        for field in ("summary",):
            text = r["annotations"][field]
            if "$labels.host" not in text:
                failures.append(f"{r['uid']}: the summary does not name the host")

    for name, build, window, expect in SCENARIOS:
        if args.only and not name.startswith(args.only):
            continue
        long_step = 900 if window[1] - window[0] > DAY else None
        # Grafana's ticks fall anywhere: the frozen node is judged at its worst phase, and the
        # reboot also at a tick between the ring's arrival (+31 s) and the first heartbeat (+40 s).
        phases = [0, 10, 20] if name.startswith("3 hosts") else [0, 5] if name.startswith("normal") else [0]
        results = []
        for phase in phases:
            states, used = run_scenario(influx, now, name, build, window, rules, phase, long_step)
            results.append(states)
            for m, f in sorted(used):
                if (m, f) not in documented and not (m == "pcie_aer" and f not in ("total",) and ("pcie_aer", "<counter>") in documented):
                    failures.append(f"{name}: {m}.{f} is not in docs/metrics.md")
        quiet = []
        for g, r in rules:
            uid = r["uid"]
            exp = [(lb, dl) for u, lb, dl in expect if u == uid]
            got = {}
            for states in results:
                for key, (t, labels, summary) in states[uid].fired.items():
                    got.setdefault(key, []).append((t, labels, summary))
            exp_txt = "; ".join(
                "fires " + " ".join(lb.values()) + (f" by +{dl}s" if dl is not None else "") for lb, dl in exp) or "silent"
            got_txt = []
            matched = [False] * len(exp)
            for key, hits in sorted(got.items()):
                labels = hits[0][1]
                worst = max(h[0] for h in hits)
                ident = " ".join(v for k, v in sorted(labels.items()) if k in ("host", "address", "severity", "category", "controller", "dimm") and v)
                got_txt.append(f"fires {ident} at {rel_time(worst)}")
                ok = False
                for i, (lb, dl) in enumerate(exp):
                    if contains(labels, lb):
                        ok = True
                        matched[i] = True
                        if len(hits) < len(results):
                            failures.append(f"{name}: {uid} {ident} fired only at some evaluation phases")
                        if dl is not None and worst > dl:
                            failures.append(f"{name}: {uid} {ident} fired at +{worst}s, expected by +{dl}s")
                if not ok:
                    failures.append(f"{name}: {uid} fired for {labels}: {hits[0][2]}")
                for _, lbl, summary in hits[:1]:
                    for k in ("host", "address"):
                        if lbl.get(k) and lbl[k] not in summary:
                            failures.append(f"{name}: {uid} summary does not name {k} {lbl[k]}: {summary}")
            for i, (lb, dl) in enumerate(exp):
                if not matched[i]:
                    failures.append(f"{name}: {uid} did not fire for {lb}")
            if exp or got:
                rows.append((name, uid, exp_txt, "; ".join(got_txt) or "silent"))
                fired_somewhere.update([uid] if got else [])
            else:
                quiet.append(uid)
        other_row = (name, f"the other {len(quiet)} rules", "silent", "silent")
        if args.rule_before and name.startswith("3 hosts"):
            old = load_rules(args.rule_before)
            states, _ = run_scenario(influx, now, name + " old", build, window, old, 0)
            fired = [lb for (_, lb, _) in states["vigil-heartbeat-missing"].fired.values()]
            got_txt = "; ".join("fires " + lb.get("host", "(no host)") for lb in fired) or "silent"
            rows.append((name, "heartbeat rule before issue 17", "fires pve2 by +120s", got_txt + " (the test fails it)"))
            if any(lb.get("host") == "pve2" for lb in fired):
                failures.append("the heartbeat rule before issue 17 passed the frozen-node scenario: the scenario proves nothing")
        rows.append(other_row)

    if not args.only:
        for g, r in rules:
            if r["uid"] not in fired_somewhere:
                failures.append(f"{r['uid']} fires in no scenario: its silence proves nothing")

    w = [max(len(r[i]) for r in rows + [("scenario", "rule", "expected", "got")]) for i in range(4)]
    line = lambda r: " | ".join(c.ljust(w[i]) for i, c in enumerate(r))
    print(line(("scenario", "rule", "expected", "got")))
    print("-+-".join("-" * x for x in w))
    last = None
    for r in rows:
        print(line((r[0] if r[0] != last else "",) + r[1:]))
        last = r[0]
    for f in failures:
        print("FAIL", f)
    print(f"alert-scenarios: {len(rows)} rows, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
