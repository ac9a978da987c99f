#!/usr/bin/env node
'use strict';
// A client's burst far larger than one read.  libevent reads 4 KiB a
// callback; when that read comes back full the server reads what else is
// waiting in the same callback (src/conn.c read_more).  Every frame of a
// burst is then handled once and in order, over TCP and over WebSocket,
// when the burst ends in a frame cut short, and when the client closes
// right after it; /metrics counts every byte once.  76-burst-read-asan.t
// runs the same against the ASan/UBSan build (PARLEY_BURST_ASAN=1).
const t = require('../lib/tap');
const fs = require('fs');
const net = require('net');
const crypto = require('crypto');
const { startParley, sleep, httpGet } = require('../lib/parley');
const { frameReader, stompTcp, stompWs, wsFrame } = require('../lib/stomp-raw');

const SAN = process.env.PARLEY_BURST_ASAN === '1';
const { ASAN_BIN, ASAN_PLUGINS, SAN_ENV, SAN_RE } = require('../lib/asan');

const N = 800;
const pad = 'x'.repeat(120);

function send(i, receipt) {
  const h = `SEND\ndestination:/room/burst\ncontent-type:text/plain\n${receipt ? `receipt:r${i}\n` : ''}\n`;
  return Buffer.from(`${h}burst ${i} ${pad}\0`);
}

// a raw WebSocket client: one socket write per call, server frames to STOMP
function rawWs(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const c = { sock: s, frames: [] };
    const stomp = frameReader((f) => c.frames.push(f));
    let buf = Buffer.alloc(0);
    let open = false;
    s.on('error', reject);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const e = buf.indexOf('\r\n\r\n');
        if (e === -1) return;
        if (!/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, 12))) return reject(new Error('upgrade refused: ' + buf.toString('latin1', 0, 80)));
        buf = buf.subarray(e + 4);
        open = true;
        resolve(c);
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        if ((buf[0] & 0x0f) === 1 || (buf[0] & 0x0f) === 2) stomp(buf.subarray(off, off + len));
        buf = buf.subarray(off + len);
      }
    });
    s.on('connect', () => s.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n`));
  });
}

async function until(pred, ms, what) {
  for (let i = 0; i < ms / 20; i++) { if (pred()) return true; await sleep(20); }
  t.diag(`timed out waiting for ${what}`);
  return false;
}

// the numbers of the burst's MESSAGEs (not presence) from index `from` of
// a client's frames
function numbers(c, from = 0) {
  return c.frames.slice(from).filter((f) => f.command === 'MESSAGE')
    .map((f) => /^burst (\d+) /.exec(f.body.toString())).filter((m) => m)
    .map((m) => Number(m[1]));
}
function inOrder(a, n) { return a.length === n && a.every((v, i) => v === i); }

async function bytesIn(srv) {
  const r = await httpGet(`${srv.http}/metrics`);
  return Number(/^parley_bytes_in_total (\d+)$/m.exec(r.body)[1]);
}

t.run(async () => {
  // no rate limit: the burst is the point here (56-limits.t covers pauses)
  const opts = { ini: { limits: { msg_rate: 0 } } };
  if (SAN) {
    opts.binary = ASAN_BIN;
    if (!fs.existsSync(opts.binary)) throw new Error(`ASan build missing: ${opts.binary} (tests/run-all.sh builds it)`);
    opts.ini.server = { plugin_dir: ASAN_PLUGINS };
    opts.env = SAN_ENV;
  }
  const srv = await startParley(opts);
  const watch = await stompWs(srv.ws, 'watcher');
  watch.write('SUBSCRIBE', { id: 'w', destination: '/room/burst', receipt: 'ws' });
  await until(() => watch.frames.some((f) => f.headers['receipt-id'] === 'ws'), 5000, 'the watcher subscribed');

  // 1. TCP: N SENDs with receipts and the first bytes of one more, in one
  // write; the rest of that frame 100 ms later
  const a = await stompTcp(srv.stompPort, 'alice');
  const frames = [];
  for (let i = 0; i <= N; i++) frames.push(send(i, true));
  const all = Buffer.concat(frames);
  const cut = all.length - 20;
  const m1 = await bytesIn(srv);
  a.sock.write(all.subarray(0, cut));
  await sleep(100);
  a.sock.write(all.subarray(cut));
  t.ok(await until(() => a.frames.filter((f) => f.command === 'RECEIPT').length === N + 1, 10000, 'receipts'),
    `TCP: a ${all.length}-byte burst of ${N + 1} SENDs gets ${N + 1} receipts`);
  const ids = a.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
  t.ok(ids.every((id, i) => id === `r${i}`), 'TCP: the receipts come in the order of the SENDs');
  t.ok(await until(() => numbers(watch).length >= N + 1, 10000, 'deliveries'), 'TCP: the room gets every message of the burst');
  t.ok(inOrder(numbers(watch), N + 1), 'TCP: once each and in order, the frame cut at the end of the burst included');
  const m2 = await bytesIn(srv);
  const m3 = await bytesIn(srv);
  // m2 - m1 is the burst plus one /metrics request, m3 - m2 that request
  t.is((m2 - m1) - (m3 - m2), all.length, 'parley_bytes_in_total counted each byte of the burst once');

  // 2. WebSocket: N masked frames in one write
  const seen = watch.frames.length;
  const w = await rawWs(srv.port);
  w.sock.write(wsFrame(1, Buffer.from('CONNECT\naccept-version:1.2\nlogin:bob\nheart-beat:0,0\n\n\0')));
  await until(() => w.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED over WebSocket');
  const wsAll = Buffer.concat(frames.slice(0, N).map((f) => wsFrame(1, f)));
  w.sock.write(wsAll);
  t.ok(await until(() => w.frames.filter((f) => f.command === 'RECEIPT').length === N, 10000, 'WebSocket receipts'),
    `WebSocket: a ${wsAll.length}-byte burst of ${N} frames gets ${N} receipts`);
  t.ok(await until(() => numbers(watch, seen).length >= N, 10000, 'WebSocket deliveries') &&
    inOrder(numbers(watch, seen), N), 'WebSocket: the room gets every message once and in order');

  // 3. a burst, and the client closes at once: nothing read is dropped
  const seen2 = watch.frames.length;
  const c = await stompTcp(srv.stompPort, 'carol');
  c.sock.end(Buffer.concat(frames.slice(0, N).map((_, i) => send(i, false))));
  t.ok(await until(() => numbers(watch, seen2).length >= N, 10000, 'deliveries after the close') &&
    inOrder(numbers(watch, seen2), N), 'a burst followed at once by the client closing is delivered whole');
  t.ok(await until(() => c.closed, 5000, 'the close'), 'and the server closes its end');

  t.is(srv.proc.exitCode, null, 'the server is still running');
  a.sock.destroy(); w.sock.destroy(); watch.ws.close();
  t.is(await srv.stop(), 0, 'the server stops cleanly');
  if (SAN) t.ok(!SAN_RE.test(srv.log()), 'no sanitizer report' + (SAN_RE.test(srv.log()) ? `:\n${srv.log()}` : ''));
});
