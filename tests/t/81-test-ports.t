#!/usr/bin/env node
'use strict';
// The ports the tests and the benchmark scripts give their servers: below
// the kernel's ephemeral range, so the thousands of client connections a
// benchmark test opens cannot take one before the server binds it (CI once
// failed on exactly that), never the same one twice in a process, and a
// parleyd, redis or MariaDB that still loses the race is started again on
// a new port.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const ports = require('../lib/ports');
const { runProgram } = require('../lib/parley');
const { generator } = require('../lib/bench');

t.run(async () => {
  const [lo] = ports.ephemeralRange();
  t.ok(lo > 11000, `the ephemeral range starts at ${lo}, leaving room below it`);

  const got = [];
  for (let i = 0; i < 50; i++) got.push(await ports.freePort());
  t.ok(got.every((p) => p >= 10000 && p < lo), `freePort: 50 ports, all in [10000, ${lo})`);
  t.is(new Set(got).size, got.length, 'freePort: no port handed out twice');

  // a port taken the way the benchmark's clients take one: the local end
  // of a connected socket (no listener there, so bind() fails, connect()
  // is refused)
  const lsn = net.createServer();
  await new Promise((r) => lsn.listen(0, '127.0.0.1', r));
  const client = net.connect(lsn.address().port, '127.0.0.1');
  await new Promise((r) => client.on('connect', r));
  const taken = client.localPort;

  // the benchmark scripts' `parley-bench port`
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-ports-'));
  const pb = await generator(tmp);
  const bp = [];
  for (let i = 0; i < 5; i++) {
    const r = await runProgram(pb, ['port']);
    bp.push(Number(r.stdout.trim()));
  }
  t.ok(bp.every((p) => p >= 10000 && p < lo), `parley-bench port: ${bp.join(', ')} below ${lo}`);

  // each launcher re-picks when the port it chose is taken before its server
  // binds it: hand it the taken port first
  const orig = ports.freePort;
  async function withTakenFirst(mod, fn) {
    let first = true;
    ports.freePort = async () => { if (first) { first = false; return taken; } return orig(); };
    delete require.cache[require.resolve(mod)];
    try { return await require(mod)[fn](); } finally { ports.freePort = orig; }
  }
  const srv = await withTakenFirst('../lib/parley', 'startParley');
  t.ok(srv.port !== taken, `startParley moved off the taken port ${taken} to ${srv.port}`);
  const { httpGet } = require('../lib/parley');
  const h = await httpGet(`${srv.http}/healthz`);
  t.is(h.status, 200, 'and parleyd answers there');
  t.is(await srv.stop(), 0, 'and stops cleanly');

  const redis = await withTakenFirst('../lib/svc-redis', 'startRedis');
  t.ok(redis.port !== taken && redis.url.includes(`:${redis.port}/`), `startRedis moved to ${redis.port}, and its URL with it`);
  t.is(await redis.cmd('PING'), 'PONG', 'and redis answers there');
  await redis.stop();

  const db = await withTakenFirst('../lib/svc-mariadb', 'startMariadb');
  t.ok(db.port !== taken && db.iniKeys().port === String(db.port), `startMariadb moved to ${db.port}, and its config keys with it`);
  const q = await db.query('SELECT 40 + 2;');
  t.like(String(q), /42/, 'and MariaDB answers');
  await db.stop();

  client.destroy();
  lsn.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
