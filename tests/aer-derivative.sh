#!/usr/bin/env bash
# Counters stay visible when zeros are left off: a long-running vigil writes
# a real InfluxDB while AER counters of a fixture copy go up between
# collections; InfluxQL's spread, non_negative_difference and
# non_negative_derivative must see every increase, including the first one
# of a counter that was zero (left off) before. Facts written only on change
# must still be found by last().
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/influxdb.sh
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
start_influxdb "$work" "$PORT"
python3 tests/aer_derivative.py --url "http://127.0.0.1:$PORT" --vigil target/debug/vigil --root "$work/root"
