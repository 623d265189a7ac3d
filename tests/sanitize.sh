#!/usr/bin/env bash
# sanitize.sh thread|address - build test programs with the library's
# sources under a sanitizer and run them; any report fails.  Called by
# `make check-tsan` / `make check-asan`, which export:
#   SAN_CC SAN_SRCDIR SAN_LIB_SRCS SAN_CPPFLAGS SAN_CFLAGS SAN_LIBS
set -u
kind=${1:?usage: sanitize.sh thread|address}
case $kind in
  thread)
    flags="-O1 -g -fsanitize=thread"
    # The concurrency tests: Shared and Direct mode under load and faults.
    tests="test_shared:tests/test_shared.c,tests/fakeserver.c
           test_faults:tests/test_faults.c,tests/fakeserver.c
           test_fds:tests/test_fds.c,tests/fakeserver.c
           test_integration:tests/test_integration.c
           test_events:tests/test_events.c
           test_tls:tests/test_tls.c
           test_streams:tests/test_streams.c,tests/fakeserver.c"
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 suppressions=$(cd "$SAN_SRCDIR" && pwd)/tests/tsan.supp"
    export LVRPCT_SCALE=10 LVRPC_TEST_SLACK_MS=2000 ;;
  address)
    flags="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    tests="test_uri:tests/test_uri.c
           test_packet:tests/test_packet.c
           test_integration:tests/test_integration.c
           test_events:tests/test_events.c
           test_shared:tests/test_shared.c,tests/fakeserver.c
           test_faults:tests/test_faults.c,tests/fakeserver.c
           test_fds:tests/test_fds.c,tests/fakeserver.c
           test_tls:tests/test_tls.c
           test_streams:tests/test_streams.c,tests/fakeserver.c"
    export ASAN_OPTIONS="detect_leaks=1 exitcode=66" UBSAN_OPTIONS="print_stacktrace=1"
    export LVRPCT_SCALE=4 LVRPC_TEST_SLACK_MS=1000 ;;
  *) echo "unknown sanitizer $kind" >&2; exit 2 ;;
esac

lib=
for f in $SAN_LIB_SRCS; do
  case $f in
    *.c) if [ -f "$f" ]; then lib="$lib $f"; else lib="$lib $SAN_SRCDIR/$f"; fi ;;
  esac
done

mkdir -p tests
failed=
for t in $tests; do
  name=${t%%:*}
  srcs=
  for f in $(echo "${t#*:}" | tr , ' '); do srcs="$srcs $SAN_SRCDIR/$f"; done
  echo "  SAN($kind) tests/san_$name"
  # shellcheck disable=SC2086
  if ! $SAN_CC $flags $SAN_CPPFLAGS -I"$SAN_SRCDIR/tests" -I"$SAN_SRCDIR/tls" -DLVRPCT_SRCDIR="\"$(cd "$SAN_SRCDIR" && pwd)\"" \
      $SAN_CFLAGS -o "tests/san_$name" $lib $srcs "$SAN_SRCDIR/tests/harness.c" $SAN_LIBS; then
    echo "FAIL: cannot build tests/san_$name" >&2
    exit 1
  fi
  if "./tests/san_$name" > "tests/san_$name.log" 2>&1; then
    tail -n 1 "tests/san_$name.log"
  else
    echo "FAIL: tests/san_$name (see tests/san_$name.log)"
    grep -E -A30 "WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer" \
      "tests/san_$name.log" | head -80
    tail -n 5 "tests/san_$name.log"
    failed="$failed $name"
  fi
done
if [ -n "$failed" ]; then
  echo "sanitizer ($kind) failures:$failed" >&2
  exit 1
fi
echo "check ($kind sanitizer): no reports"
