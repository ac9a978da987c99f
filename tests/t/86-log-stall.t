#!/usr/bin/env node
'use strict';
// A stderr nobody reads must not stop the server.  parleyd's stderr is a
// pipe this test stops reading; 2,500 clients then make it log ~2.7 MB of
// lines (a 1,000-byte transaction id in each error).  While the pipe is
// full the server must keep answering /healthz and chatting; the lines that
// did not fit are dropped and counted in parley_log_lines_dropped_total;
// once the pipe is read again a line says how many, and later lines and
// the exit's arrive.  A stderr that is never read again does not keep it
// from exiting.  (Before the writer thread, the loop blocked in
// fprintf: /healthz did not answer.)
const net = require('net');
const t = require('../lib/tap');
const { startParley, sleep, httpGet, metric } = require('../lib/parley');
const { stompTcp } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

// one client: CONNECT, then COMMIT of a transaction it never began (an ERROR
// naming the 1,000-byte id, logged), then the server closes
function badClient(port, i) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('data', () => {});
    s.on('connect', () => s.write(`CONNECT\naccept-version:1.2\nhost:p\nlogin:u${i}\n\n\0` +
      `COMMIT\ntransaction:${'x'.repeat(1000)}-${i}\n\n\0`));
    setTimeout(() => { s.destroy(); resolve(); }, 2000);
  });
}

t.run(async () => {
  const srv = await startParley({ ini: { limits: { ip_max_connections: 0, ip_connect_rate: 0, msg_rate: 0, byte_rate: 0, log_lines_per_minute: 0 } } });
  servers.push(srv);
  t.is(await metric(srv, 'parley_log_lines_dropped_total'), 0, '/metrics: parley_log_lines_dropped_total starts at 0');

  // stop reading parleyd's stderr: the pipe fills up
  srv.proc.stderr.pause();
  const before = srv.log().length;
  // (a server that blocks on its log stops answering: give up after 20 s)
  const floodEnd = Date.now() + 20000;
  for (let i = 0; i < 2500 && Date.now() < floodEnd; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => badClient(srv.stompPort, i + k)));
  }
  // the loop still runs: health, metrics and a chat all answer
  const t0 = Date.now();
  const h = await Promise.race([httpGet(`${srv.http}/healthz`), sleep(5000).then(() => ({ status: 'no answer in 5 s' }))]);
  t.is(h.status, 200, `/healthz answers while nobody reads stderr (${Date.now() - t0} ms)`);
  const dropped = await Promise.race([metric(srv, 'parley_log_lines_dropped_total'), sleep(5000).then(() => NaN)]);
  t.ok(dropped > 0, `the lines that did not fit were dropped and counted: ${dropped}`);
  let chat = false, a = null, b = null;
  try {
    a = await stompTcp(srv.stompPort, 'alice', { ms: 5000 });
    b = await stompTcp(srv.stompPort, 'bob', { ms: 5000 });
    a.write('SUBSCRIBE', { id: 's', destination: '/room/stall', receipt: 'r' });
    await a.wait(() => a.frames.some((f) => f.headers['receipt-id'] === 'r'), 5000, 'subscribed');
    b.write('SEND', { destination: '/room/stall' }, 'still here');
    await a.wait(() => a.frames.some((f) => f.command === 'MESSAGE' && String(f.body) === 'still here'), 5000, 'message');
    chat = true;
    a.sock.destroy();
    b.sock.destroy();
  } catch (e) { t.diag(e.message); t.diag(JSON.stringify([a && a.frames, b && b.frames])); }
  t.ok(chat, 'two clients chat while nobody reads stderr');

  // read again: the count is reported, and logging goes on
  srv.proc.stderr.resume();
  const said = new RegExp(`warn  (\\d+) log lines dropped: stderr was not read fast enough`);
  for (let i = 0; i < 100 && !said.test(srv.log().slice(before)); i++) await sleep(50);
  const m = said.exec(srv.log().slice(before));
  t.ok(m && Number(m[1]) > 0 && Number(m[1]) <= dropped, `once stderr is read again, a line says how many were dropped: ${m && m[1]}`);
  // two lines per client: the ERROR (with the id) and the close
  const kept = srv.log().slice(before).split('\n').filter((l) => /no such transaction/.test(l)).length;
  t.ok(kept > 500 && kept + dropped >= 5000, `each of the 5,000 lines was either written (${kept}) or counted as dropped (${dropped})`);
  const code = await srv.stop();
  t.is(code, 0, 'SIGTERM: exit 0');
  t.like(srv.log(), /parleyd stopped\n$/, 'the last line, written at exit, arrives');

  // a stderr that stays stuck does not keep parleyd from exiting
  const srv2 = await startParley({ ini: { limits: { ip_max_connections: 0, ip_connect_rate: 0, msg_rate: 0, byte_rate: 0, log_lines_per_minute: 0 } } });
  servers.push(srv2);
  srv2.proc.stderr.pause();
  for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => badClient(srv2.stompPort, i + k)));
  const t1 = Date.now();
  srv2.proc.kill('SIGTERM');
  const code2 = await Promise.race([srv2.exitPromise, sleep(20000).then(() => 'still running after 20 s')]);
  t.ok(code2 === 0 && Date.now() - t1 < 15000, `SIGTERM with stderr still unread: exit ${code2} after ${Date.now() - t1} ms (at most 5 s for the log)`);
  srv2.proc.stderr.resume();
});
