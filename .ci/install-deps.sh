#!/usr/bin/env bash
# install-deps.sh - the Debian 12 packages lvrpc needs to build, test and
# benchmark (as root).  libvirt-daemon and libvirt-clients are for the tests
# (a private libvirtd; virsh to compare output), libvirt-dev only for the
# benchmark's libvirt.so column: the library itself needs none of them.
set -euo pipefail
pkgs="gcc make autoconf automake libtool pkg-config perl rpcsvc-proto libtirpc-dev
      libssl-dev libcunit1-dev valgrind libvirt-daemon libvirt-clients libvirt-dev
      openssl iproute2 procps util-linux ca-certificates"
missing=
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: without it libvirt-daemon pulls in qemu and
  # ~200 other packages that the tests never use.
  apt-get install -y -qq --no-install-recommends $missing
fi
