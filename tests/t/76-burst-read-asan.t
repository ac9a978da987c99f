#!/usr/bin/env node
'use strict';
// Test 73's bursts (reads past 4 KiB a callback, big turns copied in
// 64 KiB pieces and handed over) against the ASan/UBSan build of parleyd
// and its plugins: no sanitizer report, exit code 0.
process.env.PARLEY_BURST_ASAN = '1';
require('./73-burst-read.t');
