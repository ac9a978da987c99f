#!/usr/bin/env node
'use strict';
// Slow consumers ([server] max_outbound = 64k): a subscriber that never
// reads -- a raw STOMP TCP socket and a WebSocket with its socket paused --
// is disconnected once its outbound queue passes the limit, with an ERROR
// naming the reason (and close code 1008 on WebSocket), a log line and a
// metric, while a normal subscriber (@stomp/stompjs) keeps receiving every
// message.  The server's memory stays bounded while 20 MB are published.
const fs = require('fs');
const WebSocket = require('ws');
const t = require('../lib/tap');
const { startParley, sleep, httpGet } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { frameReader, stompTcp } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const BODY = 16384;
const TOTAL = 1280;	// x 16 KiB = 20 MiB published

async function metric(srv, re) {
  const m = await httpGet(`${srv.http}/metrics`);
  const x = re.exec(m.body);
  return x ? Number(x[1]) : NaN;
}

t.run(async () => {
  const srv = await startParley({ ini: { server: { max_outbound: '64k' }, limits: { msg_rate: 0, byte_rate: 0 } } });
  servers.push(srv);
  const status = () => fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status())[1]);

  // the slow TCP subscriber: subscribes, then stops reading
  const slow = await stompTcp(srv.stompPort, 'slowtcp');
  slow.write('SUBSCRIBE', { destination: '/room/flood', id: 'slow', receipt: 'sub' });
  await slow.wait(() => slow.frames.some((f) => f.command === 'RECEIPT'), 5000, 'SUBSCRIBE receipt');
  slow.sock.pause();

  // the slow WebSocket subscriber: same, over ws with the socket paused
  const ws = new WebSocket(srv.ws, ['v12.stomp']);
  const wsFrames = [];
  let wsClose = null;
  ws.on('error', () => {});
  ws.on('close', (code, reason) => { wsClose = { code, reason: String(reason) }; });
  ws.on('message', frameReader((f) => wsFrames.push(f)));
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  ws.send('CONNECT\naccept-version:1.2\nhost:parley\nlogin:slowws\n\n\0');
  ws.send('SUBSCRIBE\ndestination:/room/flood\nid:slow\nreceipt:sub\n\n\0');
  for (let i = 0; i < 100 && !wsFrames.some((f) => f.command === 'RECEIPT'); i++) await sleep(20);
  t.ok(wsFrames.some((f) => f.command === 'RECEIPT'), 'WebSocket subscriber subscribed');
  ws._socket.pause();

  // a normal subscriber
  const fast = await connectWs(srv, { login: 'fast' });
  const fastGot = [];
  fast.subscribe('flood', {}, (m) => { if (!m.headers.event) fastGot.push(m.headers.position); });
  await sleep(200);

  const pub = await stompTcp(srv.stompPort, 'publisher');
  const rss0 = kb('VmRSS');
  const body = 'x'.repeat(BODY);
  let sent = 0, cutAt = null;
  for (let round = 0; sent < TOTAL; round++) {
    for (let i = 0; i < 40; i++) pub.write('SEND', { destination: '/room/flood', receipt: `p${sent++}` }, body);
    const last = `p${sent - 1}`;
    await pub.wait(() => pub.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === last), 20000, 'publisher receipts');
    // the normal subscriber reads along: it must never be the slow one,
    // even on a busy machine (receipts come within a loop turn or two)
    await fast.wait(() => fastGot.length >= sent - 80, 20000, 'normal subscriber keeps up');
    if (cutAt === null && await metric(srv, /parley_errors_total\{kind="slow_consumer"\} (\d+)/) >= 2) cutAt = sent;
  }
  t.ok(!pub.frames.some((f) => f.command === 'ERROR'), `publisher sent ${sent} x ${BODY} bytes without error`);
  const slowCount = await metric(srv, /parley_errors_total\{kind="slow_consumer"\} (\d+)/);
  t.is(slowCount, 2, 'both slow subscribers were disconnected (metric slow_consumer = 2)');
  t.ok(cutAt !== null && cutAt * BODY < 16 * 1024 * 1024, `they were cut off early: after ${cutAt && (cutAt * BODY / 1048576).toFixed(1)} MiB published (kernel socket buffers + 64 KiB)`);

  await fast.wait(() => fastGot.length >= sent, 20000, 'fast subscriber gets everything');
  t.is(fastGot.length, sent, `the normal subscriber received all ${sent} messages`);
  t.ok(fastGot.every((p, i) => i === 0 || BigInt(p) > BigInt(fastGot[i - 1])), 'in order');
  const grew = (kb('VmHWM') - rss0) / 1024;
  t.ok(grew < 16, `server peak RSS grew ${grew.toFixed(1)} MiB while ${(sent * BODY / 1048576).toFixed(0)} MiB went to two stalled subscribers (< 16 MiB)`);

  const log = srv.log();
  t.like(log, /slowtcp|127\.0\.0\.1:\d+: disconnecting slow consumer/, 'the log names the connection');
  t.like(log, /slow consumer: more than 65536 bytes queued/, 'the log names the reason and the limit');

  // the stalled TCP client, reading again: what it had, then ERROR, then EOF
  slow.sock.resume();
  await slow.wait(() => slow.closed, 10000, 'slow TCP connection closed').catch(() => {});
  t.ok(slow.closed, 'slow TCP subscriber: connection closed by the server');
  const serr = slow.frames.find((f) => f.command === 'ERROR');
  t.like(serr && serr.headers.message, /slow consumer/, 'slow TCP subscriber: ERROR frame names the reason');
  t.ok(slow.frames.indexOf(serr) === slow.frames.length - 1, 'the ERROR is the last frame');
  const smsgs = slow.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event);
  t.ok(smsgs.length > 0 && smsgs.every((f) => f.body.length === BODY), `what was queued before the cut arrived intact (${smsgs.length} messages)`);

  ws._socket.resume();
  for (let i = 0; i < 250 && !wsClose; i++) await sleep(20);
  t.ok(wsClose && wsClose.code === 1008, `slow WebSocket subscriber: closed with 1008 (got ${wsClose && wsClose.code})`);
  t.like(wsClose && wsClose.reason, /slow consumer/, 'close reason names it');
  t.ok(wsFrames.some((f) => f.command === 'ERROR' && /slow consumer/.test(f.headers.message)), 'and an ERROR frame came before the close');

  // the server is fine and the fast client still chats
  await fast.send('flood', 'after the flood');
  await fast.wait(() => fast.received.some((m) => m.body === 'after the flood'), 5000, 'after the flood');
  t.ok(true, 'chat continues after the slow consumers were dropped');
  t.is(await metric(srv, /parley_stomp_sessions (\d+)/), 2, 'two STOMP sessions left (publisher, fast)');
  await fast.close();
  pub.sock.destroy();
  t.is(await srv.stop(), 0, 'clean stop');
});
