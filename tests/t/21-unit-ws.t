#!/bin/sh
# WebSocket handshake (accept key, subprotocol selection, every refusal) and
# framing (masking, fragments, ping, UTF-8 -> 1007, size -> 1009, 1002) unit tests
exec "${PARLEY_BUILD:-build}/tests/unit/ws_test"
