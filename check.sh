#!/usr/bin/env bash
# check.sh - the whole test suite: build, unit and real-libvirtd tests
# (make check), the integration and fault tests under valgrind, the
# concurrency tests under ThreadSanitizer and every C test under
# AddressSanitizer + UndefinedBehaviorSanitizer.  Needs the packages of
# .ci/install-deps.sh (quickstart.sh installs them) and root (libvirtd).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x configure ]; then autoreconf -fi; fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure --quiet
jobs=$(nproc)
make -j"$jobs" --no-print-directory
make -j"$jobs" --no-print-directory check || { cat tests/*.log 2>/dev/null | tail -200; exit 1; }
make --no-print-directory check-valgrind
make --no-print-directory check-tsan
make --no-print-directory check-asan
echo "check.sh: all tests passed"
