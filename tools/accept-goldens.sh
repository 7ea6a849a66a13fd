#!/usr/bin/env bash
# Accepts the golden files a test run wrote as NAME.new (UPDATE_GOLDEN=1 cargo
# test), after their diff was read: each replaces its golden.
set -euo pipefail
cd "$(dirname "$0")/.."
n=0
while IFS= read -r -d '' f; do
  mv -- "$f" "${f%.new}"
  echo "accepted ${f%.new}"
  n=$((n + 1))
done < <(find tests/golden -name '*.new' -type f -print0)
echo "$n golden file(s) accepted"
