#!/usr/bin/env node
'use strict';
// WebSocket input split anywhere across reads: a header cut in two, a
// fragmented message whose frames arrive in separate reads, a ping between
// fragments.  (The server frees its per-connection frame state between
// messages; these must survive that.)
const t = require('../lib/tap');
const net = require('net');
const crypto = require('crypto');
const { startParley, sleep } = require('../lib/parley');
const { wsFrame } = require('../lib/stomp-raw');


function open(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.buf = Buffer.alloc(0);
    s.on('data', (d) => { s.buf = Buffer.concat([s.buf, d]); });
    s.on('error', reject);
    s.on('connect', async () => {
      s.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n`);
      for (let i = 0; i < 50 && !s.buf.includes('\r\n\r\n'); i++) await sleep(20);
      s.buf = s.buf.slice(s.buf.indexOf('\r\n\r\n') + 4);
      resolve(s);
    });
  });
}

async function until(s, re, ms = 3000) {
  for (let i = 0; i < ms / 20; i++) { if (re.test(s.buf.toString('latin1'))) return true; await sleep(20); }
  return false;
}

t.run(async () => {
  const srv = await startParley();
  const s = await open(srv.port);
  // CONNECT in one frame whose header is cut after its first byte
  const c = wsFrame(1, 'CONNECT\naccept-version:1.2\nlogin:split\nheart-beat:0,0\n\n\0');
  s.write(c.slice(0, 1)); await sleep(50);
  s.write(c.slice(1, 3)); await sleep(50);
  s.write(c.slice(3));
  t.ok(await until(s, /CONNECTED/), 'a frame cut inside its header, across three reads, still parses');
  s.write(wsFrame(1, 'SUBSCRIBE\nid:0\ndestination:/room/split\nreceipt:s\n\n\0'));
  t.ok(await until(s, /receipt-id:s/), 'idle in between: the next frame parses');
  // a SEND fragmented over three frames, in separate reads, a ping between
  const body = 'SEND\ndestination:/room/split\nreceipt:f\n\nfragmented hello\0';
  s.write(wsFrame(1, body.slice(0, 10), { fin: false })); await sleep(50);
  s.write(wsFrame(9, 'ping!')); await sleep(50);
  s.write(wsFrame(0, body.slice(10, 30), { fin: false })); await sleep(50);
  s.write(wsFrame(0, body.slice(30)));
  t.ok(await until(s, /receipt-id:f/), 'a message fragmented over three reads, with a ping between, is one SEND');
  t.ok(await until(s, /fragmented hello/), 'and is delivered whole');
  t.ok(s.buf.includes(Buffer.from([0x8a, 5])), 'the ping got its pong');
  // a big frame (extended length) split in the middle of its payload
  const big = wsFrame(1, `SEND\ndestination:/room/split\nreceipt:b\n\n${'x'.repeat(3000)}\0`);
  s.write(big.slice(0, 1500)); await sleep(50);
  s.write(big.slice(1500));
  t.ok(await until(s, /receipt-id:b/), 'a 3 KB frame split mid-payload parses');
  s.destroy();
  t.is(await srv.stop(), 0, 'clean exit');
});
