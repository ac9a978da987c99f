#!/bin/sh
# The whole test suite, from a fresh Debian 12 checkout, as root:
#   tests/run-all.sh
# Installs what is missing, builds (normal and ASan/UBSan), builds and runs
# the unit tests, then runs every TAP test in tests/t with prove.  Each test
# starts the services it needs (Redis, MariaDB, Kafka mock, Mongo-wire, S3,
# nginx, Chromium, RabbitMQ) on loopback and stops them.  Ends with prove's summary.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

contrib/setup-debian.sh --test

[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] || ./autogen.sh >/dev/null 2>&1

mkdir -p build
(cd build && { [ -f Makefile ] || ../configure --with-sqlite=yes --with-redis=yes \
    --with-kafka=yes --with-mysql=yes --with-mongodb=yes --with-s3=yes \
    --with-users=yes --with-jwt=yes >configure.out 2>&1 || { cat configure.out; exit 1; }; } &&
  make -s -j"$jobs" all check-programs >/dev/null)

mkdir -p build-asan
(cd build-asan && { [ -f Makefile ] || ../configure --enable-sanitizers >configure.out 2>&1 || { cat configure.out; exit 1; }; } &&
  make -s -j"$jobs" all check-programs >/dev/null)

export PARLEY_SRCDIR="$top"
export PARLEY_BUILD="$top/build"
export PARLEY_ASAN_BUILD="$top/build-asan"
export PARLEYD="$top/build/parleyd"
export PARLEY_PLUGIN_DIR="$top/build/plugins/.libs"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

exec prove -j"${PARLEY_TEST_JOBS:-$jobs}" --timer "$@" tests/t
