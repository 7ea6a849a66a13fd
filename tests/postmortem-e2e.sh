#!/usr/bin/env bash
# `vigil postmortem` end to end: Debian's InfluxDB 1.x on loopback (as
# tests/telegraf-e2e.sh starts it, on another port), timelines with past
# timestamps written by tests/postmortem_e2e.py, the binary's JSON and exit
# status checked (with basic auth: auth-enabled). With --show, prints the incident's text output.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/influxdb.sh
PORT=${VIGIL_PM_PORT:-18186}

command -v influxd >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null
}
systemctl stop influxdb >/dev/null 2>&1 || true

cargo build -q
VIGIL=$(pwd)/target/debug/vigil

work=$(mktemp -d)
cleanup() {
  [ -n "${INFLUX_PID:-}" ] && kill "$INFLUX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# https with a private CA, as a self-hosted InfluxDB has: vigil trusts it
# through --ca-cert. (A self-signed server certificate is a CA used as an end
# entity, which rustls' verifier refuses, as browsers do.)
command -v openssl >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vigil test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>/dev/null
influxdb_conf "$work" "$PORT" '  auth-enabled = true
  https-enabled = true
  https-certificate = "'"$work"'/cert.pem"
  https-private-key = "'"$work"'/key.pem"'
URL=https://127.0.0.1:$PORT
ping() { curl -fsS --cacert "$work/ca.pem" "$URL/ping" >/dev/null 2>&1; }
# Another server on the port would answer in place of ours (a shared machine).
if curl -fsS "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1 || curl -fsSk "https://127.0.0.1:$PORT/ping" >/dev/null 2>&1; then
  echo "port $PORT already has an InfluxDB: set VIGIL_PM_PORT" >&2
  exit 1
fi
influxd -config "$work/influxdb.conf" > "$work/influxd.log" 2>&1 &
INFLUX_PID=$!
for _ in $(seq 1 100); do
  ping && break
  sleep 0.1
done
ping || { cat "$work/influxd.log"; exit 1; }
kill -0 "$INFLUX_PID" 2>/dev/null || { cat "$work/influxd.log"; exit 1; }

python3 tests/postmortem_e2e.py --url "$URL" --ca "$work/ca.pem" --db vigil_pm --vigil "$VIGIL" "$@"

# The stop mark through the real path: Telegraf runs vigil, is stopped with
# SIGTERM, and the last vigil point in InfluxDB carries stopping=1. Uses the
# Telegraf that tests/telegraf-e2e.sh builds (CI runs it first).
TELEGRAF=${VIGIL_CACHE:-$HOME/.cache/vigil}/telegraf-v1.34.4
if [ ! -x "$TELEGRAF" ]; then
  echo "stop mark through Telegraf: skipped, no $TELEGRAF (tests/telegraf-e2e.sh builds it)"
  exit 0
fi
cat > "$work/telegraf.conf" <<CONF
[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = "pm-telegraf"
[[outputs.influxdb]]
  urls = ["$URL"]
  tls_ca = "$work/ca.pem"
  database = "vigil_pm"
  skip_database_creation = true
  username = "vigil-admin"
  password = "s3cret pass"
[[inputs.execd]]
  command = ["$VIGIL", "--root", "$(pwd)/fixtures/passthrough-gpu-vfio", "--collectors", "vigil"]
  signal = "STDIN"
  data_format = "influx"
CONF
"$TELEGRAF" --config "$work/telegraf.conf" > "$work/telegraf.log" 2>&1 &
TG=$!
q() {
  curl -fsS --cacert "$work/ca.pem" -u "vigil-admin:s3cret pass" "$URL/query" --data-urlencode db=vigil_pm --data-urlencode "q=$1"
}
# Stop it only once a heartbeat has arrived: a vigil stopped before its
# first batch has no heartbeat to mark (a loaded machine starts slowly).
for _ in $(seq 1 300); do
  case "$(q "SELECT count(\"uptime_s\") FROM \"vigil\" WHERE \"host\" = 'pm-telegraf'")" in
    *'"count"'*) break ;;
  esac
  sleep 0.1
done
kill -TERM "$TG"
wait "$TG" || true
last=$(q "SELECT \"stopping\", \"boot_id\" FROM \"vigil\" WHERE \"host\" = 'pm-telegraf' ORDER BY time DESC LIMIT 1")
case "$last" in
  *'"stopping","boot_id"'*',1,"'*) echo "stop mark through Telegraf: the last point has stopping=1" ;;
  *) echo "stop mark through Telegraf: missing: $last"; cat "$work/telegraf.log"; exit 1 ;;
esac

