#!/usr/bin/env node
'use strict';
// Values a client controls must not add headers to the MESSAGE others get:
// content-type / ref-id / media-id with a newline are refused (STOMP ERROR,
// REST 400) and the sender stays the authenticated login.
const t = require('../lib/tap');
const net = require('net');
const { startParley, httpRequest, basic, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

function raw(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.buf = Buffer.alloc(0);
    s.on('data', (d) => { s.buf = Buffer.concat([s.buf, d]); });
    s.closedP = new Promise((r) => s.on('close', r));
  });
}

t.run(async () => {
  const srv = await startParley();
  const bob = await connectWs(srv, { login: 'bob' });
  bob.subscribe('inj');
  await sleep(100);
  for (const [hdr, val] of [['content-type', 'text/plain\\nsender:mallory'], ['ref-id', 'x\\nsender:mallory'], ['media-id', 'a\\nsender:mallory']]) {
    const s = await raw(srv.stompPort);
    // \\n in a 1.2 header value is an escaped newline: unescaped it is a real LF
    s.write(`CONNECT\naccept-version:1.2\nlogin:eve\n\n\0SEND\ndestination:/room/inj\n${hdr}:${val}\nreceipt:r\n\nhi\0`);
    await Promise.race([s.closedP, sleep(3000)]);
    t.like(s.buf.toString(), new RegExp(`ERROR\\n[^\\0]*message:invalid ${hdr} header`), `a ${hdr} with a newline gets an ERROR`);
  }
  const r = await httpRequest('POST', srv.http + '/api/v1/rooms/inj/messages', { body: 'x', content_type: 'text/plain\nsender: mallory' }, basic('eve'));
  t.is(r.status, 400, 'REST content_type with a newline: 400');
  await sleep(300);
  t.ok(!bob.received.some((m) => m.headers.sender === 'mallory'), 'no message arrived with a forged sender');
  const ok = await connectWs(srv, { login: 'eve' });
  await ok.send('inj', 'plain', { 'content-type': 'text/plain; charset=utf-8' });
  await bob.wait(() => bob.received.some((m) => m.body === 'plain'), 5000, 'plain message');
  const m = bob.received.find((x) => x.body === 'plain');
  t.is(m.headers['content-type'], 'text/plain; charset=utf-8', 'a normal content-type passes through');
  t.is(m.headers.sender, 'eve', 'sender is the login');
  await ok.close(); await bob.close();
  t.is(await srv.stop(), 0, 'clean exit');
});
