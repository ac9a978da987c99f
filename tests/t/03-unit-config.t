#!/bin/sh
# Config table, bad values exit with file/section/key, etc/parley.ini == defaults == doc
exec "${PARLEY_BUILD:-build}/tests/unit/config_test" "${PARLEY_SRCDIR:-.}/etc/parley.ini"
