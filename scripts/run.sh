#!/usr/bin/env bash
# Installs what is missing, builds, and runs the daemon on config/jobhost.toml
# in the foreground (Ctrl-C stops it). Extra arguments go to `jobhost run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j2
exec build/bin/jobhost run --config config/jobhost.toml "$@"
