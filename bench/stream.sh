#!/usr/bin/env bash
# bench/stream.sh [MIB] - volume upload and download throughput and client
# CPU: lvrpc (Direct and Shared) beside libvirt.so, on the same daemon in the
# same run.
#
# The daemon: a private, unprivileged libvirtd with the storage driver
# (tests/libvirtd-storage-up.sh), one raw volume of MIB MiB (default 256) in a
# directory pool.  The clients are the two command-line tools, each doing one
# whole transfer per process:
#   lvrpc --mode direct|shared vol-upload|vol-download POOL VOL FILE
#   virsh vol-upload|vol-download --pool POOL VOL FILE   (libvirt.so:
#         virStorageVolUpload/Download + virStreamSendAll/RecvAll)
# timed from a small python wrapper (elapsed wall time, and the process's user
# and system CPU from getrusage(RUSAGE_CHILDREN), to the microsecond).
# Each tool's fixed cost (start, connect, lookups, opening and finishing the
# stream) is measured the same way with an empty transfer (--length 1 for
# the download, an empty file for the upload) and subtracted, so the "net"
# columns are the cost of the data alone.  Everything lives in /dev/shm
# (when there is one) and timed downloads go to /dev/null, so that neither
# the daemon's nor the client's page cache writeback shows in the figures
# (each client's download is checked against the data once, untimed).  Every point runs REPS times
# (default 5) in rounds, the order of the clients rotating each round; the
# table shows medians.
#
# Output: a Markdown table on stdout (raw lines in $OUT/stream-results.txt).
# Environment: LVRPC (default ./cli/lvrpc), VIRSH (virsh), REPS (5),
# OUT (./bench-results), SRCDIR (the source tree; default: this script's ../).
# MIB defaults to 1024 (about 3 GiB of page cache for the volume and the two
# local files; a few minutes).
set -euo pipefail

MIB=${1:-1024}
REPS=${REPS:-5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$HERE/.." && pwd)}
LVRPC=${LVRPC:-./cli/lvrpc}
VIRSH=${VIRSH:-virsh}
OUT=${OUT:-./bench-results}

[ -x "$LVRPC" ] || { echo "stream.sh: $LVRPC not found (set LVRPC)" >&2; exit 1; }
# In a build tree cli/lvrpc is libtool's wrapper script: run the real binary
# (as virsh is one), with the uninstalled library.
LVRPC_DIR=$(cd "$(dirname "$LVRPC")" && pwd)
if [ -x "$LVRPC_DIR/.libs/lvrpc" ] && [ -d "$LVRPC_DIR/../src/.libs" ] &&
   head -c 200 "$LVRPC" | grep -q '^#!'; then
  LVRPC=$LVRPC_DIR/.libs/lvrpc
  export LD_LIBRARY_PATH=$LVRPC_DIR/../src/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
command -v "$VIRSH" >/dev/null || { echo "stream.sh: virsh (libvirt-clients) is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "stream.sh: python3 is needed" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

BASE=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && BASE=/dev/shm
[ ${#BASE} -le 60 ] || BASE=/tmp
DIR=$(mktemp -d "$BASE/lvrpcb-XXXXXX")
chmod 755 "$DIR"
cleanup() {
  [ ! -f "$DIR/libvirtd.pid.launcher" ] || bash "$SRCDIR/tests/libvirtd-down.sh" "$DIR" >/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
WATCH_PID=$$ bash "$SRCDIR/tests/libvirtd-storage-up.sh" "$DIR" "$MIB" > "$DIR/up.out"
# shellcheck disable=SC1091
. "$DIR/env"
URI=$LIBVIRTD_URI_TCP
POOL=$LIBVIRTD_POOL
LOCAL=$DIR/local
mkdir -p "$LOCAL"
head -c $((MIB * 1048576)) /dev/urandom > "$LOCAL/data"
: > "$LOCAL/empty"

# client -> the command line for one transfer
cmd() { # client op file [extra]
  local client=$1 op=$2 file=$3 extra=${4:-}
  case $client in
    lvrpc-direct|lvrpc-shared)
      echo "$LVRPC -c $URI --mode ${client#lvrpc-} $op $POOL vol $file $extra" ;;
    libvirt.so)
      echo "$VIRSH -q -c $URI $op --pool $POOL vol $file $extra" ;;
  esac
}

# Runs one transfer; prints "elapsed user sys" (seconds).
timed() {
  # shellcheck disable=SC2086
  python3 -c '
import resource, subprocess, sys, time
u0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # what python'"'"'s own start left
t = time.monotonic()
r = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], "w"))
e = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.6f %.6f %.6f" % (e, u.ru_utime - u0.ru_utime, u.ru_stime - u0.ru_stime))
sys.exit(r.returncode)' "$DIR/err" $1 ||
    { echo "stream.sh: failed: $1: $(cat "$DIR/err")" >&2; exit 1; }
}

# One volupload first, so that the volume is allocated (not sparse), and
# every client's download checked once.
timed "$(cmd libvirt.so vol-upload "$LOCAL/data")" >/dev/null
clients=(lvrpc-direct lvrpc-shared libvirt.so)
for client in "${clients[@]}"; do
  rm -f "$LOCAL/out"
  timed "$(cmd "$client" vol-download "$LOCAL/out")" >/dev/null
  cmp -s "$LOCAL/data" "$LOCAL/out" || { echo "stream.sh: $client download differs" >&2; exit 1; }
done
rm -f "$LOCAL/out"

# The daemon's CPU (user + system, its threads and its reaped children) in
# clock ticks: the other side of a transfer's cost.
CLK_TCK=$(getconf CLK_TCK)
daemon_ticks() {
  local s
  s=$(sed 's/.*) //' "/proc/$LIBVIRTD_PID/stat")
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} + ${14} + ${15} ))
}

RES=$OUT/stream-results.txt
: > "$RES"
echo "stream.sh: $MIB MiB, $REPS rounds, daemon pid $LIBVIRTD_PID, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for rep in $(seq 1 "$REPS"); do
  n=${#clients[@]}
  for k in $(seq 0 $((n - 1))); do
    client=${clients[$(((k + rep) % n))]}
    for op in vol-upload vol-download; do
      if [ $op = vol-upload ]; then
        d0=$(daemon_ticks)
        big=$(timed "$(cmd "$client" $op "$LOCAL/data")")
        d1=$(daemon_ticks)
        small=$(timed "$(cmd "$client" $op "$LOCAL/empty")")
      else
        d0=$(daemon_ticks)
        big=$(timed "$(cmd "$client" $op /dev/null)")
        d1=$(daemon_ticks)
        small=$(timed "$(cmd "$client" $op /dev/null "--length 1")")
      fi
      dcpu=$(awk -v d=$((d1 - d0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", d / hz }')
      echo "$client $op $MIB $big $small $dcpu $rep" | tee -a "$RES" >&2
    done
  done
done

# Medians per (client, op), and the paired ratios: each round's lvrpc
# transfer against the same round's libvirt.so transfer (the order rotates,
# so that drift of the machine hits every client alike).
python3 - "$RES" "$MIB" <<'EOF'
import sys, statistics as st
rows, by_rep = {}, {}
for line in open(sys.argv[1]):
    c, op, mib, e, u, s, e0, u0, s0, dcpu, rep = line.split()
    v = tuple(map(float, (e, u, s, e0, u0, s0, dcpu)))
    rows.setdefault((c, op), []).append(v)
    by_rep.setdefault((op, int(rep)), {})[c] = v
mib = float(sys.argv[2])
def net_e(x):
    return max(x[0] - x[3], 1e-3)
def net_cpu(x):
    return max(x[1] + x[2] - x[4] - x[5], 0.0)
def spread(v):
    return f"{st.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"
print(f"Volume transfers of {int(mib)} MiB over TCP, one transfer per process, medians of {len(next(iter(rows.values())))}.")
print("raw = whole process; net = minus the same tool's empty transfer (start, connect, lookups,")
print("stream open/finish); daemon CPU = libvirtd's user + system CPU during the whole transfer.")
print()
print("| client | op | MiB/s raw | MiB/s net | client CPU ms/MiB raw | client CPU ms/MiB net | daemon CPU ms/MiB | fixed cost ms (wall / CPU) |")
print("|---|---|---|---|---|---|---|---|")
for op in ("vol-upload", "vol-download"):
    for c in ("lvrpc-direct", "lvrpc-shared", "libvirt.so"):
        r = rows.get((c, op))
        if not r:
            continue
        e = st.median(x[0] for x in r); cpu = st.median(x[1] + x[2] for x in r)
        e0 = st.median(x[3] for x in r); cpu0 = st.median(x[4] + x[5] for x in r)
        print(f"| {c} | {op} | {mib / e:.0f} | {mib / st.median(net_e(x) for x in r):.0f} | "
              f"{cpu * 1000 / mib:.3f} | {st.median(net_cpu(x) for x in r) * 1000 / mib:.3f} | "
              f"{st.median(x[6] for x in r) * 1000 / mib:.3f} | {e0 * 1000:.0f} / {cpu0 * 1000:.0f} |")
print()
print("Paired by round: lvrpc against libvirt.so in the same round (net figures).")
print()
print("| client | op | rounds | MiB/s ÷ libvirt.so: median (min-max) | rounds at ≥ 1 | client CPU/MiB ÷ libvirt.so: median (min-max) |")
print("|---|---|---|---|---|---|")
for op in ("vol-upload", "vol-download"):
    for c in ("lvrpc-direct", "lvrpc-shared"):
        sp, cp = [], []
        for (o, rep), got in sorted(by_rep.items()):
            if o != op or c not in got or "libvirt.so" not in got:
                continue
            mine, ref = got[c], got["libvirt.so"]
            sp.append(net_e(ref) / net_e(mine))
            if net_cpu(ref) > 0:
                cp.append(net_cpu(mine) / net_cpu(ref))
        if sp:
            print(f"| {c} | {op} | {len(sp)} | {spread(sp)} | {sum(1 for x in sp if x >= 1)} of {len(sp)} | {spread(cp)} |")
EOF
