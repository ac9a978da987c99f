#!/bin/sh
# The load generator's STOMP and body parsers (bench/proto.c) against the simpler parsers they replaced
exec "${PARLEY_BUILD:-build}/tests/unit/bench_proto_test"
