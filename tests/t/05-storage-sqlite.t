#!/bin/sh
# Storage conformance suite against the sqlite plugin
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"${PARLEY_BUILD:-build}/tests/unit/storage_conformance" "${PARLEY_BUILD:-build}/plugins/.libs/sqlite.so" "path=$d/conformance.db"
