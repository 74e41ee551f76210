#!/usr/bin/env bash
# Fails when a file of one box includes a header of a box above it.
#   scripts/check-layers.sh [SOURCE_ROOT]   (default: host/src of this checkout)
#   scripts/check-layers.sh --self-test     shows that a wrong include fails
# A box may include its own headers and those of boxes of a lower rank;
# boxes of the same rank are independent of each other. The order is the
# data flow of docs/architecture.md.
set -euo pipefail
if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$(dirname "$0")/../host/src/." "$tmp"
  echo '#include "engine/engine.h"' >>"$tmp/ledger/store.h"
  if "$0" "$tmp" >"$tmp.out" 2>&1; then
    echo "self-test: ledger including engine was not caught"; cat "$tmp.out"; rm -f "$tmp.out"; exit 1
  fi
  grep -q "ledger (rank 3) includes engine (rank 5)" "$tmp.out" || { cat "$tmp.out"; exit 1; }
  rm -f "$tmp.out"
  echo "self-test: ok (ledger including engine fails the check)"
  exit 0
fi
root=${1:-$(dirname "$0")/../host/src}
declare -A rank=(
  [common]=0 [schedule]=1 [config]=2 [crontab]=2
  [catalog]=3 [exec]=3 [ledger]=3
  [retention]=4 [engine]=5 [reload]=6 [triggers]=6 [observe]=7 [daemon]=8 [cli]=9
)
bad=0
for dir in "$root"/*/; do
  box=$(basename "$dir")
  if [ -z "${rank[$box]+x}" ]; then
    echo "$dir: not a known box; add it to scripts/check-layers.sh and docs/architecture.md"
    bad=1
    continue
  fi
  while IFS=: read -r file line text; do
    dep=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z_]+)\/.*/\1/' <<<"$text")
    [ "$dep" = "$box" ] && continue
    [ -z "${rank[$dep]+x}" ] && continue  # not one of ours (a system or library header)
    if (( rank[$dep] >= rank[$box] )); then
      echo "$file:$line: $box (rank ${rank[$box]}) includes $dep (rank ${rank[$dep]}):${text#*#}"
      bad=1
    fi
  done < <(grep -nH -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]+/' "$dir"* 2>/dev/null || true)
done
if (( bad )); then
  echo "include layering broken: a lower box must not include a higher one (docs/architecture.md)"
  exit 1
fi
echo "include layering: ok"
