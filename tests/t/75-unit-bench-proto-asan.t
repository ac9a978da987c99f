#!/bin/sh
# The load generator's parsers under AddressSanitizer and UndefinedBehaviorSanitizer
b="${PARLEY_ASAN_BUILD:-build-asan}/tests/unit/bench_proto_test"
[ -x "$b" ] || { echo "1..1"; echo "not ok 1 - ASan build missing: $b (tests/run-all.sh builds it)"; exit 1; }
exec "$b"
