#!/usr/bin/env node
'use strict';
// A COMMIT's RECEIPT means the transaction's messages are durable, like a
// SEND's: kill -9 right after it, restart, and they are all in history.
const t = require('../lib/tap');
const net = require('net');
const { startParley, httpRequest, basic, sleep } = require('../lib/parley');

t.run(async () => {
  const srv = await startParley({ ini: { batch: { interval_ms: 1500, size: 10000 }, limits: { msg_rate: 0 } } });
  const s = net.connect(srv.stompPort, '127.0.0.1');
  let buf = '';
  s.on('data', (d) => { buf += d; });
  await new Promise((r) => s.on('connect', r));
  s.write('CONNECT\naccept-version:1.2\nlogin:tx\nheart-beat:0,0\n\n\0');
  s.write('BEGIN\ntransaction:t1\n\n\0');
  for (let i = 0; i < 3; i++) s.write(`SEND\ndestination:/room/txroom\ntransaction:t1\n\ncommitted ${i}\0`);
  const t0 = Date.now();
  s.write('COMMIT\ntransaction:t1\nreceipt:c1\n\n\0');
  for (let i = 0; i < 100 && !/receipt-id:c1/.test(buf); i++) await sleep(50);
  const took = Date.now() - t0;
  t.like(buf, /RECEIPT\nreceipt-id:c1/, 'COMMIT gets its RECEIPT');
  t.ok(took >= 1000, `the RECEIPT waited for the storage commit (${took} ms with a 1500 ms batch interval)`);
  await srv.kill();
  t.ok(true, 'killed with SIGKILL right after the receipt');
  await srv.restart();
  const r = await httpRequest('GET', `${srv.http}/api/v1/rooms/txroom/messages?limit=10`, undefined, basic('tx'));
  t.deep(r.json.messages.map((m) => m.body), ['committed 0', 'committed 1', 'committed 2'], 'all three committed messages are in history after the restart');
  s.destroy();
  t.is(await srv.stop(), 0, 'clean exit');
});
