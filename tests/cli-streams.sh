#!/bin/bash
# cli-streams.sh - the lvrpc tool's stream commands against real daemons:
#   vol-upload / vol-download (plain and --sparse, Direct and Shared) through
#   a private storage libvirtd (tests/libvirtd-storage-up.sh, started here),
#   the progress bar (drawn on a terminal only), error messages, and
#   screenshot compared with virsh's on the test driver (LVRPC_TEST_URI, from
#   tests/with-libvirtd.sh).  The console command is tested against the fake
#   server by test_streams.
#
# Exit status: 0 pass, 1 fail, 77 skip (LVRPC_TEST_URI is not set), 99 the
# storage daemon could not be started.
set -u

URI=${LVRPC_TEST_URI:-}
if [ -z "$URI" ]; then
    echo "cli-streams: LVRPC_TEST_URI is not set; skipping" >&2
    exit 77
fi
HERE=$(cd "$(dirname "$0")" && pwd)
find_tool() {
    for t in ${LVRPC:+"$LVRPC"} ./cli/lvrpc ../cli/lvrpc "$HERE/../cli/lvrpc"; do
        [ -x "$t" ] && { echo "$t"; return 0; }
    done
    return 1
}
if ! LVRPC=$(find_tool); then
    echo "cli-streams: the lvrpc tool was not found (set LVRPC)" >&2
    exit 1
fi

BASE=${TMPDIR:-/tmp}
[ ${#BASE} -le 60 ] || BASE=/tmp
SD=$(mktemp -d "$BASE/lvrpcs-XXXXXX") || exit 99
chmod 755 "$SD"
TMP=$SD/local
failures=0

cleanup() {
    [ ! -f "$SD/libvirtd.pid.launcher" ] || bash "$HERE/libvirtd-down.sh" "$SD" >/dev/null
    if [ -n "${LVRPCT_KEEP:-}" ]; then echo "LVRPCT_KEEP: keeping $SD" >&2; else rm -rf "$SD"; fi
}
trap 'cleanup; exit 99' INT TERM HUP

if ! WATCH_PID=$$ bash "$HERE/libvirtd-storage-up.sh" "$SD" > "$SD/up.out"; then
    echo "HARD ERROR (test setup): libvirtd-storage-up.sh failed" >&2
    cleanup
    exit 99
fi
# shellcheck disable=SC1091
. "$SD/env"
SURI=$LIBVIRTD_URI_TCP
POOL=$LIBVIRTD_POOL
mkdir -p "$TMP"

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Volumes are created and deleted with virsh (the tool has no vol-create);
# virsh (libvirt-clients) is needed anyway, as for cli-check.sh.
command -v virsh >/dev/null 2>&1 || { echo "cli-streams: virsh is needed" >&2; cleanup; exit 1; }
vs() { virsh -q -c "$SURI" "$@"; }

# A random file with holes: data at 0, 8 MiB and the last 64 KiB of 32 MiB.
head -c 16777216 /dev/urandom > "$TMP/random"
head -c 1048576 /dev/urandom > "$TMP/chunk"
truncate -s 32M "$TMP/sparse"
dd if="$TMP/chunk" of="$TMP/sparse" conv=notrunc status=none
dd if="$TMP/chunk" of="$TMP/sparse" bs=1M seek=8 conv=notrunc status=none
dd if="$TMP/chunk" of="$TMP/sparse" bs=64K count=1 seek=511 conv=notrunc status=none
allocated() { echo $(( $(stat -c '%b * %B' "$1") )); }

for mode in direct shared; do
    lv() { "$LVRPC" -c "$SURI" --mode "$mode" "$@"; }
    vol=plain-$mode
    vs vol-create-as "$POOL" "$vol" 16M --format raw >/dev/null || fail "$mode: vol-create-as $vol"

    # upload: virsh's output (a blank line), nothing on stderr off a terminal
    out=$(lv vol-upload "$POOL" "$vol" "$TMP/random" 2>"$TMP/err"; echo "rc=$?")
    [ "$out" = $'\nrc=0' ] || fail "$mode: vol-upload printed '$out'"
    [ ! -s "$TMP/err" ] || fail "$mode: vol-upload wrote to stderr off a terminal: $(cat "$TMP/err")"
    cmp -s "$TMP/random" "$LIBVIRTD_POOL_DIR/$vol" || fail "$mode: the volume differs from the upload"

    rm -f "$TMP/down"
    out=$(lv vol-download "$POOL" "$vol" "$TMP/down" 2>"$TMP/err"; echo "rc=$?")
    [ "$out" = $'\nrc=0' ] || fail "$mode: vol-download printed '$out'"
    [ ! -s "$TMP/err" ] || fail "$mode: vol-download wrote to stderr: $(cat "$TMP/err")"
    cmp -s "$TMP/random" "$TMP/down" || fail "$mode: the download differs from the upload"
    # an existing file is truncated, as virsh does
    printf 'old content that is longer' > "$TMP/down"
    lv vol-download "$POOL" "$vol" "$TMP/down" >/dev/null 2>&1 || fail "$mode: download over a file"
    cmp -s "$TMP/random" "$TMP/down" || fail "$mode: download over an existing file differs"

    # sparse: the holes survive both ways
    svol=sparse-$mode
    vs vol-create-as "$POOL" "$svol" 32M --allocation 0 --format raw >/dev/null ||
        fail "$mode: vol-create-as $svol"
    lv vol-upload "$POOL" "$svol" "$TMP/sparse" --sparse >/dev/null 2>"$TMP/err" ||
        fail "$mode: vol-upload --sparse: $(cat "$TMP/err")"
    cmp -s "$TMP/sparse" "$LIBVIRTD_POOL_DIR/$svol" || fail "$mode: the sparse volume differs"
    a=$(allocated "$LIBVIRTD_POOL_DIR/$svol")
    [ "$a" -lt $((8 * 1048576)) ] || fail "$mode: the sparse upload allocated $a bytes"
    rm -f "$TMP/sdown"
    lv vol-download "$POOL" "$svol" "$TMP/sdown" --sparse >/dev/null 2>"$TMP/err" ||
        fail "$mode: vol-download --sparse: $(cat "$TMP/err")"
    cmp -s "$TMP/sparse" "$TMP/sdown" || fail "$mode: the sparse download differs"
    a=$(allocated "$TMP/sdown")
    [ "$a" -lt $((8 * 1048576)) ] || fail "$mode: the sparse download allocated $a bytes"
    [ "$(stat -c %s "$TMP/sdown")" = 33554432 ] || fail "$mode: the sparse download's size"

    # the progress bar: on a terminal only (script(1) gives one)
    if command -v script >/dev/null 2>&1; then
        rm -f "$TMP/down"
        script -qec "'$LVRPC' -c '$SURI' --mode $mode vol-download '$POOL' '$vol' '$TMP/down'" \
            /dev/null > "$TMP/tty" 2>&1 < /dev/null || fail "$mode: vol-download on a terminal"
        grep -q 'MiB/s' "$TMP/tty" && grep -q '100%' "$TMP/tty" && grep -q 'total' "$TMP/tty" ||
            fail "$mode: no progress bar on a terminal: $(tr '\r' '\n' < "$TMP/tty" | tail -n 3)"
        cmp -s "$TMP/random" "$TMP/down" || fail "$mode: download on a terminal differs"
    else
        echo "cli-streams: script(1) missing: the terminal case is not checked" >&2
    fi
    vs vol-delete --pool "$POOL" "$vol" >/dev/null
    vs vol-delete --pool "$POOL" "$svol" >/dev/null
done

# errors: one line on stderr, exit status 1
check_error() { # expected-substring command...
    local want=$1 out rc
    shift
    out=$("$LVRPC" "$@" 2>&1 >/dev/null)
    rc=$?
    [ $rc = 1 ] || fail "'$*' exited with $rc"
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "'$*' printed more than one line: $out"
    case $out in
        "lvrpc: error: "*"$want"*) ;;
        *) fail "'$*' printed '$out' (want '$want')" ;;
    esac
}
vs vol-create-as "$POOL" errvol 1M --format raw >/dev/null
check_error "cannot read $TMP/missing" -c "$SURI" vol-upload "$POOL" errvol "$TMP/missing"
check_error "Storage volume not found" -c "$SURI" vol-download "$POOL" novol "$TMP/x"
check_error "Storage pool not found" -c "$SURI" vol-download nopool errvol "$TMP/x"
check_error "cannot create $TMP/no/such/dir" -c "$SURI" vol-download "$POOL" errvol "$TMP/no/such/dir"
[ ! -e "$TMP/x" ] || fail "a failed download left $TMP/x behind"
# the daemon's own error: more data than --length allows
head -c 3145728 /dev/urandom > "$TMP/3m"
check_error "No space left on device" -c "$SURI" vol-upload "$POOL" errvol "$TMP/3m" --length 1048576
vs vol-delete --pool "$POOL" errvol >/dev/null

# screenshot: the same file and the same line as virsh
for mode in direct shared; do
    rm -f "$TMP/shot.lvrpc" "$TMP/shot.virsh"
    want=$(virsh -c "$URI" screenshot test "$TMP/shot.virsh")
    got=$("$LVRPC" -c "$URI" --mode $mode screenshot test "$TMP/shot.lvrpc")
    [ "$got" = "${want/shot.virsh/shot.lvrpc}" ] || fail "$mode: screenshot printed '$got', virsh '$want'"
    cmp -s "$TMP/shot.virsh" "$TMP/shot.lvrpc" || fail "$mode: the screenshot differs from virsh's"
done
check_error "Domain not found" -c "$URI" screenshot no-such-domain "$TMP/shot.x"

trap - INT TERM HUP
cleanup
if [ $failures -gt 0 ]; then
    echo "cli-streams: $failures failure(s)" >&2
    exit 1
fi
echo "cli-streams: all checks passed"
exit 0
