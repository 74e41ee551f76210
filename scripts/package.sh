#!/usr/bin/env bash
# Builds the Debian packages jobhost and jobhost-dev (docs/deploying.md):
# a Release build in build-deb/ with prefix /usr and Debian's hardening
# flags, then cpack. Prints the paths of the two .deb files.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=build-deb
# dpkg-buildflags gives what Debian builds packages with: stack protector,
# _FORTIFY_SOURCE, format checks, relro, and with hardening=+all bindnow for
# the plugins too (lintian checks for them; the executables have it anyway).
# Without -g: the binaries are stripped anyway, and the build is shorter.
# CMake reads these on the first configure of build-deb/ only.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
nodebug() { sed -e 's/\(^\| \)-g\( \|$\)/ /g'; }
export CFLAGS="$(dpkg-buildflags --get CFLAGS | nodebug) $(dpkg-buildflags --get CPPFLAGS)"
export CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS | nodebug) $(dpkg-buildflags --get CPPFLAGS)"
export LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DJOBHOST_BUILD_TESTS=OFF -DJOBHOST_BUILD_BENCH=OFF -DJOBHOST_CARGO=OFF -DJOBHOST_GO=OFF \
  >/dev/null  # the Rust and Go examples are not packaged
cmake --build "$build" -j2 >&2  # stdout: only the paths of the packages
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >&2)
ls "$PWD/$build"/*.deb
