#!/usr/bin/env node
'use strict';
// [server] tcp_keepalive_ms: a client whose network path vanished without
// a FIN (a dropped NAT mapping, a laptop switched off), and which
// negotiated no STOMP heart-beats, is found by the kernel's keepalive
// probes and its connection ends, logged; with the key at 0 it stays.
// Each run is in its own network namespace (unshare -n, so root), whose
// loopback tests/lib/netns-keepalive.py takes down for a few seconds.
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('../lib/tap');
const { runProgram, PARLEYD, PLUGIN_DIR, ROOT } = require('../lib/parley');

const DRIVER = path.join(ROOT, 'tests', 'lib', 'netns-keepalive.py');

async function run(keepaliveMs, downS) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-keepalive-'));
  try {
    const r = await runProgram('unshare', ['-n', 'python3', DRIVER, PARLEYD, PLUGIN_DIR, dir, String(keepaliveMs), String(downS)]);
    let out;
    try { out = JSON.parse(r.stdout.trim().split('\n').pop()); } catch (e) { out = null; }
    if (!out) t.diag(`driver exit ${r.code}:\n${r.stdout}\n${r.stderr}`);
    return out || {};
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

t.run(async () => {
  if (process.getuid() !== 0) {
    t.skip('tcp_keepalive_ms', 'needs root for a network namespace (unshare -n); .ci/run runs as root');
    return;
  }
  // keepalive 1 s: probes after 1 s of silence, 3 of them 1 s apart
  let o = await run(1000, 6);
  t.ok(o.subscribed && o.open_before === 1, `a STOMP client with heart-beat 0,0 is subscribed (${o.open_before} session)`);
  t.is(o.open_after, 0, `tcp_keepalive_ms = 1000: after 6 s with the path gone, its session is gone (${o.open_after} left)`);
  t.like(o.log || '', /127\.0\.0\.1:\d+: peer unreachable \(no answer to TCP keepalive or retransmissions\): closed/, 'and the log says why');
  t.is(o.unreachable, 1, 'parley_connections_timed_out_total{reason="unreachable"} counts it');
  t.ok(o.new_client_chats, 'the server serves on: a new client chats');
  t.is(o.exit, 0, 'SIGTERM: exit 0');

  o = await run(0, 6);
  t.ok(o.subscribed && o.open_after === 1 && !/peer unreachable/.test(o.log || ''),
    `tcp_keepalive_ms = 0: the same vanished client is still counted after 6 s (${o.open_after} session): nothing notices it`);
  t.is(o.exit, 0, 'SIGTERM: exit 0');
}, { timeoutMs: 90000 });
