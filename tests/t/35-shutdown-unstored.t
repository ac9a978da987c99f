#!/usr/bin/env node
'use strict';
// SIGTERM while storage cannot write: the receipts that wait for a commit
// must never turn into a RECEIPT, the messages are still delivered live,
// the log says how many were not written, and nothing is freed twice or
// leaked on the way out (the ASan/UBSan build runs the same scenario).
// Storage is mysql on a private MariaDB, stopped once parleyd runs.
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { stompTcp } = require('../lib/stomp-raw');
const { withMariadb } = require('../lib/svc-mariadb');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const { ASAN_BIN, ASAN_PLUGINS, SAN_ENV, SAN_RE, asanMissing } = require('../lib/asan');
const N = 8;

async function until(pred, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (pred()) return true;
  return pred();
}

async function run(db, label, binary, pluginDir) {
  const server = { drain_timeout_ms: 300 };
  if (pluginDir) server.plugin_dir = pluginDir;
  const srv = await startParley({
    binary,
    env: binary ? SAN_ENV : {},
    ini: {
      server,
      storage: { plugin: 'mysql' },
      mysql: Object.assign(db.iniKeys(), { connect_timeout_ms: 200 }),
    },
  });
  servers.push(srv);
  await db.down();
  const pub = await stompTcp(srv.stompPort, 'alice');
  const sub = await stompTcp(srv.stompPort, 'bob');
  sub.write('SUBSCRIBE', { destination: '/room/unstored', id: 's', receipt: 'sub' });
  await until(() => sub.frames.some((f) => f.command === 'RECEIPT'), 5000);
  for (let i = 0; i < N; i++) pub.write('SEND', { destination: '/room/unstored', receipt: `r${i}` }, `unstored ${i}`);
  const live = () => sub.frames.filter((f) => f.command === 'MESSAGE' && f.body.toString().startsWith('unstored')).length;
  t.ok(await until(() => live() === N, 5000), `${label}: bob gets all ${N} messages live while storage is down (${live()})`);
  await sleep(300);
  t.is(pub.frames.filter((f) => f.command === 'RECEIPT').length, 0, `${label}: no RECEIPT while nothing is stored`);

  const code = await srv.stop();
  const receipts = pub.frames.filter((f) => f.command === 'RECEIPT');
  t.is(receipts.length, 0, `${label}: still no RECEIPT after SIGTERM (got ${receipts.map((f) => f.headers['receipt-id']).join(',')})`);
  const err = pub.frames.find((f) => f.command === 'ERROR');
  t.ok(err && /shutting down|not (accepted|stored)/.test(err.headers.message || ''), `${label}: the publisher gets an ERROR on the way out (${err && err.headers.message})`);
  t.ok(await until(() => pub.closed, 3000), `${label}: and its connection is closed`);
  t.like(srv.log(), new RegExp(`${N} messages could not be written before the drain timeout`), `${label}: the log counts the ${N} unwritten messages`);
  const san = srv.log().search(SAN_RE);
  t.ok(san === -1, `${label}: no sanitizer report` + (san === -1 ? '' : `\n${srv.log().slice(san, san + 4000)}`));
  t.ok(code !== 23, `${label}: exit code ${code} (23 would be a sanitizer)`);
  await db.up();
}

t.run(() => withMariadb(t, async (db) => {
  await run(db, 'build');
  if (!asanMissing())
    await run(db, 'ASan build', ASAN_BIN, ASAN_PLUGINS);
  else
    t.skip('ASan build', asanMissing());
}));
