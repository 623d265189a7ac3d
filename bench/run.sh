#!/usr/bin/env bash
# bench/run.sh [SECONDS] - lvrpc's benchmark (what `make bench` runs).
#
# Measures calls/s, p50/p99 latency and client CPU per call of
#   - lvrpc Direct mode and Shared mode with K = 1 and K = 4 connections
#     (the CLI: `lvrpc --mode … bench`),
#   - libvirt.so's own client with one shared virConnectPtr and with one per
#     thread (bench_libvirt; skipped when configure found no libvirt),
#   - a bare socket round trip, hand-written protocol, one call at a time
#     (bench_raw_rpc): the floor; and the same busy for 2 µs after each
#     reply (-W 2000), which on a small VM lets the daemon's vCPU go idle
#     between calls, as any client that does something with a reply does,
#   - what one thread wake-up costs here (bench_wake_floor: two threads
#     passing a token on semaphores), unpinned and on one CPU,
# with 1, 4, 16 and 64 threads, against a private real libvirtd
# (tests/libvirtd-up.sh; test:///default over TCP, daemon defaults) and,
# at 1 and 16 threads, against the project's fake server in its INSTANT mode
# (bench_instant_server), which shows the clients' own overhead, once
# unpinned and once with server and client on one CPU; and the
# memory of 1,000 threads waiting on one Shared connection (bench_mem_waiters).
#
# Every point runs REPS times (default 3; the one-thread points of the real
# daemon REPS_T1 = 5 times) for SECONDS each (default 2); the
# repetitions are rounds over the whole list (reversed every other round),
# so lvrpc and libvirt.so points alternate and drift hits them alike; the
# table shows medians.  About 8 minutes with the defaults.
#
# Output: progress on stderr; the Markdown table (bench/summarize.py) on
# stdout and in $OUT/table.md, the raw result lines in $OUT/results.txt.
#
# Environment:
#   LVRPC         the CLI (default: ./cli/lvrpc, i.e. run from the build dir)
#   BENCH_BINDIR  where bench_* are (default: ./bench)
#   BENCH_OUT     results directory (default: ./bench-results)
#   REPS=3        repetitions per point
#   REPS_T1=5     repetitions of the one-thread points of the real daemon
#                 (the latency target; the floor moves with the noise)
#   CALLS="lookup"            calls of the full thread matrix
#   THREADS="1 4 16 64"       thread counts of the full matrix
#   EXTRA_CALLS="libversion"  calls measured at EXTRA_THREADS too
#   TLS_THREADS="1 16"  thread counts over the daemon's TLS listener (lookup); empty: none
#   EXTRA_THREADS="1 16"
#   INSTANT_THREADS="1 16 64" thread counts against the instant server
#   PIN_THREADS="1 16"        thread counts against a second instant server
#                             that, with its clients, runs on CPU $PIN_CPU (0)
#                             only (taskset); empty: none
#   MEM_THREADS=1000          waiters of the memory test
#   PYTHON=python3
set -euo pipefail

SECS=${1:-${BENCH_SECONDS:-2}}
REPS=${REPS:-3}
REPS_T1=${REPS_T1:-5}
CALLS=${CALLS:-lookup}
THREADS=${THREADS:-"1 4 16 64"}
EXTRA_CALLS=${EXTRA_CALLS-libversion}
TLS_THREADS=${TLS_THREADS-"1 16"}
EXTRA_THREADS=${EXTRA_THREADS:-"1 16"}
INSTANT_THREADS=${INSTANT_THREADS:-"1 16 64"}
PIN_THREADS=${PIN_THREADS-"1 16"}
MEM_THREADS=${MEM_THREADS:-1000}
PYTHON=${PYTHON:-python3}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
LVRPC=${LVRPC:-$PWD/cli/lvrpc}
BIN=${BENCH_BINDIR:-$PWD/bench}
OUT=${BENCH_OUT:-$PWD/bench-results}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SECONDS must be a number, not '$SECS'"
[ -x "$LVRPC" ] || die "no CLI at $LVRPC: run 'make bench' in the build directory, or set LVRPC"
for p in bench_raw_rpc bench_instant_server bench_mem_waiters bench_wake_floor; do
  [ -x "$BIN/$p" ] || die "no $BIN/$p: run 'make bench' in the build directory, or set BENCH_BINDIR"
done
HAVE_LIBVIRT=0
[ -x "$BIN/bench_libvirt" ] && HAVE_LIBVIRT=1
[ $HAVE_LIBVIRT = 1 ] || echo "bench/run.sh: no bench_libvirt (configure found no libvirt-dev): libvirt.so rows skipped" >&2
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (needed by bench/summarize.py)"
[ -f "$TOP/tests/libvirtd-up.sh" ] || die "tests/libvirtd-up.sh not found under $TOP"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RES=$OUT/results.txt
: > "$RES"
# the daemon's dir holds its UNIX socket: keep the path short
DDIR=$(mktemp -d "${TMPDIR:-/tmp}/lvrpc-bench-XXXXXX")
[ ${#DDIR} -lt 60 ] || DDIR=$(mktemp -d /tmp/lvrpc-bench-XXXXXX)
ISRV_PID=
ISRV1_PID=

cleanup() {
  [ -n "$ISRV_PID" ] && kill -TERM "$ISRV_PID" 2>/dev/null && wait "$ISRV_PID" 2>/dev/null
  [ -n "$ISRV1_PID" ] && kill -TERM "$ISRV1_PID" 2>/dev/null && wait "$ISRV1_PID" 2>/dev/null
  bash "$TOP/tests/libvirtd-down.sh" "$DDIR" >/dev/null 2>&1 || true
  rm -rf "$DDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------ servers
echo "bench/run.sh: starting libvirtd" >&2
WATCH_PID=$$ bash "$TOP/tests/libvirtd-up.sh" "$DDIR/d" > "$DDIR/up.out" ||
  { cat "$DDIR/up.out" >&2; die "tests/libvirtd-up.sh failed"; }
# shellcheck disable=SC1091
. "$DDIR/d/env"
REAL_URI=$LIBVIRTD_URI_TCP
REAL_PID=$LIBVIRTD_PID
REAL_PORT=$LIBVIRTD_TCP_PORT
REAL_TLS_URI=${LIBVIRTD_URI_TLS:-}
REAL_TLS_PORT=${LIBVIRTD_TLS_PORT:-}

"$BIN/bench_instant_server" > "$DDIR/instant.out" 2>&1 &
ISRV_PID=$!
for _ in $(seq 1 100); do grep -q '^URI=' "$DDIR/instant.out" && break; sleep 0.05; done
grep -q '^URI=' "$DDIR/instant.out" || { cat "$DDIR/instant.out" >&2; die "bench_instant_server did not start"; }
INST_URI=$(sed -n 's/^URI=//p' "$DDIR/instant.out")
INST_PORT=$(sed -n 's/^PORT=//p' "$DDIR/instant.out")

# The same server and its clients all on one CPU (taskset): no wake-up
# crosses CPUs, so what is left of a round trip is software, the clients'
# own included.  (On a VM, waking a thread on another, idle vCPU costs tens
# of microseconds and hides the clients' differences.)
PIN_CPU=${PIN_CPU:-0}
PIN=()
ISRV1_PID=
if [ -n "$PIN_THREADS" ] && command -v taskset >/dev/null; then
  PIN=(taskset -c "$PIN_CPU")
  "${PIN[@]}" "$BIN/bench_instant_server" > "$DDIR/instant1.out" 2>&1 &
  ISRV1_PID=$!
  for _ in $(seq 1 100); do grep -q '^URI=' "$DDIR/instant1.out" && break; sleep 0.05; done
  grep -q '^URI=' "$DDIR/instant1.out" || { cat "$DDIR/instant1.out" >&2; die "bench_instant_server (pinned) did not start"; }
  INST1_URI=$(sed -n 's/^URI=//p' "$DDIR/instant1.out")
  INST1_PORT=$(sed -n 's/^PORT=//p' "$DDIR/instant1.out")
else
  [ -z "$PIN_THREADS" ] || echo "bench/run.sh: no taskset: the one-CPU rows are skipped" >&2
  PIN_THREADS=
fi

"$LVRPC" --version >/dev/null 2>&1 || true # a libtool wrapper may set itself up on first run

# ------------------------------------------------------------ the points
# One point per line: server client call threads
POINTS=()
lv_clients="libvirt-shared lvrpc-direct libvirt-own lvrpc-shared-k1 lvrpc-shared-k4"
add_matrix() { # server call threads...
  local srv=$1 call=$2 t c; shift 2
  POINTS+=("$srv raw $call 1") # next to the 1-thread points, in either direction
  POINTS+=("$srv raw-work $call 1")
  for t in "$@"; do
    for c in $lv_clients; do POINTS+=("$srv $c $call $t"); done
  done
}
for c in $CALLS; do add_matrix real "$c" $THREADS; done
for c in $EXTRA_CALLS; do add_matrix real "$c" $EXTRA_THREADS; done
if [ -n "$TLS_THREADS" ] && [ -n "$REAL_TLS_URI" ] && "$LVRPC" -c "$REAL_TLS_URI" version >/dev/null 2>&1; then
  for t in $TLS_THREADS; do
    for c in libvirt-shared lvrpc-direct libvirt-own lvrpc-shared-k1; do POINTS+=("realtls $c lookup $t"); done
  done
fi
POINTS+=("instant raw lookup 1")
for t in $INSTANT_THREADS; do
  for c in libvirt-shared lvrpc-direct lvrpc-shared-k1 lvrpc-shared-k4; do POINTS+=("instant $c lookup $t"); done
done
if [ -n "$PIN_THREADS" ]; then
  POINTS+=("instant1cpu raw lookup 1")
  for t in $PIN_THREADS; do
    for c in libvirt-shared lvrpc-direct lvrpc-shared-k1; do POINTS+=("instant1cpu $c lookup $t"); done
  done
fi
POINTS+=("mem mem-waiters - $MEM_THREADS")
POINTS+=("wake wake-floor - 2")
[ -n "$PIN_THREADS" ] && POINTS+=("wake1cpu wake-floor - 2")

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid -> utime+stime in ticks (0 when gone)
  local s
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  set -- $s
  echo $(( ${12} + ${13} ))
}

# Entries into an idle state, all vCPUs together (0 without cpuidle).  Per
# call, it tells how often a wake-up found a vCPU asleep: on a small VM each
# costs the waker and the woken tens of µs, and the daemon's CPU per call
# follows it more than anything the client does.
idle_entries() {
  local f s=0
  for f in /sys/devices/system/cpu/cpu[0-9]*/cpuidle/state*/usage; do
    [ -r "$f" ] && s=$((s + $(cat "$f")))
  done
  echo "$s"
}

run_point() { # rep server client call threads
  local rep=$1 srv=$2 cl=$3 call=$4 t=$5 uri port spid out rc=0 t0 t1 i0 i1 calls
  case $srv in
    real) uri=$REAL_URI; port=$REAL_PORT; spid=$REAL_PID ;;
    realtls) uri=$REAL_TLS_URI; port=$REAL_TLS_PORT; spid=$REAL_PID ;;
    instant) uri=$INST_URI; port=$INST_PORT; spid=$ISRV_PID ;;
    instant1cpu) uri=$INST1_URI; port=$INST1_PORT; spid=$ISRV1_PID ;;
    mem|wake|wake1cpu) uri=; port=; spid= ;;
  esac
  local cmd=()
  case $cl in
    lvrpc-direct) cmd=("$LVRPC" -c "$uri" --mode direct bench --threads "$t" --seconds "$SECS" --call "$call") ;;
    lvrpc-shared-k*) cmd=("$LVRPC" -c "$uri" --mode shared --pool "${cl#lvrpc-shared-k}" bench --threads "$t" --seconds "$SECS" --call "$call") ;;
    libvirt-shared) cmd=("$BIN/bench_libvirt" -u "$uri" -m shared -t "$t" -s "$SECS" -c "$call") ;;
    libvirt-own) cmd=("$BIN/bench_libvirt" -u "$uri" -m own -t "$t" -s "$SECS" -c "$call") ;;
    raw) cmd=("$BIN/bench_raw_rpc" -T "127.0.0.1:$port" -s "$SECS" -c "$call") ;;
    raw-work) cmd=("$BIN/bench_raw_rpc" -T "127.0.0.1:$port" -s "$SECS" -c "$call" -W 2000) ;;
    mem-waiters) cmd=("$BIN/bench_mem_waiters" -t "$t") ;;
    wake-floor) cmd=("$BIN/bench_wake_floor" -s "$SECS") ;;
  esac
  case $cl in libvirt-*) [ $HAVE_LIBVIRT = 1 ] || return 0 ;; esac
  case $srv in instant1cpu|wake1cpu) cmd=("${PIN[@]}" "${cmd[@]}") ;; esac
  t0=0; [ -n "$spid" ] && t0=$(cpu_ticks "$spid")
  i0=$(idle_entries)
  out=$("${cmd[@]}" 2>"$DDIR/stderr") || rc=$?
  i1=$(idle_entries)
  t1=0; [ -n "$spid" ] && t1=$(cpu_ticks "$spid")
  out=$(printf '%s\n' "$out" | grep -E '^(calls|waiters)=' | tail -n 1 || true)
  local extra=""
  calls=$(printf '%s' "$out" | sed -n 's/^calls=\([0-9]*\).*/\1/p')
  if [ -n "$spid" ] && [ -n "$calls" ] && [ "$calls" -gt 0 ]; then
    extra=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$calls" 'BEGIN { printf "server_cpu_us_per_call=%.2f", d * 1e6 / hz / n }')
  fi
  if [ -n "$calls" ] && [ "$calls" -gt 0 ] && [ "$i1" -gt 0 ]; then
    extra="$extra $(awk -v d=$((i1 - i0)) -v n="$calls" 'BEGIN { printf "idle_entries_per_call=%.3f", d / n }')"
  fi
  if [ $rc != 0 ] || [ -z "$out" ]; then
    echo "  FAILED (exit $rc): ${cmd[*]}: $(head -c 300 "$DDIR/stderr")" >&2
    extra="$extra failed=1"
  fi
  echo "server=$srv client=$cl call=$call threads=$t rep=$rep $out $extra" >> "$RES"
  printf '  %s\n' "$out" >&2
}

# How busy the machine is besides us: load average and CPU pressure.
busy() {
  local psi=
  [ -r /proc/pressure/cpu ] && psi=", CPU pressure avg60 $(sed -n 's/^some .*avg60=\([0-9.]*\).*/\1/p' /proc/pressure/cpu) %"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg)$psi"
}
N=${#POINTS[@]}
BUSY_START=$(busy)
echo "bench/run.sh: ${N} points x ${REPS} runs x ${SECS} s; $BUSY_START" >&2
case $(cut -d' ' -f1 /proc/loadavg) in
  0.*) ;;
  *) echo "bench/run.sh: warning: the machine is busy ($BUSY_START): expect noisy figures" >&2 ;;
esac
ROUNDS=$REPS
[ "$REPS_T1" -gt "$ROUNDS" ] && ROUNDS=$REPS_T1
START=$(date +%s)
for rep in $(seq 1 "$ROUNDS"); do
  idx=$(seq 0 $((N - 1)))
  [ $((rep % 2)) = 0 ] && idx=$(seq $((N - 1)) -1 0)
  i=0
  for k in $idx; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    set -- ${POINTS[$k]}
    # rounds past REPS: only the one-thread points of the real daemon
    if [ "$rep" -gt "$REPS" ] && { [ "$4" != 1 ] || [ "$1" != real ]; }; then continue; fi
    echo "[round $rep/$ROUNDS, $i/$N] $1 $2 call=$3 threads=$4" >&2
    run_point "$rep" "$@"
  done
done
ELAPSED=$(( $(date +%s) - START ))

{
  echo "<!-- bench/run.sh $SECS; REPS=$REPS REPS_T1=$REPS_T1; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs;" \
       "$(uname -sr); libvirtd ${LIBVIRTD_VERSION:-?}; ${ELAPSED} s;" \
       "at the start: $BUSY_START; at the end: $(busy) -->"
  "$PYTHON" "$HERE/summarize.py" --seconds "$SECS" --reps "$REPS (one-thread points of the real daemon: $REPS_T1)" "$RES"
} > "$OUT/table.md"
cat "$OUT/table.md"
echo "bench/run.sh: done in ${ELAPSED} s; results in $OUT" >&2
