#!/usr/bin/env node
'use strict';
// Presence: join/leave events reach the room while it is small; past
// [server] presence_max subscribers they stop (chat and typing go on).
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

t.run(async () => {
  const srv = await startParley({ ini: { server: { presence_max: 2 } } });
  const a = await connectWs(srv, { login: 'a' });
  a.subscribe('p');
  await sleep(100);
  const b = await connectWs(srv, { login: 'b' });
  b.subscribe('p');
  await a.wait(() => a.received.some((m) => m.headers.event === 'join' && m.headers.sender === 'b'), 5000, 'join of b');
  t.ok(true, 'with 2 subscribers, a sees b join');
  const c = await connectWs(srv, { login: 'c' });
  c.subscribe('p');
  await sleep(300);
  t.ok(!a.received.some((m) => m.headers.event === 'join' && m.headers.sender === 'c'), 'with 3 > presence_max, no join event for c');
  await c.send('p', 'typing...', { event: 'typing' });
  await a.wait(() => a.received.some((m) => m.headers.event === 'typing' && m.headers.sender === 'c'), 5000, 'typing');
  t.ok(true, 'typing events still go out');
  await c.send('p', 'hello');
  await a.wait(() => a.received.some((m) => m.body === 'hello'), 5000, 'chat');
  t.ok(true, 'chat goes on');
  await c.close();
  await sleep(300);
  t.ok(!a.received.some((m) => m.headers.event === 'leave' && m.headers.sender === 'c'), 'no leave event while the room was over the cap');
  await b.close();
  await a.wait(() => a.received.some((m) => m.headers.event === 'leave' && m.headers.sender === 'b'), 5000, 'leave of b');
  t.ok(true, 'back at the cap: b leaving is announced');
  await a.close();
  t.is(await srv.stop(), 0, 'clean exit');
});
