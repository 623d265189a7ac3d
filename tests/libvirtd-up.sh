#!/usr/bin/env bash
# libvirtd-up.sh DIR - start a private libvirtd for lvrpc's tests.
#
# The daemon serves only the test driver (test:///default, built into
# libvirt.so): LIBVIRT_DRIVER_DIR points at an empty directory, so no driver
# module is loaded and nothing is written to /etc or /var (as root, libvirtd
# still writes /run/libvirt/common/system.token).  It listens on
#   - TCP  127.0.0.1:PORT, auth none (PORT picked here, see below)
#   - TLS  127.0.0.1:TLS_PORT, auth none, client certificates verified;
#     certificates from tests/make-certs.sh (DIR/pki, or PKI_DIR)
#   - UNIX DIR/sock/libvirt-sock (rw, auth none), libvirt-sock-ro, admin socket
# Config, pid files, log, sockets and the XDG dirs all live in DIR.
#
# Ports: `make -j check` may start several daemons at once, so the ports are
# picked and bound under an flock: random ports below the kernel's ephemeral
# range that nothing listens on; the lock is held until the daemon listens,
# and a daemon that could not bind is retried with other ports.
#
# Readiness: libvirtd accepts TCP connections before its drivers are ready
# and answers only afterwards, so the script speaks the protocol itself
# (AUTH_LIST, then CONNECT_OPEN test:///default) over /dev/tcp; no virsh
# needed.
#
# Output: KEY=VALUE lines on stdout, also written to DIR/env (source it):
#   LIBVIRTD_PID LIBVIRTD_DIR LIBVIRTD_TCP_PORT LIBVIRTD_UNIX_SOCK
#   LIBVIRTD_UNIX_SOCK_RO LIBVIRTD_URI_TCP LIBVIRTD_URI_UNIX LIBVIRTD_LOG
#   LIBVIRTD_VERSION (e.g. 9.0.0, from libvirtd --version)
#   LIBVIRTD_TLS_PORT LIBVIRTD_PKI LIBVIRTD_URI_TLS
#     (test+tls://localhost:TLS_PORT/default?pkipath=PKI; all three empty
#     when openssl is missing: the daemon then has no TLS listener)
# Exit status: 0 ready; 99 libvirtd (or a tool) is missing; 1 other failure.
#
# Env knobs: TCP_PORT (fixed port; default: picked), WATCH_PID (stop the
# daemon when this process exits, so a crashed test leaves no daemon behind),
# MAX_CLIENT_REQUESTS (5), MAX_WORKERS (20), MIN_WORKERS (5), PRIO_WORKERS (5),
# MAX_CLIENTS (5000), KEEPALIVE_INTERVAL (5), KEEPALIVE_COUNT (5), LOG_LEVEL (3).
# TLS knobs: TLS_PORT (fixed port), PKI_DIR (certificates made by
# make-certs.sh; default DIR/pki, made here), TLS_SERVER_CERT and
# TLS_SERVER_KEY (the daemon's certificate and key; default
# PKI_DIR/servercert.pem and PKI_DIR/private/serverkey.pem), TLS_NO_SANITY=1
# (tls_no_sanity_certificate: lets the daemon serve a faulty certificate, e.g.
# an expired one), TLS_VERIFY_CLIENT=0 (tls_no_verify_certificate).
set -euo pipefail

DIR=${1:?usage: libvirtd-up.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

MAX_CLIENT_REQUESTS=${MAX_CLIENT_REQUESTS:-5}
MAX_WORKERS=${MAX_WORKERS:-20}
MIN_WORKERS=${MIN_WORKERS:-5}
PRIO_WORKERS=${PRIO_WORKERS:-5}
MAX_CLIENTS=${MAX_CLIENTS:-5000}
KEEPALIVE_INTERVAL=${KEEPALIVE_INTERVAL:-5}
KEEPALIVE_COUNT=${KEEPALIVE_COUNT:-5}
LOG_LEVEL=${LOG_LEVEL:-3}
TLS_VERIFY_CLIENT=${TLS_VERIFY_CLIENT:-1}
TLS_NO_SANITY=${TLS_NO_SANITY:-0}

die() { echo "libvirtd-up.sh: $*" >&2; exit 1; }

LIBVIRTD=${LIBVIRTD:-}
if [ -z "$LIBVIRTD" ]; then
  LIBVIRTD=$(PATH=$PATH:/usr/sbin:/sbin command -v libvirtd || true)
fi
if [ -z "$LIBVIRTD" ] || [ ! -x "$LIBVIRTD" ]; then
  echo "libvirtd not found: apt-get install --no-install-recommends libvirt-daemon" >&2
  exit 99
fi
for tool in flock timeout od setsid; do
  command -v "$tool" >/dev/null || { echo "libvirtd-up.sh: '$tool' not found (coreutils/util-linux)" >&2; exit 99; }
done

if [ -f "$DIR/libvirtd.pid.launcher" ] && kill -0 "$(cat "$DIR/libvirtd.pid.launcher")" 2>/dev/null; then
  die "libvirtd already running for $DIR (pid $(cat "$DIR/libvirtd.pid.launcher")); run libvirtd-down.sh first"
fi

SOCK_DIR=$DIR/sock
mkdir -p "$SOCK_DIR" "$DIR/drivers-empty" "$DIR/xdg/config" "$DIR/xdg/cache" "$DIR/xdg/runtime"
chmod 700 "$DIR/xdg/runtime"
[ ${#SOCK_DIR} -lt 80 ] || die "DIR is too long for a UNIX socket path: $SOCK_DIR"

# ------------------------------------------------------------ certificates
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKI=${PKI_DIR:-$DIR/pki}
TLS=1
if ! command -v openssl >/dev/null; then
  echo "libvirtd-up.sh: openssl not found: no TLS listener" >&2
  TLS=0
else
  bash "$HERE/make-certs.sh" "$PKI" || die "make-certs.sh $PKI failed"
  PKI=$(cd "$PKI" && pwd)
fi
TLS_SERVER_CERT=${TLS_SERVER_CERT:-$PKI/servercert.pem}
TLS_SERVER_KEY=${TLS_SERVER_KEY:-$PKI/private/serverkey.pem}

# ------------------------------------------------------------ protocol probe
# One packet: length word, then prog 0x20008086, vers 1, proc, type CALL (0),
# serial, status OK (0), then the body.  Writes the hex of the reply's first
# 28 bytes (length word + header) to stdout, or nothing after 3 s.
hex32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
send_call() { # fd proc serial body-escapes body-len
  local len=$((28 + $5))
  # shellcheck disable=SC2059
  printf "$(hex32 $len)\\x20\\x00\\x80\\x86$(hex32 1)$(hex32 "$2")$(hex32 0)$(hex32 "$3")$(hex32 0)$4" >&"$1"
}
read_reply() { # fd nbytes -> hex
  timeout 3 od -An -v -tx1 -N "$2" <&"$1" 2>/dev/null | tr -d ' \n'
}
# Succeeds when the daemon answers AUTH_LIST (66) with [none] and then opens
# test:///default (CONNECT_OPEN, 1) without an error.
probe() {
  local port=$1 r
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  send_call 3 66 1 "" 0
  # reply: len 36, 20008086 1 66 REPLY(1) serial 1 OK(0), count 1, AUTH_NONE(0)
  r=$(read_reply 3 36)
  if [ "$r" != "0000002420008086000000010000004200000001000000010000000000000001""00000000" ]; then
    exec 3<&- ; return 1
  fi
  # CONNECT_OPEN: optstr present (1), "test:///default" (15 bytes + 1 pad), flags 0
  send_call 3 1 2 "$(hex32 1)$(hex32 15)test:///default\\x00$(hex32 0)" 28
  r=$(read_reply 3 28)
  exec 3<&-
  [ "$r" = "0000001c200080860000000100000001000000010000000200000000" ]
}

port_listening() { (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below the ephemeral range are never handed out to outgoing sockets.
read -r EPH_LO _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPH_LO=32768
[ "$EPH_LO" -gt 12000 ] || EPH_LO=32768
PORT_LO=10000
PORT_HI=$((EPH_LO - 1))
random_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((PORT_LO + (RANDOM * 32768 + RANDOM) % (PORT_HI - PORT_LO + 1)))
    # leave libvirt's own well-known ports to a real libvirtd
    case $p in 16509|16514) continue ;; esac
    port_listening "$p" || { echo "$p"; return 0; }
  done
  return 1
}

write_conf() { # tcp-port tls-port
  cat > "$DIR/libvirtd.conf" <<EOF
# generated by lvrpc tests/libvirtd-up.sh
listen_tcp = 1
listen_tls = $TLS
listen_addr = "127.0.0.1"
tcp_port = "$1"
auth_tcp = "none"
tls_port = "$2"
auth_tls = "none"
key_file = "$TLS_SERVER_KEY"
cert_file = "$TLS_SERVER_CERT"
ca_file = "$PKI/cacert.pem"
tls_no_verify_certificate = $([ "$TLS_VERIFY_CLIENT" = 1 ] && echo 0 || echo 1)
tls_no_sanity_certificate = $([ "$TLS_NO_SANITY" = 1 ] && echo 1 || echo 0)

unix_sock_dir = "$SOCK_DIR"
unix_sock_rw_perms = "0777"
unix_sock_ro_perms = "0777"
auth_unix_rw = "none"
auth_unix_ro = "none"

max_clients = $MAX_CLIENTS
max_anonymous_clients = 20
min_workers = $MIN_WORKERS
max_workers = $MAX_WORKERS
prio_workers = $PRIO_WORKERS
max_client_requests = $MAX_CLIENT_REQUESTS
keepalive_interval = $KEEPALIVE_INTERVAL
keepalive_count = $KEEPALIVE_COUNT

log_outputs = "$LOG_LEVEL:file:$DIR/libvirtd.log"
audit_level = 0
EOF
}

# Starts the daemon on $1 (TCP) and $2 (TLS) and waits until it listens (or
# dies): 0 listening, 2 it exited (probably a port was taken), 1 timeout.
start_daemon() {
  local port=$1 tls_port=$2
  write_conf "$port" "$tls_port"
  rm -f "$DIR/libvirtd.pid" "$SOCK_DIR"/libvirt-*sock*
  # -l: listen on TCP (libvirtd needs it besides listen_tcp); -f config;
  # -p pid file.  Not -d: backgrounded here so that $! is the daemon's pid.
  env LIBVIRT_DRIVER_DIR="$DIR/drivers-empty" \
      XDG_CONFIG_HOME="$DIR/xdg/config" XDG_CACHE_HOME="$DIR/xdg/cache" \
      XDG_RUNTIME_DIR="$DIR/xdg/runtime" \
      setsid "$LIBVIRTD" -l -f "$DIR/libvirtd.conf" -p "$DIR/libvirtd.pid" \
      </dev/null >"$DIR/libvirtd.stdout" 2>&1 &
  PID=$!
  echo "$PID" > "$DIR/libvirtd.pid.launcher"
  for _ in $(seq 1 200); do
    kill -0 "$PID" 2>/dev/null || { wait "$PID" 2>/dev/null || true; return 2; }
    if [ -S "$SOCK_DIR/libvirt-sock" ] && port_listening "$port" &&
       { [ $TLS = 0 ] || port_listening "$tls_port"; }; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

show_log() {
  echo "--- $DIR/libvirtd.stdout / libvirtd.log:" >&2
  cat "$DIR/libvirtd.stdout" "$DIR/libvirtd.log" >&2 2>/dev/null || true
}

# ------------------------------------------------------------ start
LOCK=${TMPDIR:-/tmp}/lvrpc-tests-libvirtd-port.$(id -u).lock
exec 9>>"$LOCK"
flock -w 60 9 || die "could not lock $LOCK within 60 s"
PID=
TCP_PORT_FIXED=${TCP_PORT:-}
TLS_PORT_FIXED=${TLS_PORT:-}
for attempt in 1 2 3 4 5 6 7 8; do
  if [ -n "$TCP_PORT_FIXED" ]; then
    TCP_PORT=$TCP_PORT_FIXED
    port_listening "$TCP_PORT" && die "port $TCP_PORT already in use"
  else
    TCP_PORT=$(random_port) || die "no free TCP port found in $PORT_LO-$PORT_HI"
  fi
  if [ -n "$TLS_PORT_FIXED" ]; then
    TLS_PORT=$TLS_PORT_FIXED
    port_listening "$TLS_PORT" && die "port $TLS_PORT already in use"
  else
    TLS_PORT=$TCP_PORT
    while [ "$TLS_PORT" = "$TCP_PORT" ]; do
      TLS_PORT=$(random_port) || die "no free TLS port found in $PORT_LO-$PORT_HI"
    done
  fi
  rc=0
  start_daemon "$TCP_PORT" "$TLS_PORT" || rc=$?
  [ $rc = 0 ] && break
  if [ $rc = 1 ]; then
    kill -KILL "$PID" 2>/dev/null || true
    show_log; die "libvirtd did not listen on ports $TCP_PORT/$TLS_PORT within 10 s"
  fi
  # It exited: retry on other ports if it lost a race for one of them.
  if [ -z "$TCP_PORT_FIXED$TLS_PORT_FIXED" ] && grep -qi 'address already in use' \
       "$DIR/libvirtd.stdout" "$DIR/libvirtd.log" 2>/dev/null && [ "$attempt" -lt 8 ]; then
    echo "libvirtd-up.sh: port $TCP_PORT or $TLS_PORT taken, retrying" >&2
    : > "$DIR/libvirtd.log"
    continue
  fi
  show_log; die "libvirtd exited during startup"
done
flock -u 9
exec 9>&-

# ------------------------------------------------------------ readiness
ready=0
for _ in $(seq 1 100); do
  kill -0 "$PID" 2>/dev/null || { show_log; die "libvirtd exited during startup"; }
  if probe "$TCP_PORT"; then ready=1; break; fi
  sleep 0.1
done
if [ $ready != 1 ]; then
  kill -KILL "$PID" 2>/dev/null || true
  show_log; die "libvirtd did not answer AUTH_LIST/CONNECT_OPEN on port $TCP_PORT within 10 s"
fi

# ------------------------------------------------------------ watchdog
# Stops the daemon if the process that asked for it dies without calling
# libvirtd-down.sh (a crashed or killed test).  All fds closed: it must not
# hold the test's output pipes open.
if [ -n "${WATCH_PID:-}" ]; then
  (
    while kill -0 "$WATCH_PID" 2>/dev/null && kill -0 "$PID" 2>/dev/null; do sleep 1; done
    if kill -0 "$PID" 2>/dev/null &&
       tr '\0' ' ' < "/proc/$PID/cmdline" 2>/dev/null | grep -q -- "-f $DIR/libvirtd.conf"; then
      kill -TERM "$PID" 2>/dev/null
    fi
  ) </dev/null >/dev/null 2>&1 &
  echo $! > "$DIR/watchdog.pid"
fi

cat > "$DIR/env" <<EOF
LIBVIRTD_PID=$PID
LIBVIRTD_DIR=$DIR
LIBVIRTD_TCP_PORT=$TCP_PORT
LIBVIRTD_UNIX_SOCK=$SOCK_DIR/libvirt-sock
LIBVIRTD_UNIX_SOCK_RO=$SOCK_DIR/libvirt-sock-ro
LIBVIRTD_URI_TCP=test+tcp://127.0.0.1:$TCP_PORT/default
LIBVIRTD_URI_UNIX=test+unix:///default?socket=$SOCK_DIR/libvirt-sock
LIBVIRTD_LOG=$DIR/libvirtd.log
LIBVIRTD_VERSION=$("$LIBVIRTD" --version 2>/dev/null | awk '{print $NF; exit}')
LIBVIRTD_TLS_PORT=$([ $TLS = 1 ] && echo "$TLS_PORT")
LIBVIRTD_PKI=$([ $TLS = 1 ] && echo "$PKI")
LIBVIRTD_URI_TLS=$([ $TLS = 1 ] && echo "test+tls://localhost:$TLS_PORT/default?pkipath=$PKI")
EOF
cat "$DIR/env"
