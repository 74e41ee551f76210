#!/usr/bin/env bash
# Runs a command as user nobody when run as root (as is, when not root), to
# show that a test needing root is reported as skipped without it.
#   as-nobody.sh <command> [args...]
set -eu
if [ "$(id -u)" -ne 0 ]; then exec "$@"; fi
# The binary must be reachable by nobody: a build under a private directory is not.
if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$1"; then
  echo "as-nobody: user nobody cannot execute $1 (a directory above it is not searchable)" >&2
  exit 1
fi
exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
