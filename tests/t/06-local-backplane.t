#!/bin/sh
# local backplane: ordering, positions, delivery on a later loop turn
exec "${PARLEY_BUILD:-build}/tests/unit/local_test" "${PARLEY_BUILD:-build}/plugins/.libs/local.so"
