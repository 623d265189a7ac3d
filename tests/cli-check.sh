#!/bin/bash
# cli-check.sh - checks the lvrpc tool against virsh on a real libvirtd.
#
#   LVRPC_TEST_URI=test+tcp://127.0.0.1:16609/default tests/cli-check.sh
#
# Exit status: 0 pass, 1 fail, 77 skip (LVRPC_TEST_URI is not set).
# LVRPC names the tool; by default it is looked for as cli/lvrpc from the
# top build directory (where automake runs the tests) or from tests/.
#
# The test driver forgets everything when its last connection closes, so
# while the define/start/.../undefine cycle runs an interactive virsh holds
# a connection open (a coprocess, quit at the end).
set -u

URI=${LVRPC_TEST_URI:-}
if [ -z "$URI" ]; then
    echo "cli-check: LVRPC_TEST_URI is not set; skipping" >&2
    exit 77
fi
if ! command -v virsh > /dev/null 2>&1; then
    echo "cli-check: virsh is needed to compare with (apt-get install libvirt-clients)" >&2
    exit 1
fi

find_tool() {
    local here
    here=$(dirname "$0")
    for t in ${LVRPC:+"$LVRPC"} ./cli/lvrpc ../cli/lvrpc "$here/../cli/lvrpc"; do
        if [ -x "$t" ]; then
            echo "$t"
            return 0
        fi
    done
    return 1
}
if ! LVRPC=$(find_tool); then
    echo "cli-check: the lvrpc tool was not found (set LVRPC)" >&2
    exit 1
fi

DOM=clitest
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cli-check.XXXXXX") || exit 1
XML=$TMP/$DOM.xml
failures=0
HOLD_PID=

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

lv() {
    "$LVRPC" -c "$URI" "$@"
}

cleanup() {
    lv destroy "$DOM" > /dev/null 2>&1
    lv undefine "$DOM" > /dev/null 2>&1
    if [ -n "$HOLD_PID" ]; then
        echo quit >&"${HOLD[1]}" 2> /dev/null
        wait "$HOLD_PID" 2> /dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Compares `lvrpc ARGS` with `virsh ARGS` byte for byte.  Other tests may
# change the daemon's state between the two runs, so a difference is
# retried twice before it counts.
same_as_virsh() {
    local try
    for try in 1 2 3; do
        lv "$@" > "$TMP/lvrpc.out" 2> "$TMP/lvrpc.err"
        virsh -c "$URI" "$@" > "$TMP/virsh.out" 2> "$TMP/virsh.err"
        if cmp -s "$TMP/lvrpc.out" "$TMP/virsh.out"; then
            echo "ok: $* is the same as virsh's"
            return 0
        fi
    done
    fail "'$*' differs from virsh:"
    diff "$TMP/lvrpc.out" "$TMP/virsh.out" >&2
    cat "$TMP/lvrpc.err" >&2
}

# Runs `lvrpc ARGS` and expects exit 0 and exactly the given stdout.
expect_out() {
    local want=$1
    shift
    local rc
    lv "$@" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    printf '%s\n\n' "$want" > "$TMP/want"
    if [ $rc -ne 0 ]; then
        fail "'$*' exited with $rc: $(cat "$TMP/err")"
    elif ! cmp -s "$TMP/out" "$TMP/want"; then
        fail "'$*' printed '$(cat "$TMP/out")', not '$want' and a blank line"
    else
        echo "ok: $*"
    fi
}

# Expects the domain's state (as dominfo prints it).
expect_state() {
    local got
    got=$(lv dominfo "$DOM" 2> /dev/null | sed -n 's/^State: *//p')
    if [ "$got" != "$1" ]; then
        fail "state of $DOM is '$got', not '$1'"
    fi
}

# Starts an interactive virsh that holds a connection open, and waits until
# it has answered a command (so the connection is up).
hold_connection() {
    local line
    coproc HOLD { virsh -q -c "$URI" 2>&1; }
    echo uri >&"${HOLD[1]}"
    while IFS= read -r -t 15 line <&"${HOLD[0]}"; do
        case $line in
        "virsh #"*) ;;
        *://*) return 0 ;;
        esac
    done
    fail "the virsh holding a connection did not answer"
    return 1
}

# ------------------------------------------------------------ listings
same_as_virsh list --all
same_as_virsh net-list --all
same_as_virsh pool-list --all

# ------------------------------------------------------------ an error
lv dominfo lvrpc-no-such-domain > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ $rc -ne 1 ]; then
    fail "dominfo of a missing domain exited with $rc, not 1"
elif [ "$(wc -l < "$TMP/err")" -ne 1 ] || [ -s "$TMP/out" ]; then
    fail "dominfo of a missing domain: want one stderr line and no output, got:"
    cat "$TMP/out" "$TMP/err" >&2
elif ! grep -q '^lvrpc: error: .*Domain not found' "$TMP/err"; then
    fail "dominfo of a missing domain: libvirt's message is missing: $(cat "$TMP/err")"
else
    echo "ok: dominfo of a missing domain fails with: $(cat "$TMP/err")"
fi

# ------------------------------------------------------------ life cycle
echo "<domain type='test'><name>$DOM</name><memory>8192</memory><os><type>hvm</type></os></domain>" > "$XML"
if hold_connection; then
    lv destroy "$DOM" > /dev/null 2>&1 # a leftover from an earlier run
    lv undefine "$DOM" > /dev/null 2>&1
    expect_out "Domain '$DOM' defined from $XML" define "$XML"
    same_as_virsh list --all
    expect_state "shut off"
    expect_out "Domain '$DOM' started" start "$DOM"
    expect_state "running"
    expect_out "Domain '$DOM' suspended" suspend "$DOM"
    expect_state "paused"
    same_as_virsh list --all
    expect_out "Domain '$DOM' resumed" resume "$DOM"
    expect_state "running"
    expect_out "Domain '$DOM' destroyed" destroy "$DOM"
    expect_state "shut off"
    expect_out "Domain '$DOM' has been undefined" undefine "$DOM"
    if lv dominfo "$DOM" > /dev/null 2>&1; then
        fail "$DOM still exists after undefine"
    fi
    same_as_virsh list --all
fi

if [ $failures -ne 0 ]; then
    echo "cli-check: $failures check(s) failed" >&2
    exit 1
fi
echo "cli-check: all checks passed"
exit 0
