#!/usr/bin/env bash
# Installs the Debian packages jobhost builds and tests with. Idempotent:
# runs `apt-get update` once, and only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libboost-dev libboost-filesystem-dev
      libtomlplusplus-dev libsqlitecpp-dev libsqlite3-dev sqlite3
      libspdlog-dev libfmt-dev catch2 libcli11-dev nlohmann-json3-dev
      libhowardhinnant-date-dev libssl-dev tzdata file
      openssl  # the CLI: the webhook test makes its CA with it
      prometheus  # promtool: the metrics and alerting-rules tests
      libseccomp-dev  # syscall_filter (exec/sandbox.cpp)
      python3 python3-dev libpython3-dev  # the python plugin embeds CPython (plugins/python)
      postgresql libpq-dev  # the PostgreSQL store and its tests (docs/cluster.md)
      chromium chromium-driver python3-selenium  # the dashboard's browser test
      clang libclang-rt-14-dev  # libFuzzer for scripts/fuzz.sh (docs/fuzzing.md)
      golang-go  # plugins/go_hello, a Go job (-buildmode=c-shared; docs/languages.md)
      # scripts/package.sh (dpkg-buildflags, dpkg-shlibdeps for cpack) and
      # scripts/package-test.sh (lintian; curl for /healthz)
      dpkg-dev lintian curl)
# plugins/rust_hello, a Rust job (docs/languages.md), needs cargo and rustc:
# Debian's, unless the machine has its own (rustup's, in ~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  pkgs+=(cargo)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
