#!/usr/bin/env node
'use strict';
// The generator's `cross` scenario: subscribers spread over two parleyd
// instances, publishers on both.  Through a shared redis backplane every
// subscriber gets every message of its room, in order; with the `local`
// backplane (each instance on its own) the generator must report the
// messages the other instance never saw and exit non-zero.  Correctness
// only: speed lives in the benchmark.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { startParley, ready, runProgram, waitFor } = require('../lib/parley');
const { generator, lastRow } = require('../lib/bench');
const { startRedis } = require('../lib/svc-redis');

const LIMITS = { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 };

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-cross-'));
  const servers = [];
  let redis;
  try {
    const pb = await generator(tmp);
    const csv = path.join(tmp, 'cross.csv');
    const cross = (a, b, label) => runProgram(pb, ['cross', '-u', a.ws, '-u', b.ws, '-n', '40', '-r', '2',
      '-d', '2', '-w', '8', '--drain', '3', '--csv', csv, '--label', label, '-q']);

    redis = await startRedis();
    const ini = (id) => ({ server: { instance_id: id }, backplane: { plugin: 'redis' }, redis: { url: redis.url }, limits: LIMITS });
    const A = await startParley({ ini: ini('a') });
    servers.push(A);
    const B = await startParley({ ini: ini('b') });
    servers.push(B);
    await waitFor(async () => await ready(A) && await ready(B), 10000, '/readyz on both');

    let r = await cross(A, B, 'redis');
    let row = fs.existsSync(csv) ? lastRow(csv) : {};
    if (!t.is(r.code, 0, 'redis backplane: the generator exits 0')) t.diag(r.stdout + r.stderr);
    t.ok(row.label === 'redis' && row.scenario === 'cross' && row.subs === '40', 'redis backplane: a CSV row for cross, 40 subscribers');
    t.ok(Number(row.sent) > 0 && Number(row.expected) === Number(row.sent) * 20,
      `redis backplane: every message expected at its room's 20 subscribers on both instances (${row.sent} sent)`);
    t.is(row.received, row.expected, 'redis backplane: received == expected');
    t.is(`${row.missing}/${row.gaps}/${row.dups}/${row.reorder}`, '0/0/0/0', 'redis backplane: nothing missing, no gaps, duplicates or reordering');
    t.is(`${row.errors}/${row.conn_errors}`, '0/0', 'redis backplane: no errors');
    for (const s of servers.splice(0)) t.is(await s.stop(), 0, `instance ${s === A ? 'A' : 'B'} exits 0`);

    // two instances that share nothing
    const L1 = await startParley({ ini: { limits: LIMITS } });
    servers.push(L1);
    const L2 = await startParley({ ini: { limits: LIMITS } });
    servers.push(L2);
    r = await cross(L1, L2, 'local');
    row = fs.existsSync(csv) ? lastRow(csv) : {};
    t.is(row.label, 'local', 'local backplanes: the run was recorded');
    t.ok(r.code !== 0, `local backplanes: the generator exits non-zero (${r.code})`);
    t.ok(Number(row.missing) > 0 && Number(row.received) < Number(row.expected),
      `local backplanes: the messages the other instance never saw are missing (${row.missing} of ${row.expected})`);
    for (const s of servers.splice(0)) await s.stop();
  } finally {
    for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL');
    if (redis) await redis.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
