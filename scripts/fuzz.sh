#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (docs/fuzzing.md) with ASan+UBSan.
#   scripts/fuzz.sh TARGET [SECONDS]   one target, SECONDS of fuzzing (default 30)
#   scripts/fuzz.sh all [SECONDS]      each target in turn (FUZZ_JOBS=2: two at once)
#   scripts/fuzz.sh --list             the targets
# Builds build-fuzz/ (-DJOBHOST_FUZZ=ON) when needed. Starts from the seeds
# in fuzz/corpus/TARGET/ and fuzz/regressions/TARGET/; what it learns goes to
# build-fuzz/corpus/TARGET/ (not committed). A crash, leak, timeout or OOM
# input is kept in fuzz/crashes/TARGET/ (see fuzz/crashes/README.md for what
# to do with it) and the exit status is 1.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(cron units config fork_plan control_record control_request http crontab)
build=build-fuzz

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$1" = "--list" ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
what=$1
seconds=${2:-30}
[[ $seconds =~ ^[0-9]+$ ]] || usage
if [ "$what" = all ]; then
  selected=("${targets[@]}")
else
  [[ " ${targets[*]} " == *" $what "* ]] || { echo "unknown target \"$what\"; one of: ${targets[*]}" >&2; exit 2; }
  selected=("$what")
fi

scripts/install-deps.sh
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DJOBHOST_FUZZ=ON -DJOBHOST_BUILD_TESTS=OFF -DJOBHOST_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"${FUZZ_BUILD_JOBS:-2}" --target "${selected[@]/#/fuzz_}" >"$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log"; echo "fuzz build failed (log: $build/build.log)" >&2; exit 1; }

# The largest input each target is given: a config file or an HTTP request
# may be bigger than libFuzzer's default of 4 KiB.
max_len() {
  case $1 in
    config | http | control_request) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# Runs one target; its log goes to $build/fuzz-TARGET.log. Returns 1 on a finding.
run_one() {
  local t=$1 work=$build/corpus/$1 crashes=fuzz/crashes/$1
  mkdir -p "$work" "$crashes"
  local log=$build/fuzz-$t.log rc=0
  # halt_on_error etc.: a sanitizer report is a crash; leaks are checked.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$build/bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$crashes/" \
    "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" >"$log" 2>&1 || rc=$?
  local execs per_sec new
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz $t: FOUND A PROBLEM after ${execs:-?} runs (log: $log)"
    # The report, the target's own words (an abort says why on stderr), an
    # uncaught exception, and the first frames of the stack.
    grep -E '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written|fuzz [a-z_]+: |terminate called|  what\(\)|    #[0-9] )' \
      "$log" | head -24 | sed 's/^/  /' || true
    echo "  what to do: fuzz/crashes/README.md"
    return 1
  fi
  echo "fuzz $t: ok, ${execs:-?} runs in ${seconds}s (${per_sec:-?}/s), ${new:-0} new inputs"
}

failed=0
if [ "${FUZZ_JOBS:-1}" -gt 1 ] && [ ${#selected[@]} -gt 1 ]; then
  # N targets at a time, each on one core; results printed in order.
  pids=()
  for t in "${selected[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do sleep 1; done
    run_one "$t" >"$build/fuzz-$t.summary" &
    pids+=($!)
  done
  for i in "${!selected[@]}"; do
    wait "${pids[$i]}" || failed=1
    cat "$build/fuzz-${selected[$i]}.summary"
  done
else
  for t in "${selected[@]}"; do run_one "$t" || failed=1; done
fi
exit "$failed"
