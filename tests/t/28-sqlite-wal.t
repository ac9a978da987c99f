#!/usr/bin/env node
'use strict';
// [sqlite] wal_autocheckpoint: the WAL is copied into the database every N
// pages.  With a small N the WAL file stays small; with the default
// (10000 pages, about 40 MiB) it holds everything written in this test.
// Either way every message is in history after a restart.
const fs = require('fs');
const path = require('path');
const t = require('../lib/tap');
const { startParley, history } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const N = 300;
const BODY = 'w'.repeat(2000);

async function run(ckpt) {
  const sqlite = { path: 'parley.db' };
  if (ckpt !== undefined) sqlite.wal_autocheckpoint = ckpt;
  const srv = await startParley({ ini: { sqlite, batch: { interval_ms: 1 }, limits: { msg_rate: 0, byte_rate: 0 } } });
  servers.push(srv);
  const c = await connectWs(srv, { login: 'wal' });
  for (let i = 0; i < N; i++) await c.send('wal', `${i} ${BODY}`);
  const wal = fs.statSync(path.join(srv.dir, 'parley.db-wal')).size;
  await c.close();
  await srv.restart();
  const msgs = await history(srv, 'wal');
  t.is(msgs.filter((m, i) => m.body === `${i} ${BODY}`).length, N, `wal_autocheckpoint ${ckpt === undefined ? 'default' : ckpt}: all ${N} messages in history after a restart`);
  t.is(await srv.stop(), 0, 'clean stop');
  return wal;
}

t.run(async () => {
  const small = await run(10);
  const dflt = await run();
  const payload = N * BODY.length;
  t.ok(small < 256 * 1024, `with wal_autocheckpoint = 10 the WAL stays small (${(small / 1024).toFixed(0)} KiB)`);
  t.ok(dflt > payload, `with the default it holds all ${(payload / 1024).toFixed(0)} KiB written (${(dflt / 1024).toFixed(0)} KiB): no checkpoint yet`);
});
