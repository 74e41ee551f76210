#!/usr/bin/env bash
# The example alerting rules (docs/prometheus/rules.yml) are valid and behave
# as their unit tests say. Exit 77 (skipped) when promtool is not installed
# (Debian package prometheus; scripts/install-deps.sh installs it).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/docs/prometheus"
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not installed (Debian package prometheus): skipped" >&2
  exit 77
fi
promtool check rules "$dir/rules.yml"
cd "$dir" && promtool test rules rules_test.yml
