#!/bin/sh
# STOMP parser unit tests (every frame type, escaping, NUL bodies, split points, limits)
exec "${PARLEY_BUILD:-build}/tests/unit/stomp_test"
