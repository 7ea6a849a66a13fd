#!/usr/bin/env bash
# vigil's Prometheus text output read by the real node_exporter textfile
# collector: a pinned node_exporter built from the Go module proxy (cached
# under ~/.cache/vigil), only the textfile collector enabled, vigil writing the
# .prom file the way prometheus/vigil-textfile.service does (temp file, then
# rename). Asserts node_textfile_scrape_error 0, that vigil's families are
# served, and spot-checks values against vigil's line protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
NODE_EXPORTER_VERSION=v1.9.1
CACHE=${VIGIL_CACHE:-$HOME/.cache/vigil}
NODE_EXPORTER=$CACHE/node_exporter-$NODE_EXPORTER_VERSION
PORT=${VIGIL_PROM_PORT:-19100}

log() { echo "== $*"; }

if [ ! -x "$NODE_EXPORTER" ]; then
  if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] && export PATH=$PATH:/usr/local/go/bin
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "installing Go (GOTOOLCHAIN=auto fetches the version node_exporter asks for)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  fi
  log "building node_exporter $NODE_EXPORTER_VERSION"
  src=$(mktemp -d)
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/node_exporter@$NODE_EXPORTER_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$dir/." "$src/" && chmod -R u+w "$src"
  mkdir -p "$CACHE"
  (cd "$src" && GOTOOLCHAIN=auto CGO_ENABLED=0 go build -trimpath -o "$NODE_EXPORTER.tmp" .)
  mv "$NODE_EXPORTER.tmp" "$NODE_EXPORTER"
  rm -rf "$src"
fi
[ "${1:-}" = "--build-only" ] && exit 0
"$NODE_EXPORTER" --version >/dev/null 2>&1

log "building vigil"
cargo build -q
VIGIL=$REPO/target/debug/vigil

work=$(mktemp -d)
cleanup() {
  [ -n "${NE_PID:-}" ] && kill "$NE_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/textfile"

# The shipped unit's command, with only the binary, its root and the directory changed.
cmd=$(sed -n 's/^ExecStart=//p' prometheus/vigil-textfile.service)
[ -n "$cmd" ]
cmd=${cmd//\/usr\/bin\/vigil/$VIGIL --root $REPO/fixtures/FIXTURE}
cmd=${cmd//\/var\/lib\/prometheus\/node-exporter/$work/textfile}

"$NODE_EXPORTER" --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$work/textfile" \
  --web.listen-address="127.0.0.1:$PORT" > "$work/node_exporter.log" 2>&1 &
NE_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && break
  sleep 0.1
done

# The check has teeth: a file the parser rejects reads node_textfile_scrape_error 1.
printf 'vigil_broken{address="x"} 1 2 3\n' > "$work/textfile/vigil.prom"
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -x 'node_textfile_scrape_error 1' >/dev/null \
  || { echo "FAIL node_exporter did not flag a broken textfile"; exit 1; }
# That scrape logs its parse error; only what node_exporter logs after it counts.
for _ in $(seq 1 50); do
  grep -q 'vigil_broken\|spurious string' "$work/node_exporter.log" && break
  sleep 0.1
done
grep -q 'vigil_broken\|spurious string' "$work/node_exporter.log" \
  || { echo "FAIL node_exporter logged nothing for the broken textfile"; cat "$work/node_exporter.log"; exit 1; }
log_mark=$(wc -l < "$work/node_exporter.log")

# Each fixture alone in the directory: a healthy tree, bad input (odd strings to
# escape), the 23 captured functions, and EDAC counters.
for fixture in passthrough-gpu-vfio corrupt-inputs pciutils-captures edac-firmware-first; do
  log "node_exporter reads vigil's textfile: $fixture"
  rm -f "$work/textfile/"*
  eval "${cmd//FIXTURE/$fixture}" 2>/dev/null
  [ -s "$work/textfile/vigil.prom" ] && [ ! -e "$work/textfile/vigil.prom.tmp" ]
  curl -fsS "http://127.0.0.1:$PORT/metrics" > "$work/metrics.txt" || { cat "$work/node_exporter.log"; exit 1; }
  "$VIGIL" --once --root "fixtures/$fixture" > "$work/once.lp" 2>/dev/null
  python3 tests/prometheus_e2e.py --served "$work/metrics.txt" --file "$work/textfile/vigil.prom" --lp "$work/once.lp"
done
if tail -n +"$((log_mark + 1))" "$work/node_exporter.log" | grep -i 'level=error'; then echo "node_exporter logged errors"; exit 1; fi
