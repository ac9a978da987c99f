#!/bin/sh
# Storage conformance suite against the sqlite plugin, both built with
# AddressSanitizer and UndefinedBehaviorSanitizer
a="${PARLEY_ASAN_BUILD:-build-asan}"
b="$a/tests/unit/storage_conformance"
[ -x "$b" ] || { echo "1..1"; echo "not ok 1 - ASan build missing: $b (tests/run-all.sh builds it)"; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$b" "$a/plugins/.libs/sqlite.so" "path=$d/conformance.db"
