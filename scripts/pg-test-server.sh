#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of the PostgreSQL store
# (docs/cluster.md), one per DIR so that two build trees can test at once.
#   scripts/pg-test-server.sh start DIR    initdb in DIR/data, start it on a
#       free 127.0.0.1 port, write its URI to DIR/url (fsync off: a test
#       server, not a store). No server binaries: says so, no DIR/url, exit 0,
#       and the tests that need it skip themselves.
#   scripts/pg-test-server.sh restart DIR  pg_ctl restart -m fast, same port.
#   scripts/pg-test-server.sh stop DIR     stop it (-m immediate), rm -rf DIR.
# It listens on 127.0.0.1 only. As root it runs the server as the postgres
# user (initdb and postgres refuse root). When that user cannot reach DIR (a
# parent not searchable by it, as under /root) or DIR is too long for a Unix
# socket's path (107 bytes), the cluster lives in /tmp/jobhost-pg.XXXXXX and
# DIR/data and DIR/server.log are links to it.
set -euo pipefail
usage() { echo "usage: $0 start|restart|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m -- "$2")
case $dir in *"'"* | *'"'* | *[[:space:]]*)
  echo "$0: DIR may not hold quotes or spaces: $dir" >&2; exit 2 ;;
esac

# The server binaries: pg_config's (libpq-dev may name a version whose server
# is not installed), else the newest /usr/lib/postgresql/*/bin.
bindir=""
for d in "$(pg_config --bindir 2>/dev/null || true)" \
    $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -rV); do
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
    bindir=$d
    break
  fi
done
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
# Stops the cluster recorded in DIR, if any, and removes it (and its /tmp home).
remove_cluster() {
  local data home
  [ -e "$dir/data" ] || [ -L "$dir/data" ] || return 0
  data=$(readlink -f "$dir/data")
  if [ -n "$bindir" ] && [ -f "$data/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$data" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
  fi
  if [ -L "$dir/data" ]; then
    home=$(dirname "$data")
    case $home in /tmp/jobhost-pg.*) rm -rf -- "$home" ;; esac
  fi
  rm -rf -- "$dir/data" "$dir/server.log"
}

case $cmd in
stop)
  remove_cluster || true
  rm -rf -- "$dir" || true
  exit 0
  ;;
restart)
  [ -n "$bindir" ] || { echo "$0: no PostgreSQL server binaries" >&2; exit 1; }
  [ -e "$dir/data/PG_VERSION" ] || { echo "$0: no cluster in $dir/data" >&2; exit 1; }
  data=$(readlink -f "$dir/data")
  # -l again, or the new server writes to (and holds open) our stdout.
  as_pg "$bindir/pg_ctl" -D "$data" -l "$(readlink -f "$dir/server.log")" \
    restart -m fast -w -t 60 >/dev/null
  exit 0
  ;;
start) ;;
*) usage ;;
esac

mkdir -p -- "$dir"
rm -f -- "$dir/url"
if [ -z "$bindir" ]; then
  echo "$0: no PostgreSQL server binaries (Debian package postgresql): not started" >&2
  exit 0
fi
remove_cluster
home=$dir
if [ "$(id -u)" -eq 0 ]; then
  if ! id -u postgres >/dev/null 2>&1; then
    echo "$0: running as root and there is no postgres user to run the server: not started" >&2
    exit 0
  fi
  chown postgres: "$dir"
  as_pg test -w "$dir" -a -x "$dir" || home=""
fi
# DIR/.s.PGSQL.<port> must fit in sockaddr_un's 108 bytes.
[ ${#dir} -le 88 ] || home=""
if [ -z "$home" ]; then
  home=$(mktemp -d /tmp/jobhost-pg.XXXXXX)
  [ "$(id -u)" -ne 0 ] || chown postgres: "$home"
  ln -s "$home/data" "$dir/data"
  ln -s "$home/server.log" "$dir/server.log"
fi

if ! as_pg "$bindir/initdb" -D "$home/data" -A trust -U postgres --no-sync \
    -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log" >&2
  exit 1
fi
# The port is free when picked but may be taken before the server binds it
# (another tree starting its own): try a few.
for _ in 1 2 3 4 5; do
  rm -f -- "$home/server.log"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if as_pg "$bindir/pg_ctl" -w -t 60 -D "$home/data" -l "$home/server.log" \
      -o "-h 127.0.0.1 -p $port -k '$home' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    exit 0
  fi
  grep -q 'could not bind' "$home/server.log" 2>/dev/null || break
done
echo "$0: the server did not start; $home/server.log:" >&2
tail -n 20 "$home/server.log" >&2 || true
exit 1
