#!/bin/sh
# Build Parley, install it under ./_install and run it on its embedded
# defaults (SQLite storage, local backplane, filesystem media, open auth),
# from a fresh Debian 12 checkout, as root:
#   contrib/quickstart.sh
# HTTP, WebSocket (/ws), REST and the web client on :8080; STOMP on :61613.
# Data goes to ./_run (parley.db, media/).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
contrib/setup-debian.sh
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
# its own build directory: build/ belongs to tests/run-all.sh (other prefix)
mkdir -p build-run
(cd build-run && { [ -f Makefile ] || ../configure --prefix="$top/_install" >configure.out 2>&1 || { cat configure.out; exit 1; }; } &&
  make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null)
mkdir -p _run
cd _run
echo "quickstart: starting $top/_install/sbin/parleyd (Ctrl-C stops it)"
exec "$top/_install/sbin/parleyd" "$@"
