#!/usr/bin/env bash
# Counters stay visible when zeros are left off: a long-running vigil writes
# a real InfluxDB while AER counters of a fixture copy go up between
# collections; InfluxQL's spread, non_negative_difference and
# non_negative_derivative must see every increase, including the first one
# of a counter that was zero (left off) before. Facts written only on change
# must still be found by last().
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${VIGIL_DERIV_PORT:-18096}
command -v influxd >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null; }
cargo build -q
work=$(mktemp -d)
cleanup() {
  [ -n "${INFLUX_PID:-}" ] && kill "$INFLUX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cp -a fixtures/pciutils-captures "$work/root"
cat > "$work/influxdb.conf" <<CONF
bind-address = "127.0.0.1:$((PORT + 2))"
reporting-disabled = true
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$PORT"
  log-enabled = false
CONF
influxd -config "$work/influxdb.conf" > "$work/influxd.log" 2>&1 &
INFLUX_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/ping" >/dev/null || { cat "$work/influxd.log"; exit 1; }
python3 tests/aer_derivative.py --url "http://127.0.0.1:$PORT" --vigil target/debug/vigil --root "$work/root"
