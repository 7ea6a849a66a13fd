#!/usr/bin/env bash
# Whole-process comparison on one generated tree (default 460 functions), and
# the bytes of line protocol per function it writes (the budget: 1 KB):
# vigil --once vs `lspci -vvv` (which reports less) vs the I/O floor (a program
# that only opens and reads the files vigil opened, listed with strace) vs the
# system-call floor (ioreplay: every file system call vigil made, replayed in
# one thread with nothing between them; the links, listings and directory
# opens the I/O floor leaves out are in it). Also
# checks peak RSS (--once: at most 8 MiB at 460 functions, 12 MiB at 2,000;
# medians of three runs), identical output between runs, anonymous memory growth over 10,000 execd
# collections, one open per file and no directory listed twice. Warm execd
# triggers (what a long-running process reads) against cold --once in CPU, at
# N and at $BIG functions (default 2000). Prints a
# table; fails only on those (timings depend on the machine and are reported,
# not asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-460}
command -v strace >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
command -v lspci >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pciutils >/dev/null; }
cargo build -q --release --bin vigil --example genroot --example iofloor --example ioreplay
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/examples/genroot "$N" "$work/root" >/dev/null
# A larger tree for the warm/cold ratio and RSS only (fewer rounds: CI has 2 cores).
BIG=${BIG:-2000}
./target/release/examples/genroot "$BIG" "$work/big" >/dev/null
# The generated tree boots with pci=noaer, as the incident's host did: AER
# counts are dropped, and a warm trigger does not read them. The same tree
# with OS-native AER shows what a warm trigger costs where they count.
cp -a "$work/root" "$work/native"
sed -i 's/ pci=noaer//' "$work/native/proc/cmdline"
python3 tools/perf_compare.py --root "$work/root" --native "$work/native" --trace "$work/strace" --functions "$N" \
  --vigil ./target/release/vigil --floor ./target/release/examples/iofloor \
  --replay ./target/release/examples/ioreplay --small fixtures/asus-p6t6-switch \
  --big "$work/big" --big-functions "$BIG"
