# libvirtd-common.sh - helpers sourced by libvirtd-up.sh and
# libvirtd-storage-up.sh: a protocol probe that tells when a daemon really
# answers, free-port picking, and the start on free ports, readiness wait
# and watchdog both daemons share.  Sourced, not run.

# ------------------------------------------------------------ protocol probe
# One packet: length word, then prog 0x20008086, vers 1, proc, type CALL (0),
# serial, status OK (0), then the body.  Writes the hex of the reply's first
# NBYTES bytes to stdout, or nothing after 3 s.
hex32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
send_call() { # fd proc serial body-escapes body-len
  local len=$((28 + $5))
  # shellcheck disable=SC2059
  printf "$(hex32 $len)\\x20\\x00\\x80\\x86$(hex32 1)$(hex32 "$2")$(hex32 0)$(hex32 "$3")$(hex32 0)$4" >&"$1"
}
read_reply() { # fd nbytes -> hex
  timeout 3 od -An -v -tx1 -N "$2" <&"$1" 2>/dev/null | tr -d ' \n'
}
# probe PORT NAME: succeeds when the daemon answers AUTH_LIST (66) with
# [none] and then opens NAME (CONNECT_OPEN, 1) without an error.
probe() {
  local port=$1 name=$2 r pad=
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  send_call 3 66 1 "" 0
  # reply: len 36, 20008086 1 66 REPLY(1) serial 1 OK(0), count 1, AUTH_NONE(0)
  r=$(read_reply 3 36)
  if [ "$r" != "0000002420008086000000010000004200000001000000010000000000000001""00000000" ]; then
    exec 3<&- ; return 1
  fi
  # CONNECT_OPEN: optstr present (1), NAME padded to 4 bytes, flags 0
  for _ in $(seq 1 $(( (4 - ${#name} % 4) % 4 ))); do pad="$pad\\x00"; done
  send_call 3 1 2 "$(hex32 1)$(hex32 ${#name})$name$pad$(hex32 0)" \
    $(( 12 + ${#name} + (4 - ${#name} % 4) % 4 ))
  r=$(read_reply 3 28)
  exec 3<&-
  [ "$r" = "0000001c200080860000000100000001000000010000000200000000" ]
}

# ------------------------------------------------------------ ports
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

# ------------------------------------------------------------ start and stop
# What each daemon script shares once it has DIR, SOCK_DIR, TLS (0/1),
# die() and its own start_daemon PORT TLS_PORT, which launches libvirtd in
# the background, sets PID and then returns await_listening's answer.

show_log() {
  echo "--- $DIR/libvirtd.stdout / libvirtd.log:" >&2
  cat "$DIR/libvirtd.stdout" "$DIR/libvirtd.log" >&2 2>/dev/null || true
}

# await_listening PORT TLS_PORT: records PID, then waits until the daemon
# listens: 0 listening, 2 it exited (probably a port was taken), 1 timeout.
await_listening() {
  local port=$1 tls_port=$2
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

# Starts the daemon on TCP_PORT / TLS_PORT from the environment, or on free
# ports picked under a lock shared by every test daemon (retried when
# libvirtd loses a race for one).  Sets PID, TCP_PORT and TLS_PORT.
start_on_free_ports() {
  local lock=${TMPDIR:-/tmp}/lvrpc-tests-libvirtd-port.$(id -u).lock
  local tcp_fixed=${TCP_PORT:-} tls_fixed=${TLS_PORT:-} rc
  exec 9>>"$lock"
  flock -w 60 9 || die "could not lock $lock within 60 s"
  PID=
  for attempt in 1 2 3 4 5 6 7 8; do
    if [ -n "$tcp_fixed" ]; then
      TCP_PORT=$tcp_fixed
      port_listening "$TCP_PORT" && die "port $TCP_PORT already in use"
    else
      TCP_PORT=$(random_port) || die "no free TCP port found in $PORT_LO-$PORT_HI"
    fi
    if [ -n "$tls_fixed" ]; then
      TLS_PORT=$tls_fixed
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
    if [ -z "$tcp_fixed$tls_fixed" ] && grep -qi 'address already in use' \
         "$DIR/libvirtd.stdout" "$DIR/libvirtd.log" 2>/dev/null && [ "$attempt" -lt 8 ]; then
      echo "$(basename "$0"): port $TCP_PORT or $TLS_PORT taken, retrying" >&2
      : > "$DIR/libvirtd.log"
      continue
    fi
    show_log; die "libvirtd exited during startup"
  done
  flock -u 9
  exec 9>&-
}

# wait_ready NAME: until the daemon answers AUTH_LIST and opens NAME.
wait_ready() {
  for _ in $(seq 1 100); do
    kill -0 "$PID" 2>/dev/null || { show_log; die "libvirtd exited during startup"; }
    probe "$TCP_PORT" "$1" && return 0
    sleep 0.1
  done
  kill -KILL "$PID" 2>/dev/null || true
  show_log; die "libvirtd did not answer AUTH_LIST/CONNECT_OPEN on port $TCP_PORT within 10 s"
}

# Stops the daemon if the process WATCH_PID (the one that asked for it)
# dies without calling libvirtd-down.sh (a crashed or killed test).  All
# fds closed: it must not hold the test's output pipes open.
start_watchdog() {
  [ -n "${WATCH_PID:-}" ] || return 0
  (
    while kill -0 "$WATCH_PID" 2>/dev/null && kill -0 "$PID" 2>/dev/null; do sleep 1; done
    if kill -0 "$PID" 2>/dev/null &&
       tr '\0' ' ' < "/proc/$PID/cmdline" 2>/dev/null | grep -q -- "-f $DIR/libvirtd.conf"; then
      kill -TERM "$PID" 2>/dev/null
    fi
  ) </dev/null >/dev/null 2>&1 &
  echo $! > "$DIR/watchdog.pid"
}
