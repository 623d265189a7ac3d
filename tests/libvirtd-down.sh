#!/usr/bin/env bash
# libvirtd-down.sh DIR - stop the libvirtd that libvirtd-up.sh DIR started.
#
# Only by its PID (DIR/libvirtd.pid.launcher), and only after checking that
# the PID still is that daemon (its command line names DIR/libvirtd.conf), so
# a reused PID is never signalled.  SIGTERM, then SIGKILL after 5 s.  DIR
# itself is left in place (the caller removes it, or keeps it to read the log).
set -uo pipefail
DIR=${1:?usage: libvirtd-down.sh DIR}
DIR=$(cd "$DIR" 2>/dev/null && pwd) || { echo "libvirtd-down.sh: no directory $1" >&2; exit 0; }

if [ -f "$DIR/watchdog.pid" ]; then
  WPID=$(cat "$DIR/watchdog.pid")
  # the watchdog is a bash subshell of libvirtd-up.sh; it exits by itself
  # within a second of the daemon, this only makes it quicker
  kill -TERM "$WPID" 2>/dev/null || true
  rm -f "$DIR/watchdog.pid"
fi

PIDF=$DIR/libvirtd.pid.launcher
[ -f "$PIDF" ] || PIDF=$DIR/libvirtd.pid
if [ ! -f "$PIDF" ]; then
  echo "libvirtd-down.sh: no pid file in $DIR" >&2
  exit 0
fi
PID=$(cat "$PIDF")
# Alive and not a zombie: the daemon is not our child, and whoever reaps
# orphans here may take seconds to do so.
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$PID/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
is_ours() {
  alive &&
    tr '\0' ' ' < "/proc/$PID/cmdline" 2>/dev/null | grep -q -- "-f $DIR/libvirtd.conf"
}
if ! is_ours; then
  echo "libvirtd-down.sh: libvirtd $PID for $DIR is not running" >&2
  rm -f "$DIR/libvirtd.pid.launcher"
  exit 0
fi
kill -TERM "$PID"
for _ in $(seq 1 100); do
  alive || break
  sleep 0.05
done
if alive; then
  echo "libvirtd-down.sh: libvirtd $PID ignored SIGTERM, sending SIGKILL" >&2
  kill -KILL "$PID" 2>/dev/null
  for _ in $(seq 1 40); do alive || break; sleep 0.05; done
fi
rm -f "$DIR/libvirtd.pid.launcher" "$DIR/env"
echo "libvirtd $PID stopped"
