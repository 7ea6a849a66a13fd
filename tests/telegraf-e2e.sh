#!/usr/bin/env bash
# End to end with the real programs: a pinned Telegraf built from source (only
# the plugins needed), Debian's InfluxDB 1.x on loopback, the shipped snippet
# pointing vigil at a fixture root; then tests/telegraf_e2e.py asserts from
# InfluxDB what arrived and runs every dashboard, alert and post-mortem query.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/influxdb.sh
REPO=$(pwd)
TELEGRAF_VERSION=v1.34.4
CACHE=${VIGIL_CACHE:-$HOME/.cache/vigil}
TELEGRAF=$CACHE/telegraf-$TELEGRAF_VERSION
PORT=${VIGIL_E2E_PORT:-18086}

log() { echo "== $*"; }

# Telegraf's errors, less one that is Telegraf's own shutdown race. On stop,
# internal/process cmdWait calls Cmd.Wait, which closes the child's stdout and
# stderr pipes as soon as the child exits, while the plugin's reader goroutines
# may still be inside read(). For data_format "influx", execd reads stdout with
# cmdReadOutStream, which reports every error but EOF, os.ErrClosed included
# (its line reader and stderr scanner in v1.34.4 differ only in wording):
# "Error in plugin: read |0: file already closed", at random under load. It
# says nothing about vigil's output, which every check below reads from
# InfluxDB; any other error still fails the test.
# With that error `telegraf --test` also says "input plugins recorded N errors"
# and exits 1.
TELEGRAF_RACE='Error in plugin: (error reading std(out|err): )?read \|[0-9]+: file already closed$'
telegraf_errors() {
  grep -E ' E! ' "$1" | grep -vE "$TELEGRAF_RACE" | grep -vE 'input plugins recorded [0-9]+ errors' || true
}

# --- what it needs ---------------------------------------------------------
need=()
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts the packaged service; the test runs its own instance.
systemctl stop influxdb >/dev/null 2>&1 || true

ensure_go() {
  if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] && export PATH=$PATH:/usr/local/go/bin
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "installing Go (GOTOOLCHAIN=auto fetches the version Telegraf asks for)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  fi
}

if [ ! -x "$TELEGRAF" ]; then
  ensure_go
  log "building Telegraf $TELEGRAF_VERSION (inputs.execd, outputs.influxdb, outputs.file)"
  src=$(mktemp -d)
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/influxdata/telegraf@$TELEGRAF_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$dir/." "$src/" && chmod -R u+w "$src"
  mkdir -p "$CACHE"
  (cd "$src" && GOTOOLCHAIN=auto go build -trimpath \
      -tags "custom,inputs.execd,outputs.influxdb,outputs.file,parsers.influx,serializers.influx" \
      -o "$TELEGRAF.tmp" ./cmd/telegraf)
  mv "$TELEGRAF.tmp" "$TELEGRAF"
  rm -rf "$src"
fi
"$TELEGRAF" plugins | grep -x inputs.execd >/dev/null  # no -q: grep -q may exit before telegraf has written all, and pipefail would see SIGPIPE

# The dashboard against Grafana's schema (grafana-foundation-sdk, Apache-2.0), cached by the
# checker's source.
SCHEMA_CHECK=$CACHE/dashboard-schema-$(cat tests/dashboard-schema/go.* tests/dashboard-schema/*.go | sha256sum | cut -c1-16)
if [ ! -x "$SCHEMA_CHECK" ]; then
  ensure_go
  log "building the dashboard schema check"
  mkdir -p "$CACHE"
  (cd tests/dashboard-schema && GOTOOLCHAIN=auto GOFLAGS=-mod=mod go build -trimpath -o "$SCHEMA_CHECK.tmp" .)
  mv "$SCHEMA_CHECK.tmp" "$SCHEMA_CHECK"
fi
"$SCHEMA_CHECK" telegraf-snippets/grafana-dashboard.json
"$SCHEMA_CHECK" --rules <(python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' \
  telegraf-snippets/grafana-alerts.yaml)

log "building vigil"
cargo build -q
VIGIL=$REPO/target/debug/vigil

work=$(mktemp -d)
cleanup() {
  [ -n "${TG_PID:-}" ] && kill "$TG_PID" 2>/dev/null || true
  [ -n "${INFLUX_PID:-}" ] && kill "$INFLUX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- a fixture made current: events and file ages relative to now ---------
cp -a fixtures/passthrough-gpu-vfio "$work/root"
now=$(date +%s)
uptime=$(cut -d' ' -f1 "$work/root/proc/uptime" | cut -d. -f1)
sed -i "s/^btime .*/btime $((now - uptime))/" "$work/root/proc/stat"
while IFS=$'\t' read -r rel t; do
  touch -h -d "@$((now - (1700000000 - t)))" "$work/root/$rel"
done < "$work/root/mtimes.tsv"
# The AER panels and rules need counts the kernel really keeps. This node boots
# with pci=noaer, under which vigil emits no pcie_aer at all: lift it and bind
# an AER service on root port 00:07.0, as once that mitigation is reverted.
sed -i 's/ pci=noaer//' "$work/root/proc/cmdline"
svc=0000:00:07.0:pcie002
mkdir -p "$work/root/sys/devices/pci0000:00/0000:00:07.0/$svc" \
  "$work/root/sys/bus/pci_express/devices" "$work/root/sys/bus/pci_express/drivers/aer"
ln -s ../../../../bus/pci_express/drivers/aer "$work/root/sys/devices/pci0000:00/0000:00:07.0/$svc/driver"
ln -s "../../../devices/pci0000:00/0000:00:07.0/$svc" "$work/root/sys/bus/pci_express/devices/$svc"
# The memory panels and rules need EDAC counts: this node has the EDAC core but no driver
# bound (no mcN). Give it edac-firmware-first's amd64_edac controller (4 ranks, 12 corrected
# errors on rank5), as once an EDAC driver is loaded.
cp -a fixtures/edac-firmware-first/sys/devices/system/edac/mc/mc0 "$work/root/sys/devices/system/edac/mc/"
# And log2ram's packaged timer (daily), so that log_disk_sync_interval_s travels the whole way.
mkdir -p "$work/root/usr/lib/systemd/system"
printf '[Timer]\nOnCalendar=daily\nPersistent=true\n' > "$work/root/usr/lib/systemd/system/log2ram-daily.timer"

# --- InfluxDB 1.x on loopback ----------------------------------------------
start_influxdb "$work" "$PORT"

# --- the shipped snippet, with only the binary path and --root changed ------
mkdir -p "$work/telegraf.d"
sed -e "s|command = \\[\"/usr/bin/vigil\"\\]|command = [\"$VIGIL\", \"--root\", \"$work/root\"]|" \
  telegraf-snippets/vigil.conf > "$work/telegraf.d/vigil.conf"
grep -q -- "--root" "$work/telegraf.d/vigil.conf"

log "telegraf --test parses vigil's output"
tg_rc=0
"$TELEGRAF" --test --test-wait 2 --config "$work/telegraf.d/vigil.conf" > "$work/test.out" 2> "$work/test.err" || tg_rc=$?
if [ "$tg_rc" -ne 0 ] && ! grep -qE "$TELEGRAF_RACE" "$work/test.err"; then
  cat "$work/test.err"; echo "telegraf --test exited $tg_rc"; exit 1
fi
grep -q '^> vigil,' "$work/test.out" || grep -q '^> vigil ' "$work/test.out"
grep -q '^> pcie_link,' "$work/test.out"
errs=$(telegraf_errors "$work/test.err")
if [ -n "$errs" ]; then echo "$errs"; echo "telegraf --test logged errors"; exit 1; fi

# The agent flushes as Telegraf does by default (10 s, plus jitter): only the shipped fast
# output, pointed at the test database, can bring a kernel record in within 2 s.
cat > "$work/telegraf.conf" <<CONF
[agent]
  interval = "1s"
  flush_interval = "10s"
  flush_jitter = "2s"
  omit_hostname = false
  hostname = "vigil-e2e"
[[outputs.influxdb]]
  urls = ["http://127.0.0.1:$PORT"]
  database = "vigil_e2e"
CONF
sed -e "s|http://influxdb.example.org:8086|http://127.0.0.1:$PORT|" -e 's|database = "telegraf"|database = "vigil_e2e"|' \
  telegraf-snippets/vigil-fast-output.conf > "$work/telegraf.d/vigil-fast-output.conf"
grep -q "127.0.0.1:$PORT" "$work/telegraf.d/vigil-fast-output.conf"
log "Telegraf -> InfluxDB: a kernel record's way to the database, then 8 s in all"
"$TELEGRAF" --config "$work/telegraf.conf" --config-directory "$work/telegraf.d" > "$work/telegraf.log" 2>&1 &
TG_PID=$!
started=$(date +%s)
python3 tests/kmsg_latency.py --url "http://127.0.0.1:$PORT" --db vigil_e2e --root "$work/root" --max 2
sleep $((8 - ($(date +%s) - started))) 2>/dev/null || true
kill "$TG_PID"; wait "$TG_PID" 2>/dev/null || true
TG_PID=
errs=$(telegraf_errors "$work/telegraf.log")
if [ -n "$errs" ]; then echo "$errs"; echo "telegraf logged errors"; exit 1; fi

log "checking InfluxDB"
"$VIGIL" --once --root "$work/root" > "$work/once.lp"
python3 tests/telegraf_e2e.py --url "http://127.0.0.1:$PORT" --db vigil_e2e --host vigil-e2e \
  --once "$work/once.lp" --dashboard telegraf-snippets/grafana-dashboard.json \
  --alerts telegraf-snippets/grafana-alerts.yaml --queries telegraf-snippets/queries.md

log "alert rules on scenarios, evaluated as Grafana evaluates them"
python3 tests/alert_scenarios.py --url "http://127.0.0.1:$PORT" --alerts telegraf-snippets/grafana-alerts.yaml \
  --metrics-doc docs/metrics.md --rule-before tests/alerts-heartbeat-before-17.yaml
