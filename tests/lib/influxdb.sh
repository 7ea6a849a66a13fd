# Sourced by the end-to-end scripts: Debian's InfluxDB 1.x on loopback, its
# data under a scratch folder that the caller removes.

# influxdb_conf WORK PORT [EXTRA]: writes WORK/influxdb.conf, HTTP on PORT (the
# RPC bind address on PORT + 2), EXTRA appended to its [http] section.
influxdb_conf() {
  local work=$1 port=$2 extra=${3:-}
  cat > "$work/influxdb.conf" <<CONF
bind-address = "127.0.0.1:$((port + 2))"
reporting-disabled = true
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
$extra
CONF
}

# start_influxdb WORK PORT: plain HTTP, no auth; sets INFLUX_PID and returns
# once /ping answers (fails with the server's log if it never does).
start_influxdb() {
  local work=$1 port=$2
  influxdb_conf "$work" "$port"
  influxd -config "$work/influxdb.conf" > "$work/influxd.log" 2>&1 &
  INFLUX_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/ping" >/dev/null || { cat "$work/influxd.log"; return 1; }
}
