#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
#   scripts/test.sh              normal build in build/
#   scripts/test.sh --sanitize   ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=build
flags=()
# Tests mostly wait (for schedules, runs, daemons): four at a time on two
# cores; under the sanitizers they use the CPU, two at a time.
jobs=4
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  jobs=2
  flags=(-DJOBHOST_SANITIZE=ON -DJOBHOST_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j2
# A skipped test (exit 77, SKIP_RETURN_CODE) is not a pass: say how many.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 600 2>&1 | tee "$log" || rc=$?
skipped=$(grep -c -- '(Skipped)$' "$log" || true)
echo "tests skipped: $skipped"
grep -- '(Skipped)$' "$log" | sed 's/^[[:space:]]*/  /' || true
exit "$rc"
