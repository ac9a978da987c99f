#!/usr/bin/env node
'use strict';
// Room permissions: [permissions] default, [rooms] rules; checked on SUBSCRIBE,
// SEND, REST reads and writes; edit/delete own vs others' (moderate).
const t = require('../lib/tap');
const { startParley, httpRequest, basic, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

function stompError(c) {
  return new Promise((resolve) => {
    c.client.onStompError = (f) => resolve(f);
  });
}

t.run(async () => {
  const srv = await startParley({ ini: {
    permissions: { default: 'read,write' },
    rooms: {
      secret: 'alice:read+write, *:',
      announcements: 'alice:read+write+moderate, *:read',
      'mod-*': 'alice:read+write+moderate, *:read+write',
    },
  } });
  const api = (m, p, body, who) => httpRequest(m, srv.http + p, body, basic(who));

  // STOMP: read denied
  const bob = await connectWs(srv, { login: 'bob' });
  let err = stompError(bob);
  bob.subscribe('secret');
  let f = await err;
  t.is(f.headers.message, 'permission denied: read on room secret', 'SUBSCRIBE without read gets an ERROR naming room and permission');

  // STOMP: write denied, read allowed
  const bob2 = await connectWs(srv, { login: 'bob' });
  bob2.subscribe('announcements');
  await sleep(100);
  err = stompError(bob2);
  bob2.client.publish({ destination: '/room/announcements', body: 'spam', headers: { receipt: 'x1' } });
  f = await err;
  t.is(f.headers.message, 'permission denied: write on room announcements', 'SEND without write gets an ERROR');
  t.is(f.headers['receipt-id'], 'x1', 'the ERROR carries receipt-id of the refused frame');

  // REST reads/writes checked too
  let r = await api('GET', '/api/v1/rooms/secret/messages', undefined, 'bob');
  t.is(r.status, 403, 'REST history without read: 403');
  t.like(r.json && r.json.error, /read on room secret/, '403 body names the permission and room');
  r = await api('POST', '/api/v1/rooms/announcements/messages', { body: 'x' }, 'bob');
  t.is(r.status, 403, 'REST post without write: 403');
  r = await api('POST', '/api/v1/rooms/secret/messages', { body: 'for alice only' }, 'alice');
  t.is(r.status, 201, 'alice may write in secret');
  r = await api('GET', '/api/v1/rooms', undefined, 'bob');
  t.ok(r.status === 200 && !r.json.rooms.some((x) => x.name === 'secret'), 'room list hides rooms bob cannot read');

  // edit/delete: own yes, others' only with moderate
  r = await api('POST', '/api/v1/rooms/lobby/messages', { body: 'bob says hi' }, 'bob');
  const bobMsg = r.json.id;
  r = await api('DELETE', `/api/v1/rooms/lobby/messages/${bobMsg}`, undefined, 'carol');
  t.is(r.status, 403, "deleting someone else's message without moderate: 403");
  r = await api('PATCH', `/api/v1/rooms/lobby/messages/${bobMsg}`, { body: 'bob says hello' }, 'bob');
  t.is(r.status, 200, 'editing your own message: 200');
  r = await api('GET', '/api/v1/rooms/lobby/messages', undefined, 'bob');
  const edited = r.json.messages.find((m) => m.id === bobMsg);
  t.ok(edited && edited.body === 'bob says hello' && edited.edited > 0, 'history shows the edit with its time');

  const alice = await connectWs(srv, { login: 'alice' });
  alice.subscribe('mod-room');
  await sleep(100);
  r = await api('POST', '/api/v1/rooms/mod-room/messages', { body: 'rude words' }, 'bob');
  const rude = r.json.id;
  r = await api('DELETE', `/api/v1/rooms/mod-room/messages/${rude}`, undefined, 'alice');
  t.is(r.status, 200, 'a moderator deletes a message of someone else');
  await alice.wait(() => alice.received.some((m) => m.headers.event === 'delete' && m.headers['ref-id'] === rude), 5000, 'delete event');
  t.ok(true, 'the delete is broadcast to the room as an event with ref-id');
  r = await api('GET', '/api/v1/rooms/mod-room/messages', undefined, 'bob');
  const tomb = r.json.messages.find((m) => m.id === rude);
  t.ok(tomb && tomb.deleted === true && tomb.body === '', 'history keeps a tombstone');

  // STOMP edit of someone else's message without moderate: ERROR
  const carol = await connectWs(srv, { login: 'carol' });
  err = stompError(carol);
  carol.client.publish({ destination: '/room/lobby', body: 'hacked', headers: { event: 'edit', 'ref-id': bobMsg } });
  f = await err;
  t.is(f.headers.message, 'permission denied: moderate on room lobby', "STOMP edit of another's message without moderate: ERROR");
  // STOMP edit own: broadcast
  const bob3 = await connectWs(srv, { login: 'bob' });
  bob3.subscribe('lobby');
  await sleep(100);
  const rc = await bob3.send('lobby', 'bob edited via STOMP', { event: 'edit', 'ref-id': bobMsg });
  t.ok(rc.headers.position, 'STOMP edit of your own message gets a receipt');
  await bob3.wait(() => bob3.received.some((m) => m.headers.event === 'edit' && m.body === 'bob edited via STOMP'), 5000, 'edit event');
  t.ok(true, 'the edit is broadcast as event:edit');
  for (const c of [alice, bob3]) await c.close();
  t.is(await srv.stop(), 0, 'clean exit');
});
