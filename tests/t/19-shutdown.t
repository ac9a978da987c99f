#!/usr/bin/env node
'use strict';
// SIGTERM drains: the listeners close at once (new connections refused),
// messages not yet written to storage are flushed (and their SEND receipts
// answered), WebSocket clients get a close frame with 1001, STOMP clients an
// ERROR "server shutting down", and parleyd exits 0.  After a restart the
// messages are in history.  SIGINT does the same.
const net = require('net');
const WebSocket = require('ws');
const t = require('../lib/tap');
const { startParley, sleep, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('error', (e) => resolve(e.code));
  });
}

// a raw STOMP TCP client: frames and EOF
function tcpClient(port, login) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const c = { sock, data: '', closed: false };
    sock.on('data', (d) => { c.data += d.toString('latin1'); if (/^CONNECTED/.test(c.data)) resolve(c); });
    sock.on('close', () => { c.closed = true; });
    sock.on('error', reject);
    sock.on('connect', () => sock.write(`CONNECT\naccept-version:1.2\nhost:parley\nlogin:${login}\n\n\0`));
  });
}

t.run(async () => {
  // storage writes wait 3 s: at SIGTERM the messages are still queued
  const srv = await startParley({ ini: { batch: { interval_ms: 3000, size: 100000 }, server: { drain_timeout_ms: 3000 } } });
  servers.push(srv);

  const alice = await connectWs(srv, { login: 'alice' });
  const bob = await connectWs(srv, { login: 'bob' });
  const bobClose = new Promise((resolve) => { bob.client.onWebSocketClose = (e) => resolve(e); });
  const bobErr = new Promise((resolve) => { bob.client.onStompError = (f) => resolve(f); });
  bob.subscribe('drain');
  // a raw WebSocket client, to see the close frame itself
  const raw = new WebSocket(srv.ws, ['v12.stomp']);
  const rawMsgs = [];
  const rawClose = new Promise((resolve) => raw.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  raw.on('message', (d) => rawMsgs.push(String(d)));
  raw.on('error', () => {});
  await new Promise((resolve) => raw.on('open', resolve));
  raw.send('CONNECT\naccept-version:1.2\nhost:parley\nlogin:rawws\n\n\0');
  // a STOMP TCP client
  const tcp = await tcpClient(srv.stompPort, 'tcpuser');
  await sleep(150);

  // 10 messages, delivered but not yet stored; their receipts are pending
  const receipts = [];
  for (let i = 0; i < 10; i++) receipts.push(alice.send('drain', `pending ${i}`).then((f) => f, (e) => e));
  await bob.wait(() => bob.received.filter((m) => !m.headers.event).length >= 10, 5000, 'delivery');
  const backlog = await httpRequest('GET', `${srv.http}/readyz`);
  t.ok(JSON.parse(backlog.body).storage_backlog >= 10, `10 messages delivered but not yet stored (storage_backlog ${JSON.parse(backlog.body).storage_backlog})`);

  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  await sleep(50);
  t.is(await tryConnect(srv.port), 'ECONNREFUSED', 'right after SIGTERM the HTTP port refuses new connections');
  t.is(await tryConnect(srv.stompPort), 'ECONNREFUSED', 'and so does the STOMP port');
  const code = await srv.exitPromise;
  t.is(code, 0, `parleyd exits 0 (after ${Date.now() - t0} ms)`);
  t.like(srv.log(), /SIGTERM: draining/, 'the log says it is draining');
  t.ok(!/could not be written|drain timeout|reentrant/.test(srv.log()), 'storage was flushed within the drain (no timeout, no nested-loop warning)');

  const rs = await Promise.all(receipts);
  t.ok(rs.every((f) => f && f.headers && /^\d+$/.test(f.headers.position)), 'the pending SEND receipts were answered before the close (stored during the drain)');
  const bc = await Promise.race([bobClose, sleep(1000).then(() => null)]);
  t.is(bc && bc.code, 1001, '@stomp/stompjs client: WebSocket closed with 1001 (going away)');
  const be = await Promise.race([bobErr, sleep(200).then(() => null)]);
  t.like(be && be.headers.message, /shutting down/, 'after an ERROR "server shutting down"');
  const rc = await Promise.race([rawClose, sleep(1000).then(() => null)]);
  t.is(rc && rc.code, 1001, 'raw WebSocket client: close frame 1001');
  t.like(rc && rc.reason, /shutting down/, 'with a reason');
  t.ok(rawMsgs.some((m) => /^ERROR\n/.test(m) && /message:server shutting down/.test(m)), 'and the STOMP ERROR before it');
  await sleep(100);
  t.ok(tcp.closed, 'STOMP TCP client: connection closed');
  t.like(tcp.data, /ERROR\nmessage:server shutting down/, 'after an ERROR "server shutting down"');

  // restart: everything is in history
  await srv.restart();
  const h = await httpRequest('GET', `${srv.http}/api/v1/rooms/drain/messages?limit=50`, undefined, basic('alice'));
  const bodies = (h.json && h.json.messages || []).map((m) => m.body);
  t.deep(bodies, Array.from({ length: 10 }, (_, i) => `pending ${i}`), 'after a restart all 10 messages are in history, in order');
  t.deep((h.json && h.json.messages || []).map((m) => m.position), rs.map((f) => f.headers && f.headers.position), 'with the positions the receipts gave');

  // SIGINT does the same
  const a2 = await connectWs(srv, { login: 'alice' });
  const a2Close = new Promise((resolve) => { a2.client.onWebSocketClose = (e) => resolve(e); });
  const pend = a2.send('drain', 'before SIGINT');
  await sleep(100);
  srv.proc.kill('SIGINT');
  t.is(await srv.exitPromise, 0, 'SIGINT: exit 0');
  const c2 = await Promise.race([a2Close, sleep(1000).then(() => null)]);
  t.is(c2 && c2.code, 1001, 'SIGINT: client closed with 1001');
  t.ok(await pend.then((f) => !!f.headers.position, () => false), 'SIGINT: the pending receipt was answered');
  await srv.restart();
  const h2 = await httpRequest('GET', `${srv.http}/api/v1/rooms/drain/messages?limit=50`, undefined, basic('alice'));
  t.ok((h2.json && h2.json.messages || []).some((m) => m.body === 'before SIGINT'), 'SIGINT: the message is in history after a restart');

  // a client that stops reading does not hold up the exit past drain_timeout_ms
  const hog = net.connect(srv.stompPort, '127.0.0.1');
  hog.on('error', () => {});
  await new Promise((resolve) => hog.on('connect', resolve));
  hog.write('CONNECT\naccept-version:1.2\nhost:parley\nlogin:hog\n\n\0SUBSCRIBE\ndestination:/room/hog\nid:1\n\n\0');
  await sleep(100);
  hog.pause();
  const feeder = await connectWs(srv, { login: 'feeder' });
  const big = 'h'.repeat(60000);
  for (let i = 0; i < 40; i++) feeder.client.publish({ destination: '/room/hog', body: big });
  await sleep(500);
  const t1 = Date.now();
  srv.proc.kill('SIGTERM');
  t.is(await srv.exitPromise, 0, 'with a client that does not read: still exit 0');
  const took = Date.now() - t1;
  t.ok(took < 3000 + 2500, `within drain_timeout_ms (3000) and a little (${took} ms)`);
  hog.destroy();
});
