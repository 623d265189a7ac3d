#!/usr/bin/env bash
# libvirtd-storage-up.sh DIR [VOL_MIB] - start a private, UNPRIVILEGED
# libvirtd that serves the real storage driver, for lvrpc's stream tests
# (the test driver of libvirtd-up.sh does not implement volume upload and
# download).
#
# The daemon runs as uid/gid 65534 (nobody, via setpriv) when started as
# root, else as the calling user; either way it is a session daemon (URI path
# /session), so its configuration and state live in DIR and nothing is
# written to /etc or /var.  LIBVIRT_DRIVER_DIR holds only a symlink to the
# storage driver module.  It listens on
#   - TCP  127.0.0.1:PORT, auth none (PORT picked as in libvirtd-up.sh)
#   - TLS  127.0.0.1:TLS_PORT, auth none, client certificates verified, when
#     openssl and tests/make-certs.sh are there (certificates in DIR/pki)
#   - UNIX DIR/sock/libvirt-sock, auth none
# and has a directory pool, active from the start, whose target is DIR/pool:
# its definition is written into the daemon's configuration (with an
# autostart link) before it starts, so no virsh is needed.  With VOL_MIB, the
# pool also holds a raw volume "vol" of that size (a sparse file).
#
# Ports: picked and bound under the same flock as libvirtd-up.sh (random
# ports below the ephemeral range that nothing listens on; a daemon that
# could not bind is retried with other ports).
#
# Readiness: the script speaks the protocol itself over /dev/tcp
# (AUTH_LIST, then CONNECT_OPEN storage:///session, which answers only once
# the storage driver is up).
#
# Output: KEY=VALUE lines on stdout, also written to DIR/env (source it):
#   LIBVIRTD_PID LIBVIRTD_DIR LIBVIRTD_TCP_PORT LIBVIRTD_UNIX_SOCK LIBVIRTD_LOG
#   LIBVIRTD_URI_TCP   storage+tcp://127.0.0.1:PORT/session
#   LIBVIRTD_URI_UNIX  storage+unix:///session?socket=DIR/sock/libvirt-sock
#   LIBVIRTD_TLS_PORT LIBVIRTD_PKI LIBVIRTD_URI_TLS (empty without TLS;
#     storage+tls://localhost:TLS_PORT/session?pkipath=DIR/pki)
#   LIBVIRTD_POOL LIBVIRTD_POOL_DIR LIBVIRTD_VOL (POOL/vol, or empty)
# Stop it with libvirtd-down.sh DIR (by PID; it checks the command line).
# Exit status: 0 ready; 99 libvirtd, the storage driver or a tool is
# missing; 1 other failure.
#
# Env knobs: TCP_PORT, TLS_PORT (fixed ports), POOL (pool name, default
# lvrpc), WATCH_PID (stop the daemon when this process exits), TLS=0 (no TLS
# listener), LOG_LEVEL (3), RUN_AS (uid:gid when root, default 65534:65534).
set -euo pipefail

DIR=${1:?usage: libvirtd-storage-up.sh DIR [VOL_MIB]}
VOL_MIB=${2:-}
POOL=${POOL:-lvrpc}
LOG_LEVEL=${LOG_LEVEL:-3}
RUN_AS=${RUN_AS:-65534:65534}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

die() { echo "libvirtd-storage-up.sh: $*" >&2; exit 1; }
missing() { echo "libvirtd-storage-up.sh: $*" >&2; exit 99; }

LIBVIRTD=${LIBVIRTD:-}
[ -n "$LIBVIRTD" ] || LIBVIRTD=$(PATH=$PATH:/usr/sbin:/sbin command -v libvirtd || true)
[ -n "$LIBVIRTD" ] && [ -x "$LIBVIRTD" ] ||
  missing "libvirtd not found: apt-get install --no-install-recommends libvirt-daemon"
for tool in flock timeout od setsid; do
  command -v "$tool" >/dev/null || missing "'$tool' not found (coreutils/util-linux)"
done
# The storage driver module: next to the other connection drivers.
STORAGE_SO=${STORAGE_SO:-}
if [ -z "$STORAGE_SO" ]; then
  for d in /usr/lib/*/libvirt/connection-driver /usr/lib64/libvirt/connection-driver \
           /usr/lib/libvirt/connection-driver; do
    [ -f "$d/libvirt_driver_storage.so" ] && { STORAGE_SO=$d/libvirt_driver_storage.so; break; }
  done
fi
[ -n "$STORAGE_SO" ] && [ -f "$STORAGE_SO" ] ||
  missing "libvirt_driver_storage.so not found (libvirt-daemon-driver-storage*; set STORAGE_SO)"

# As root the daemon drops to RUN_AS; otherwise it runs as the caller.
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || missing "'setpriv' not found (util-linux)"
  UID_GID=$RUN_AS
  AS_USER=(setpriv --reuid="${UID_GID%%:*}" --regid="${UID_GID##*:}" --clear-groups)
else
  UID_GID=
  AS_USER=()
fi

if [ -f "$DIR/libvirtd.pid.launcher" ] && kill -0 "$(cat "$DIR/libvirtd.pid.launcher")" 2>/dev/null; then
  die "libvirtd already running for $DIR (pid $(cat "$DIR/libvirtd.pid.launcher")); run libvirtd-down.sh first"
fi

SOCK_DIR=$DIR/sock
CONF_DIR=$DIR/home/.config/libvirt
mkdir -p "$SOCK_DIR" "$DIR/run" "$DIR/drivers" "$DIR/pool" "$DIR/home/.cache" \
         "$CONF_DIR/storage/autostart"
[ ${#SOCK_DIR} -lt 80 ] || die "DIR is too long for a UNIX socket path: $SOCK_DIR"
chmod 700 "$DIR/run"
ln -sf "$STORAGE_SO" "$DIR/drivers/"

# The pool, defined and autostarted from the daemon's own configuration.
cat > "$CONF_DIR/storage/$POOL.xml" <<EOF
<pool type='dir'>
  <name>$POOL</name>
  <target>
    <path>$DIR/pool</path>
  </target>
</pool>
EOF
ln -sf "$CONF_DIR/storage/$POOL.xml" "$CONF_DIR/storage/autostart/$POOL.xml"
if [ -n "$VOL_MIB" ]; then
  truncate -s "${VOL_MIB}M" "$DIR/pool/vol"
fi

# ------------------------------------------------------------ certificates
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKI=$DIR/pki
if [ "${TLS:-1}" = 1 ] && command -v openssl >/dev/null && [ -f "$HERE/make-certs.sh" ]; then
  bash "$HERE/make-certs.sh" "$PKI" >/dev/null || die "make-certs.sh $PKI failed"
  TLS=1
else
  TLS=0
fi

# The daemon must own its dir (and reach it: /tmp-like parents are fine).
[ -z "$UID_GID" ] || chown -R "$UID_GID" "$DIR"

. "$HERE/libvirtd-common.sh" # probe, ports, start_on_free_ports, wait_ready, start_watchdog

write_conf() { # tcp-port tls-port
  cat > "$DIR/libvirtd.conf" <<EOF
# generated by lvrpc tests/libvirtd-storage-up.sh
listen_tcp = 1
listen_tls = $TLS
listen_addr = "127.0.0.1"
tcp_port = "$1"
auth_tcp = "none"
tls_port = "$2"
auth_tls = "none"
key_file = "$PKI/private/serverkey.pem"
cert_file = "$PKI/servercert.pem"
ca_file = "$PKI/cacert.pem"
unix_sock_dir = "$SOCK_DIR"
unix_sock_rw_perms = "0777"
auth_unix_rw = "none"
log_outputs = "$LOG_LEVEL:file:$DIR/libvirtd.log"
EOF
  [ -z "$UID_GID" ] || chown "$UID_GID" "$DIR/libvirtd.conf"
}

# Starts the daemon and waits until it listens (or dies): 0 listening,
# 2 it exited (probably a port was taken), 1 timeout.
start_daemon() {
  local port=$1 tls_port=$2
  write_conf "$port" "$tls_port"
  rm -f "$DIR/libvirtd.pid" "$SOCK_DIR"/libvirt-*sock*
  # Session mode keeps config and state under HOME / XDG_*; "Unable to get
  # session bus connection" errors in the log are harmless.  The chain of
  # execs (setsid, setpriv, env) keeps $! the daemon's pid.
  (cd "$DIR" && exec setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME="$DIR/home" XDG_RUNTIME_DIR="$DIR/run" XDG_CONFIG_HOME="$DIR/home/.config" \
      XDG_CACHE_HOME="$DIR/home/.cache" LIBVIRT_DRIVER_DIR="$DIR/drivers" \
      ${AS_USER[@]+"${AS_USER[@]}"} "$LIBVIRTD" -l -f "$DIR/libvirtd.conf" -p "$DIR/libvirtd.pid" \
      </dev/null >"$DIR/libvirtd.stdout" 2>&1) &
  PID=$!
  await_listening "$port" "$tls_port"
}

# ------------------------------------------------------------ start
start_on_free_ports
wait_ready storage:///session
start_watchdog

cat > "$DIR/env" <<EOF
LIBVIRTD_PID=$PID
LIBVIRTD_DIR=$DIR
LIBVIRTD_TCP_PORT=$TCP_PORT
LIBVIRTD_UNIX_SOCK=$SOCK_DIR/libvirt-sock
LIBVIRTD_URI_TCP=storage+tcp://127.0.0.1:$TCP_PORT/session
LIBVIRTD_URI_UNIX=storage+unix:///session?socket=$SOCK_DIR/libvirt-sock
LIBVIRTD_LOG=$DIR/libvirtd.log
LIBVIRTD_TLS_PORT=$([ $TLS = 1 ] && echo "$TLS_PORT")
LIBVIRTD_PKI=$([ $TLS = 1 ] && echo "$PKI")
LIBVIRTD_URI_TLS=$([ $TLS = 1 ] && echo "storage+tls://localhost:$TLS_PORT/session?pkipath=$PKI")
LIBVIRTD_POOL=$POOL
LIBVIRTD_POOL_DIR=$DIR/pool
LIBVIRTD_VOL=$([ -n "$VOL_MIB" ] && echo "$POOL/vol")
EOF
cat "$DIR/env"
