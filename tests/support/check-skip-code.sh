#!/usr/bin/env bash
# Checks the exit code of the custom Catch main (tests/catch_main.cpp):
# 0 when all passed, 77 when something skipped and nothing failed, a failure
# code (never 77) when anything failed, skipped or not.
#   check-skip-code.sh <skip_self_test binary>
set -u
bin=$1
status=0
expect() {  # expect <what> <tag filter> <code | fail>
  "$bin" "$2" >/dev/null 2>&1
  local rc=$?
  if [ "$3" = fail ]; then
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
      echo "FAIL: $1: exit $rc, want a failure code (not 0, not 77)"
      status=1
      return
    fi
  elif [ "$rc" -ne "$3" ]; then
    echo "FAIL: $1: exit $rc, want $3"
    status=1
    return
  fi
  echo "ok: $1: exit $rc"
}
expect "passes" "[.pass]" 0
expect "a skip" "[.skip]" 77
expect "a skip beside a pass" "[.skip],[.pass]" 77
expect "a skip beside a failure" "[.skip],[.fail]" fail
expect "77 failed assertions" "[.fail77]" fail
exit $status
