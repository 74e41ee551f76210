#!/usr/bin/env bash
# CI check of the Debian packages (the first "must show" of issue 17), on a
# machine without a running systemd, as root:
#   build both .deb (scripts/package.sh); lintian, failing on errors; install
#   with dpkg; validate the packaged config; systemd-analyze verify the unit;
#   run the packaged daemon, fire the packaged hello job and see it succeed,
#   SIGTERM it and check it exits 0; purge, and check that nothing the
#   packages or the daemon made is left.
# It installs and purges system packages, so it is meant for CI machines: it
# refuses to run where jobhost is installed, or /etc/jobhost or
# /var/lib/jobhost exist, since the purge would remove them.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "package-test: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run it as root: it installs and purges packages"
for p in jobhost jobhost-dev; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    "" | un*) ;;
    *) die "$p is already known to dpkg ($status): this script would purge it; remove it first" ;;
  esac
done
for path in /etc/jobhost /var/lib/jobhost; do
  [ ! -e "$path" ] || die "$path exists: the purge at the end would remove it; move it away first"
done

mapfile -t debs < <(scripts/package.sh)
[ ${#debs[@]} -eq 2 ] || die "expected two .deb files, got: ${debs[*]}"
for deb in "${debs[@]}"; do
  say "$(basename "$deb"):"
  dpkg-deb --field "$deb" Package Version Architecture Depends | sed 's/^/  /' >&2
done

say "lintian (errors fail; warnings are listed in docs/deploying.md)"
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" >&2 || die "lintian reports errors"

work=$(mktemp -d)
daemon_pid=""
installed=0
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  [ "$installed" -eq 0 ] || dpkg --purge jobhost jobhost-dev >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "dpkg -i"
installed=1
if ! dpkg -i "${debs[@]}" >&2; then
  say "installing the missing dependencies"
  DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >&2 || die "apt-get install -f"
fi
for p in jobhost jobhost-dev; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p")" = "ii " ] || die "$p is not installed"
done
# Every path of the packages (but shared directories like /usr/share),
# and what the maintainer scripts and the daemon make.
dpkg -L jobhost jobhost-dev | grep jobhost | sort -u >"$work/files"
say "$(wc -l <"$work/files") paths installed"

say "checks of the installed files"
for f in /usr/bin/jobhost /usr/libexec/jobhost/jobhost-forkserver; do
  [ -x "$f" ] || die "$f is not executable"
  file "$f" | grep -q "stripped" && ! file "$f" | grep -q "not stripped" || die "$f is not stripped"
  ! readelf -d "$f" | grep -Eq 'RPATH|RUNPATH' || die "$f has an RPATH"
done
[ "$(stat -c %a /var/lib/jobhost)" = 711 ] || die "/var/lib/jobhost is not 0711"
[ "$(stat -c %a /etc/jobhost/plugins)" = 755 ] || die "/etc/jobhost/plugins is not 0755"
grep -qx /etc/jobhost/jobhost.toml /var/lib/dpkg/info/jobhost.conffiles ||
  die "/etc/jobhost/jobhost.toml is not a conffile"
for plugin in hello hello_c exec python; do
  [ -f "/usr/lib/jobhost/plugins/$plugin.so" ] || die "the $plugin plugin is not shipped"
done
pkg-config --cflags jobhost >/dev/null || die "pkg-config does not find jobhost.pc"
[ -f /usr/share/cmake/jobhost/jobhostConfig.cmake ] || die "the CMake package is missing"
if command -v systemd-analyze >/dev/null; then
  # man: the Documentation= pages must resolve, through man-db if it is there.
  systemd-analyze verify /lib/systemd/system/jobhost.service >&2 ||
    die "systemd-analyze verify jobhost.service"
fi

say "jobhost validate"
/usr/bin/jobhost validate --config /etc/jobhost/jobhost.toml >&2 || die "the packaged config is not valid"

say "the packaged daemon, briefly (no systemd here: started by hand, as root)"
/usr/bin/jobhost run --config /etc/jobhost/jobhost.toml >"$work/daemon.log" 2>&1 &
daemon_pid=$!
fired=0
for _ in $(seq 1 120); do
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log" >&2; die "the daemon exited"; }
  if /usr/bin/jobhost trigger --config /etc/jobhost/jobhost.toml hello >/dev/null 2>&1; then
    fired=1
    break
  fi
  sleep 0.5
done
[ "$fired" -eq 1 ] || { cat "$work/daemon.log" >&2; die "the daemon never took a trigger"; }
/usr/bin/jobhost trigger --config /etc/jobhost/jobhost.toml disk-usage >&2 ||
  die "cannot trigger the exec job disk-usage"
curl -fsS http://127.0.0.1:9187/healthz >&2 || die "/healthz does not answer"
echo >&2
# The shipped hello plugin and the shipped exec plugin, each through the
# fork server in /usr/libexec, as a dynamic user.
for job in hello disk-usage; do
  succeeded=0
  for _ in $(seq 1 120); do
    if /usr/bin/jobhost history --config /etc/jobhost/jobhost.toml "$job" --json 2>/dev/null |
      grep -q '"outcome": *"succeeded"'; then
      succeeded=1
      break
    fi
    sleep 0.5
  done
  /usr/bin/jobhost history --config /etc/jobhost/jobhost.toml "$job" >&2 || true
  [ "$succeeded" -eq 1 ] || { cat "$work/daemon.log" >&2; die "the $job job did not succeed"; }
done
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || { cat "$work/daemon.log" >&2; die "the daemon exited $rc on SIGTERM"; }
say "daemon stopped on SIGTERM, exit 0"

say "an edited config survives a reinstall (the upgrade path: postinst configure OLD-VERSION)"
echo "# edited by package-test" >>/etc/jobhost/jobhost.toml
dpkg -i --force-confold "${debs[@]}" >&2 || die "dpkg -i over the installed packages"
grep -q "edited by package-test" /etc/jobhost/jobhost.toml || die "the reinstall replaced the edited config"
/usr/bin/jobhost validate --config /etc/jobhost/jobhost.toml >&2 || die "the config is not valid after the reinstall"

say "dpkg --remove keeps the config and the ledger"
dpkg --remove jobhost jobhost-dev >&2
[ ! -e /usr/bin/jobhost ] || die "/usr/bin/jobhost is still there after dpkg --remove"
grep -q "edited by package-test" /etc/jobhost/jobhost.toml || die "dpkg --remove took the config"
[ -f /var/lib/jobhost/jobhost.db ] || die "dpkg --remove took the ledger"

say "dpkg --purge"
dpkg --purge jobhost jobhost-dev >&2
installed=0
left=$(
  while read -r path; do [ ! -e "$path" ] && [ ! -L "$path" ] || echo "$path"; done <"$work/files"
  find /etc/jobhost /var/lib/jobhost /etc/systemd/system /var/lib/systemd -name '*jobhost*' \
    2>/dev/null || true
)
[ -z "$left" ] || die "left behind by the purge: $left"
say "ok: built, lintian-clean of errors, installed, validated, ran, purged without a trace"
