#!/usr/bin/env node
'use strict';
// A short run of the load generator (bench/parley-bench) against a real
// parleyd: correctness only — every expected delivery arrives, no gaps, no
// duplicates, no reordering, no errors — over WebSocket and over TCP, with
// several publishers per room, with subscribers in more rooms
// (--idle-subs), and for a history resume; idle and storm runs record their
// connections without errors.  Speed targets live
// in the benchmark (bench/compare.sh), not here.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { startParley, freePort, sleep, runProgram } = require('../lib/parley');
const { generator, lastRow } = require('../lib/bench');

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-'));
  let srv, refl, parleyBytes = NaN;
  try {
    const pb = await generator(tmp);
    t.ok(fs.existsSync(pb), 'the generator builds');
    // the generator is one IP opening many connections and publishing fast
    srv = await startParley({ ini: {
      limits: { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 },
    } });
    const csv = path.join(tmp, 'out.csv');

    async function bench(name, args, check) {
      const r = await runProgram(pb, args.concat(['-p', String(srv.proc.pid), '--csv', csv, '--label', name, '-q']));
      const row = fs.existsSync(csv) ? lastRow(csv) : {};
      if (!t.is(r.code, 0, `${name}: generator exits 0`)) t.diag(r.stdout + r.stderr);
      t.is(row.label, name, `${name}: a CSV row was written`);
      t.ok(Number(row.expected) > 0, `${name}: deliveries were expected (${row.expected})`);
      t.is(row.received, row.expected, `${name}: received == expected`);
      t.is(row.missing, '0', `${name}: nothing missing`);
      t.is(`${row.gaps}/${row.dups}/${row.reorder}`, '0/0/0', `${name}: no gaps, duplicates or reordering`);
      t.is(`${row.errors}/${row.conn_errors}`, '0/0', `${name}: no errors`);
      if (check) check(row, r);
      return row;
    }

    // first, on the fresh server (RSS per connection is measured from its
    // RSS before the clients): 50 subscribed connections that only
    // heart-beat; then a connect storm
    for (const [name, args] of [['idle', ['idle', '-u', srv.ws, '-n', '50', '-d', '1']],
      ['storm', ['storm', '-u', srv.ws, '-n', '100']]]) {
      const r = await runProgram(pb, args.concat(['-p', String(srv.proc.pid), '--csv', csv, '--label', name, '-q']));
      const row = fs.existsSync(csv) ? lastRow(csv) : {};
      if (!t.is(r.code, 0, `${name}: generator exits 0`)) t.diag(r.stdout + r.stderr);
      t.ok(row.label === name && row.scenario === name && row.subs === args[4], `${name}: a CSV row for ${args[4]} connections`);
      t.is(`${row.errors}/${row.conn_errors}`, '0/0', `${name}: no errors`);
      if (name === 'idle')
        t.ok(Number(row.server_rss_kib) > 0 && Number(row.server_rss_per_conn_b) > 0, `idle: the server's RSS and RSS per connection (${row.server_rss_per_conn_b} B)`);
      else
        t.ok(Number(row.connects_per_s) > 0 && Number(row.connect_p99_us) > 0, `storm: connects/s (${row.connects_per_s}) and connect latency measured`);
    }

    // 1 room x 50 subscribers over WebSocket, receipt window
    await bench('fanout-ws', ['fanout', '-u', srv.ws, '-n', '50', '-d', '2', '-w', '8'], (row) => {
      t.is(Number(row.expected), Number(row.sent) * 50, 'fanout-ws: every message is expected at all 50 subscribers');
      t.ok(Number(row.lat_p50_us) > 0, 'fanout-ws: latency measured');
      // a MESSAGE carries a 100-byte body, a WebSocket header and
      // Parley's headers (subscription, message-id, destination,
      // position, sender, timestamp, content-length: well over 100 bytes)
      parleyBytes = Number(row.bytes_per_delivery);
      t.ok(parleyBytes > 100 + 2 + 150 && parleyBytes < 100 + 600, `fanout-ws: bytes read per delivery (${row.bytes_per_delivery}) fit a MESSAGE with a 100-byte body and Parley's headers`);
    });
    // 4 rooms x 10 subscribers over STOMP/TCP, 2 publishers per room at a fixed rate
    await bench('rooms-tcp', ['rooms', '-u', `tcp://127.0.0.1:${srv.stompPort}`, '-n', '40', '-r', '4',
      '-P', '2', '-R', '200', '-d', '2'], (row) => {
      t.is(Number(row.expected), Number(row.sent) * 10, 'rooms-tcp: every message is expected at its room\'s 10 subscribers');
    });
    // 10 clients resume 200 messages at once (since:0)
    await bench('history', ['history', '-u', srv.ws, '-n', '10', '--history', '200'], (row) => {
      t.is(row.expected, '2000', 'history: 10 clients x 200 messages expected');
      t.ok(Number(row.resume_max_us) > 0, 'history: every client finished its resume');
    });

    // --idle-subs: every subscriber is also in rooms of its own with no
    // traffic (a member of several rooms); the server sees those
    // subscriptions while the run is on, and the run is still whole
    {
      let idleRooms = 0, done = false;
      const run = bench('idle-subs', ['fanout', '-u', srv.ws, '-n', '20', '-d', '2', '-w', '8', '--idle-subs', '2'],
        (row) => t.is(Number(row.expected), Number(row.sent) * 20, 'idle-subs: every message is expected at all 20 subscribers'))
        .finally(() => { done = true; });
      while (!done) {
        const m = await fetchMetrics(srv).catch(() => '');
        const n = (m.match(/^parley_room_subscribers\{room="[^"]*-idle-\d+-\d+"\} 1$/mg) || []).length;
        if (n > idleRooms) idleRooms = n;
        await sleep(100);
      }
      await run;
      t.is(idleRooms, 40, 'idle-subs: parleyd saw 20 x 2 rooms with one subscriber each besides the measured room');
    }

    t.like(await fetchMetrics(srv), /parley/, 'parleyd still answers /metrics');
    t.is(await srv.stop(), 0, 'parleyd exits 0 on SIGTERM after the runs');
    srv = null;

    // The checker itself: the reflector drops, then duplicates, every n-th
    // delivery; the generator must say so and exit non-zero.
    for (const [fault, n] of [['drop-every', 37], ['dup-every', 41]]) {
      const port = await freePort();
      refl = spawn(pb, ['reflect', '-q', '--listen', `127.0.0.1:${port}`, `--${fault}`, String(n)], { stdio: 'ignore' });
      await sleep(300);
      const r = await runProgram(pb, ['fanout', '-t', 'reflector', '-u', `ws://127.0.0.1:${port}/ws`, '-n', '20',
        '-R', '200', '-d', '1', '--drain', '1', '--csv', csv, '--label', fault, '-q']);
      refl.kill();
      refl = null;
      const row = lastRow(csv);
      t.is(row.label, fault, `${fault}: the run against the faulty reflector was recorded`);
      t.ok(r.code !== 0, `${fault}: the generator exits non-zero (${r.code})`);
      // the reflector's MESSAGE has 4 headers to Parley's 7
      if (fault === 'drop-every')
        t.ok(Number(row.bytes_per_delivery) > 100 + 2 && Number(row.bytes_per_delivery) < parleyBytes,
          `the reflector's bytes per delivery (${row.bytes_per_delivery}) are more than its body and fewer than Parley's (${parleyBytes})`);
      if (fault === 'drop-every')
        t.ok(Number(row.missing) > 0 && Number(row.gaps) > 0, `drop-every: missing (${row.missing}) and gaps (${row.gaps}) reported`);
      else
        t.ok(Number(row.dups) > 0 && row.missing === '0', `dup-every: duplicates (${row.dups}) reported, nothing missing`);
    }
  } finally {
    if (srv) await srv.stop();
    if (refl) refl.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

async function fetchMetrics(srv) {
  const { httpGet } = require('../lib/parley');
  const r = await httpGet(`${srv.http}/metrics`);
  return r.body;
}
