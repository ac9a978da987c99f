#!/bin/sh
# Room and login name rules, UTF-8 validation, parse_u64, the string map
exec "${PARLEY_BUILD:-build}/tests/unit/util_test"
