#!/usr/bin/env bash
# Whole-process comparison on one generated tree (default 460 functions):
# vigil --once vs `lspci -vvv` (which reports less) vs the I/O floor (a program
# that only opens and reads the files vigil opened, listed with strace). Also
# checks peak RSS, identical output between runs, and RSS growth over 10,000
# execd collections. Prints a table; fails only on the memory and determinism
# targets (timings depend on the machine and are reported, not asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-460}
command -v strace >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
command -v lspci >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pciutils >/dev/null; }
cargo build -q --release --bin vigil --example genroot --example iofloor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/examples/genroot "$N" "$work/root" >/dev/null
strace -f -qq -y -e trace=openat,open -o "$work/strace" ./target/release/vigil --once --root "$work/root" >/dev/null
# Regular files vigil opened successfully (not directories); -y prints the
# resolved path of the returned descriptor: "= 4</real/path>".
grep -v O_DIRECTORY "$work/strace" | sed -n 's/.* = [0-9]*<\(.*\)>$/\1/p' | grep "^$work/root/" > "$work/files"
python3 tools/perf_compare.py --root "$work/root" --files "$work/files" --functions "$N" \
  --vigil ./target/release/vigil --floor ./target/release/examples/iofloor --small fixtures/asus-p6t6-switch
