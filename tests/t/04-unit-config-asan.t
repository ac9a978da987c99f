#!/bin/sh
b="${PARLEY_ASAN_BUILD:-build-asan}/tests/unit/config_test"
[ -x "$b" ] || { echo "1..1"; echo "not ok 1 - ASan build missing: $b"; exit 1; }
exec "$b" "${PARLEY_SRCDIR:-.}/etc/parley.ini"
