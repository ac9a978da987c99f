#!/usr/bin/env node
'use strict';
// [limits]: a flooding connection is held back, then disconnected with an
// ERROR; a client within the rate is untouched; per-IP connection caps;
// max subscriptions; hits counted in /metrics.
const t = require('../lib/tap');
const net = require('net');
const { startParley, httpGet, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

function rawStomp(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    s.buf = '';
    s.on('data', (d) => { s.buf += d.toString('latin1'); });
    s.closedP = new Promise((r) => s.on('close', r));
  });
}

t.run(async () => {
  const srv = await startParley({ ini: {
    limits: { msg_rate: 20, msg_burst: 20, throttle_max_ms: 1000, ip_max_connections: 6 },
    server: { max_subscriptions: 3 },
  } });

  // a polite client: 5 msgs/s
  const polite = await connectWs(srv, { login: 'polite' });
  polite.subscribe('flood');
  await sleep(100);

  // a flooder over raw TCP: 200 SENDs/s against a limit of 20/s
  const s = await rawStomp(srv.stompPort);
  s.write('CONNECT\naccept-version:1.2\nlogin:flooder\nheart-beat:0,0\n\n\0');
  await sleep(200);
  const t0 = Date.now();
  let sent = 0;
  const flood = setInterval(() => {
    if (s.destroyed) return;
    let f = '';
    for (let k = 0; k < 2; k++) f += `SEND\ndestination:/room/flood\n\nflood ${sent++}\0`;
    s.write(f);
  }, 10);
  for (let i = 0; i < 4; i++) { await polite.send('flood', `polite ${i}`); await sleep(200); }
  await Promise.race([s.closedP, sleep(8000)]);
  clearInterval(flood);
  const took = Date.now() - t0;
  t.ok(s.destroyed || s.readyState === 'closed', 'the flooder is disconnected');
  t.like(s.buf, /ERROR\n[^\0]*message:rate limit exceeded/, 'the flooder got an ERROR "rate limit exceeded"');
  t.ok(took >= 500, `it was held back first, not cut at once (${took} ms)`);
  const got = polite.received.filter((m) => /^flood /.test(m.body)).length;
  t.ok(got < sent / 2, `only a throttled part of the flood went out (${got} of ${sent})`);
  t.ok(!polite.closed, 'the polite client stays connected');
  t.ok(polite.received.some((m) => m.body === 'polite 3'), 'and its messages go through');
  t.like(srv.log(), /over \[limits\] msg_rate/, 'the log names the limit');

  // per-IP connection cap (polite holds 1; 5 more fit; the 7th is refused)
  const socks = [];
  for (let i = 0; i < 5; i++) socks.push(await rawStomp(srv.stompPort));
  const extra = await rawStomp(srv.stompPort);
  await Promise.race([extra.closedP, sleep(3000)]);
  t.ok(extra.destroyed || extra.readyState === 'closed', 'a connection over ip_max_connections is closed at once');
  t.like(srv.log(), /refusing connection: too many open connections/, 'and logged');
  for (const x of socks) x.destroy();
  await sleep(200);

  // max subscriptions
  const subs = await rawStomp(srv.stompPort);
  subs.write('CONNECT\naccept-version:1.2\nlogin:many\n\n\0');
  for (let i = 0; i < 4; i++) subs.write(`SUBSCRIBE\nid:${i}\ndestination:/room/r${i}\n\n\0`);
  await Promise.race([subs.closedP, sleep(3000)]);
  t.like(subs.buf, /message:too many subscriptions/, 'a 4th subscription with max_subscriptions = 3 gets an ERROR');

  const m = await httpGet(srv.http + '/metrics');
  t.like(m.body, /parley_limit_hits_total\{limit="msg_rate"\} [1-9]/, '/metrics counts rate-limit hits');
  t.like(m.body, /parley_limit_hits_total\{limit="ip_connections"\} [1-9]/, '/metrics counts per-IP refusals');
  await polite.close();
  t.is(await srv.stop(), 0, 'clean exit');
});
