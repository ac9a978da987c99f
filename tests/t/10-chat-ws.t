#!/usr/bin/env node
'use strict';
// Two clients chat in a room over STOMP/WebSocket with @stomp/stompjs.
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

t.run(async () => {
  const srv = await startParley();
  const alice = await connectWs(srv, { login: 'alice' });
  const bob = await connectWs(srv, { login: 'bob' });
  alice.subscribe('lobby');
  bob.subscribe('lobby');
  await sleep(200);
  const r = await alice.send('lobby', 'hello bob', { sender: 'mallory' });
  t.ok(/^\d+$/.test(r.headers.position), 'RECEIPT for SEND carries the position');
  await bob.wait(() => bob.received.some((m) => m.body === 'hello bob'), 5000, 'bob gets the message');
  const m = bob.received.find((x) => x.body === 'hello bob');
  t.is(m.headers.sender, 'alice', 'sender is the authenticated login, not the client-supplied header');
  t.is(m.headers.destination, '/room/lobby', 'destination header');
  t.is(m.headers.position, r.headers.position, 'position matches the receipt');
  t.ok(/^\d{13}$/.test(m.headers.timestamp), 'timestamp in ms');
  t.ok(m.headers['message-id'].length > 0, 'message-id set');
  t.ok(bob.received.some((x) => x.headers.event === 'join' && x.headers.sender === 'alice') ||
       alice.received.some((x) => x.headers.event === 'join' && x.headers.sender === 'bob'), 'join events are delivered');
  await bob.close();
  await alice.wait(() => alice.received.some((x) => x.headers.event === 'leave' && x.headers.sender === 'bob'), 5000, 'leave event');
  t.ok(true, 'leave event delivered when bob disconnects');
  await alice.close();
  t.is(await srv.stop(), 0, 'SIGTERM exits 0');
});
