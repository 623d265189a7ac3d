#!/usr/bin/env bash
# quickstart.sh - on a fresh Debian 12, as root: install what is missing,
# build lvrpc, start a private libvirtd (test driver) on loopback and show
# the library working through the lvrpc CLI.  The daemon is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "quickstart.sh installs packages and runs libvirtd: run it as root" >&2
  exit 1
fi
bash "$top/.ci/install-deps.sh"

if [ ! -x configure ]; then autoreconf -fi; fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure --quiet
make -j"$(nproc)" --no-print-directory

dir=$(mktemp -d /tmp/lvrpc-quickstart.XXXXXX)
trap 'bash "$top/tests/libvirtd-down.sh" "$dir" >/dev/null; rm -rf "$dir"' EXIT
bash "$top/tests/libvirtd-up.sh" "$dir" > "$dir/up.out"
. "$dir/env"

lvrpc=./cli/lvrpc
show() { echo; echo "\$ lvrpc $*"; "$lvrpc" "$@"; }
export LIBVIRT_DEFAULT_URI=$LIBVIRTD_URI_TCP
echo "private libvirtd (pid $LIBVIRTD_PID) at $LIBVIRTD_URI_TCP and $LIBVIRTD_URI_UNIX"
show version
show -c "$LIBVIRTD_URI_UNIX" hostname
show list --all
show --mode shared dominfo test
show net-list --all
show pool-list --all
cat > "$dir/demo.xml" <<'XML'
<domain type='test'><name>demo</name><memory>8192</memory><os><type>hvm</type></os></domain>
XML
# One-shot commands each open their own connection, and the test driver
# forgets everything when its last connection closes: keep one open.
"$lvrpc" --timeout 60 bench --threads 1 --seconds 30 >/dev/null 2>&1 & holder=$!
sleep 0.3
show define "$dir/demo.xml"
show start demo
show suspend demo
show list --all
show destroy demo
show undefine demo
show dominfo no-such-domain || echo "(exit status $?, as expected)"
echo; echo "\$ lvrpc --mode shared bench --threads 16 --seconds 2 --call lookup"
"$lvrpc" --mode shared bench --threads 16 --seconds 2 --call lookup
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
echo; echo "quickstart: OK"
