#!/usr/bin/env bash
# with-libvirtd.sh TEST [ARGS...] - run a shell test against a private libvirtd.
#
# automake's log compiler for tests/*.sh (SH_LOG_COMPILER): starts a daemon
# with libvirtd-up.sh in a mktemp dir, exports
#   LVRPC_TEST_URI        test+tcp://127.0.0.1:PORT/default
#   LVRPC_TEST_URI_UNIX   test+unix:///default?socket=DIR/sock/libvirt-sock
#   LVRPC_TEST_DAEMON_DIR the daemon's dir (log: libvirtd.log)
# runs `bash TEST ARGS...`, stops the daemon and removes the dir (kept when
# LVRPCT_KEEP is set).  Exit status: the test's, or 99 (hard error) when the
# daemon could not be started.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: with-libvirtd.sh TEST [ARGS...]" >&2; exit 99; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${TMPDIR:-/tmp}
[ ${#BASE} -le 60 ] || BASE=/tmp
DIR=$(mktemp -d "$BASE/lvrpct-XXXXXX") || { echo "mktemp failed" >&2; exit 99; }

cleanup() {
  [ ! -f "$DIR/libvirtd.pid.launcher" ] || bash "$HERE/libvirtd-down.sh" "$DIR" >/dev/null
  if [ -n "${LVRPCT_KEEP:-}" ]; then echo "LVRPCT_KEEP: keeping $DIR" >&2; else rm -rf "$DIR"; fi
}

WATCH_PID=$$ bash "$HERE/libvirtd-up.sh" "$DIR" > "$DIR/up.out"
rc=$?
if [ $rc != 0 ]; then
  echo "HARD ERROR (test setup): libvirtd-up.sh failed (exit status $rc)" >&2
  cleanup
  exit 99
fi
# shellcheck disable=SC1091
. "$DIR/env"
export LVRPC_TEST_URI=$LIBVIRTD_URI_TCP
export LVRPC_TEST_URI_UNIX=$LIBVIRTD_URI_UNIX
export LVRPC_TEST_DAEMON_DIR=$DIR

trap 'cleanup; exit 99' INT TERM HUP
bash "$@"
rc=$?
trap - INT TERM HUP
cleanup
exit $rc
