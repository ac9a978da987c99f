#!/usr/bin/env node
'use strict';
// Malformed input.  STOMP: every bad frame gets an ERROR whose `message`
// names the problem (with receipt-id when the frame asked for a receipt),
// then the connection is closed, and the server keeps serving everyone
// else.  WebSocket (raw sockets): invalid UTF-8 -> close 1007, oversized
// message -> 1009, unmasked frame / reserved opcode -> 1002; bad upgrades
// get 426/400/403 with a JSON body; the chosen subprotocol is echoed.
const net = require('net');
const crypto = require('crypto');
const t = require('../lib/tap');
const { startParley, sleep, httpGet } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { wsFrame } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const MAX_FRAME = 4096, MAX_HEADERS = 16, MAX_HEADER = 256;

// Parse STOMP frames out of a byte stream (content-length aware).
function parseFrames(buf) {
  const frames = [];
  for (;;) {
    while (buf.length && (buf[0] === 10 || buf[0] === 13)) buf = buf.slice(1);
    const he = buf.indexOf('\n\n');
    if (he === -1) break;
    const lines = buf.slice(0, he).toString().split('\n');
    const f = { command: lines.shift(), headers: {} };
    for (const l of lines) {
      const i = l.indexOf(':');
      const un = (s) => s.replace(/\\(.)/g, (m, x) => ({ n: '\n', c: ':', '\\': '\\', r: '\r' }[x] || m));
      if (!(un(l.slice(0, i)) in f.headers)) f.headers[un(l.slice(0, i))] = un(l.slice(i + 1));
    }
    let end;
    if (f.headers['content-length'] !== undefined) {
      end = he + 2 + Number(f.headers['content-length']);
      if (buf.length < end + 1) break;
    } else if ((end = buf.indexOf(0, he + 2)) === -1) break;
    f.body = buf.slice(he + 2, end).toString();
    frames.push(f);
    buf = buf.slice(end + 1);
  }
  return frames;
}

// Open a STOMP TCP connection, optionally CONNECT, send `bad`, collect
// everything until the server closes (or ms pass).
function stompCase(port, bad, { connect = true, ms = 3000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), sentBad = false;
    const done = (closed) => { clearTimeout(tm); sock.destroy(); resolve({ frames: parseFrames(buf), closed }); };
    const tm = setTimeout(() => done(false), ms);
    sock.on('error', () => {});
    sock.on('close', () => done(true));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!sentBad && buf.indexOf('CONNECTED') !== -1 && buf.indexOf(0) !== -1) { sentBad = true; sock.write(bad); }
    });
    sock.on('connect', () => {
      if (connect) sock.write('CONNECT\naccept-version:1.2\nhost:parley\nlogin:mal\n\n\0');
      else { sentBad = true; sock.write(bad); }
    });
  });
}

// ---- raw WebSocket client pieces
function wsKey() { return crypto.randomBytes(16).toString('base64'); }
function upgrade(port, headers, { path = '/ws' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), got = false;
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const he = buf.indexOf('\r\n\r\n');
      if (got || he === -1) return;
      const head = buf.slice(0, he).toString().split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const h = {};
      for (const l of head.slice(1)) { const i = l.indexOf(':'); h[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
      const cl = Number(h['content-length'] || 0);
      if (status !== 101 && buf.length < he + 4 + cl) return;
      got = true;
      const rest = buf.slice(he + 4);
      resolve({ status, headers: h, body: status === 101 ? '' : rest.slice(0, cl).toString(), sock, rest });
    });
    sock.on('connect', () => {
      let req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
      for (const [k, v] of Object.entries(headers)) if (v !== undefined) req += `${k}: ${v}\r\n`;
      sock.write(req + '\r\n');
    });
  });
}
const goodHeaders = () => ({ Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': wsKey(), 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': 'v12.stomp' });

// Read server frames from a socket: resolves with { messages, close } when
// the server closes the socket (or ms pass).
function wsRun(sock, initial, ms = 3000) {
  return new Promise((resolve) => {
    let buf = initial || Buffer.alloc(0);
    const messages = [];
    let close = null;
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        const op = buf[0] & 0x0f;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const p = buf.slice(off, off + len);
        if (op === 8) close = { code: p.length >= 2 ? p.readUInt16BE(0) : 1005, reason: p.slice(2).toString(), masked: !!(buf[1] & 0x80) };
        else messages.push({ op, data: p.toString() });
        buf = buf.slice(off + len);
      }
    };
    parse();
    const done = () => { clearTimeout(tm); resolve({ messages, close }); };
    const tm = setTimeout(done, ms);
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
    sock.on('close', done);
    sock.on('error', () => {});
  });
}
async function wsCase(port, frames, { connect = true } = {}) {
  const u = await upgrade(port, goodHeaders());
  if (u.status !== 101) return { upgradeStatus: u.status };
  const run = wsRun(u.sock, u.rest);
  if (connect) u.sock.write(wsFrame(1, 'CONNECT\naccept-version:1.2\nhost:parley\nlogin:wsmal\n\n\0'));
  await sleep(100);
  // a number is a pause in ms between frames (separate TCP segments)
  for (const f of frames) if (typeof f === 'number') await sleep(f); else u.sock.write(f);
  const r = await run;
  u.sock.destroy();
  return r;
}

t.run(async () => {
  const srv = await startParley({ ini: { server: { max_frame: MAX_FRAME, max_headers: MAX_HEADERS, max_header: MAX_HEADER, origins: '' } } });
  servers.push(srv);

  // a healthy pair that chats before, during and after the abuse
  const alice = await connectWs(srv, { login: 'alice' });
  const bob = await connectWs(srv, { login: 'bob' });
  bob.subscribe('healthy');
  await sleep(100);
  await alice.send('healthy', 'before');

  // ------------------------------------------------------------ STOMP
  const big = 'x'.repeat(MAX_FRAME + 100);
  const manyHeaders = Array.from({ length: MAX_HEADERS + 4 }, (_, i) => `h${i}:v`).join('\n');
  const cases = [
    ['unknown command', 'FROB\nreceipt:r1\n\n\0', /unknown or malformed command/, 'r1'],
    ['lower-case command', 'send\ndestination:/room/healthy\n\nhi\0', /unknown or malformed command/],
    ['header line without a colon', 'SEND\ndestination /room/healthy\n\nhi\0', /malformed header/],
    ['undefined escape \\t in a header', 'SEND\ndestination:/room/healthy\nx:a\\tb\n\nhi\0', /escape/],
    ['backslash at the end of a header value', 'SEND\ndestination:/room/healthy\nx:ab\\\n\nhi\0', /escape/],
    [`frame over max_frame (${MAX_FRAME})`, `SEND\ndestination:/room/healthy\n\n${big}\0`, /frame too large/],
    [`content-length over max_frame`, `SEND\ndestination:/room/healthy\ncontent-length:${MAX_FRAME * 4}\n\n`, /frame too large/],
    [`more than max_headers (${MAX_HEADERS}) headers`, `SEND\ndestination:/room/healthy\n${manyHeaders}\n\nhi\0`, /too many headers/],
    [`header line over max_header (${MAX_HEADER})`, `SEND\ndestination:/room/healthy\nlong:${'y'.repeat(MAX_HEADER + 10)}\n\nhi\0`, /header line too long/],
    ['content-length not a number', 'SEND\ndestination:/room/healthy\ncontent-length:abc\n\nhi\0', /content-length/],
    ['negative content-length', 'SEND\ndestination:/room/healthy\ncontent-length:-1\n\nhi\0', /content-length/],
    ['content-length shorter than the body', 'SEND\ndestination:/room/healthy\ncontent-length:2\n\nhello\0', /not terminated by NUL|content-length/],
    ['content-length longer than the body', 'SEND\ndestination:/room/healthy\ncontent-length:8\n\nhi\0SEND\ndestination:/room/healthy\n\nx\0', /not terminated by NUL|content-length/],
    ['binary garbage', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x0a, 0x0a, 0x00]), /unknown or malformed command/],
    ['an HTTP request on the STOMP port', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', /unknown or malformed command|malformed header/],
    ['CONNECTED sent by a client', 'CONNECTED\nversion:1.2\n\n\0', /not allowed|unknown/],
    ['MESSAGE sent by a client', 'MESSAGE\ndestination:/room/healthy\n\n\0', /not allowed|unknown/],
    ['second CONNECT', 'CONNECT\naccept-version:1.2\nreceipt:r2\n\n\0', /already connected/, 'r2'],
    ['SEND without destination', 'SEND\nreceipt:r3\n\nhi\0', /without destination/, 'r3'],
    ['SEND to a non-room destination', 'SEND\ndestination:/queue/x\nreceipt:r4\n\nhi\0', /invalid destination/, 'r4'],
    ['SEND to a bad room name', 'SEND\ndestination:/room/.hidden\nreceipt:r5\n\nhi\0', /invalid destination/, 'r5'],
    ['SEND with a client event:join', 'SEND\ndestination:/room/healthy\nevent:join\nreceipt:r6\n\nhi\0', /invalid event/, 'r6'],
    ['SUBSCRIBE without id (1.2)', 'SUBSCRIBE\ndestination:/room/healthy\nreceipt:r7\n\n\0', /without id/, 'r7'],
    ['SUBSCRIBE with an unknown ack mode', 'SUBSCRIBE\ndestination:/room/healthy\nid:1\nack:sometimes\nreceipt:r8\n\n\0', /invalid ack/, 'r8'],
    ['duplicate subscription id', 'SUBSCRIBE\ndestination:/room/a\nid:1\n\n\0SUBSCRIBE\ndestination:/room/b\nid:1\nreceipt:r9\n\n\0', /duplicate subscription/, 'r9'],
    ['UNSUBSCRIBE of an unknown id', 'UNSUBSCRIBE\nid:nope\nreceipt:r10\n\n\0', /no such subscription/, 'r10'],
    ['ACK of an unknown message', 'ACK\nid:nope\nreceipt:r11\n\n\0', /unknown or already acknowledged/, 'r11'],
    ['COMMIT of an unknown transaction', 'COMMIT\ntransaction:nope\nreceipt:r12\n\n\0', /no such transaction/, 'r12'],
    ['BEGIN without transaction header', 'BEGIN\nreceipt:r13\n\n\0', /transaction header missing/, 'r13'],
    ['BEGIN twice', 'BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\nreceipt:r14\n\n\0', /already begun/, 'r14'],
    ['content-type smuggling a header (escaped newline)', 'SEND\ndestination:/room/healthy\ncontent-type:text/plain\\nsender\\cmallory\nreceipt:r15\n\nhi\0', /content-type/, 'r15'],
    ['ref-id smuggling a header (escaped newline)', 'SEND\ndestination:/room/healthy\nevent:edit\nref-id:x\\nsender\\cmallory\nreceipt:r16\n\nhi\0', /ref-id/, 'r16'],
    ['frame after DISCONNECT', 'DISCONNECT\n\n\0SEND\ndestination:/room/healthy\n\nlate\0', /after DISCONNECT|^$/],
  ];
  for (const [name, bad, want, receiptId] of cases) {
    const r = await stompCase(srv.stompPort, bad);
    const err = r.frames.find((f) => f.command === 'ERROR');
    if (name === 'frame after DISCONNECT') {
      // the server may close at DISCONNECT before reading further
      t.ok(r.closed && (!err || want.test(err.headers.message)), `${name}: closed${err ? ' with ERROR ' + err.headers.message : ''}`);
      continue;
    }
    t.ok(err && want.test(err.headers.message), `${name}: ERROR message names it (${err ? JSON.stringify(err.headers.message) : 'no ERROR'})`);
    if (receiptId) t.is(err && err.headers['receipt-id'], receiptId, `${name}: ERROR carries receipt-id`);
    t.ok(r.closed, `${name}: connection closed after the ERROR`);
  }
  // before CONNECT
  let r = await stompCase(srv.stompPort, 'HELLO\nreceipt:r-1\n\n\0', { connect: false });
  let err = r.frames.find((f) => f.command === 'ERROR');
  t.ok(err && err.headers.message === 'unknown or malformed command' && err.headers['receipt-id'] === 'r-1' &&
    err.body.toString() === 'HELLO' && r.closed, 'an unknown command word before CONNECT: ERROR with its receipt-id, the word in the body, closed');
  r = await stompCase(srv.stompPort, 'SEND\ndestination:/room/healthy\nreceipt:r0\n\nhi\0', { connect: false });
  err = r.frames.find((f) => f.command === 'ERROR');
  t.like(err && err.headers.message, /expected CONNECT/, 'SEND before CONNECT: ERROR "expected CONNECT or STOMP"');
  t.ok(r.closed, 'SEND before CONNECT: closed');
  r = await stompCase(srv.stompPort, 'CONNECT\naccept-version:2.0,3.1\nhost:parley\n\n\0', { connect: false });
  err = r.frames.find((f) => f.command === 'ERROR');
  t.like(err && err.headers.message, /unsupported STOMP version/, 'accept-version:2.0,3.1: ERROR names the problem');
  t.is(err && err.headers.version, '1.0,1.1,1.2', 'and lists the versions the server speaks');
  t.ok(r.closed, 'and closes');
  r = await stompCase(srv.stompPort, 'CONNECT\naccept-version:1.2\nheart-beat:fast\n\n\0', { connect: false });
  err = r.frames.find((f) => f.command === 'ERROR');
  t.like(err && err.headers.message, /heart-beat/, 'malformed heart-beat header: ERROR names it');
  // frame split at every byte still works (a good frame, slowly)
  {
    const sock = net.connect(srv.stompPort, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.on('error', () => {});
    await new Promise((res) => sock.on('connect', res));
    const frame = 'CONNECT\r\naccept-version:1.2\r\nhost:parley\r\nlogin:slowpoke\r\n\r\n\0\n\n';
    for (const ch of frame) { sock.write(ch); await sleep(2); }
    await sleep(200);
    t.like(buf.toString(), /^CONNECTED\n/, 'a CONNECT written one byte at a time, with CRLF line ends and trailing EOLs, is accepted');
    sock.destroy();
  }

  await alice.send('healthy', 'during');
  await bob.wait(() => bob.received.some((m) => m.body === 'during'), 5000, 'chat during the abuse');
  t.ok(true, 'the healthy clients still chat after the STOMP abuse');

  // ------------------------------------------------------------ over WebSocket
  let w = await wsCase(srv.port, [wsFrame(1, 'FROB\n\n\0')]);
  const werr = w.messages.map((m) => parseFrames(Buffer.from(m.data))[0]).find((f) => f && f.command === 'ERROR');
  t.like(werr && werr.headers.message, /unknown or malformed command/, 'WebSocket: STOMP ERROR for an unknown command');
  t.ok(w.close && w.close.code >= 1000 && w.close.code !== 1000, `WebSocket: then a close frame (code ${w.close && w.close.code})`);

  w = await wsCase(srv.port, [wsFrame(1, Buffer.from([0x53, 0x45, 0x4e, 0x44, 0x0a, 0xc0, 0xaf, 0x0a, 0x0a, 0x00]))]);
  t.is(w.close && w.close.code, 1007, 'invalid UTF-8 (overlong) in a text message: close 1007');
  w = await wsCase(srv.port, [wsFrame(1, Buffer.from([0xed, 0xa0, 0x80]))]);
  t.is(w.close && w.close.code, 1007, 'UTF-16 surrogate in a text message: close 1007');
  w = await wsCase(srv.port, [wsFrame(2, Buffer.concat([Buffer.from('SEND\ndestination:/room/healthy\ncontent-length:2\n\n'), Buffer.from([0xff, 0xfe, 0])]))]);
  t.ok(!w.close || w.close.code !== 1007, 'binary message with non-UTF-8 bytes is not a UTF-8 error');
  w = await wsCase(srv.port, [wsFrame(1, 'SEND\ndestination:/room/healthy\n\n' + 'z'.repeat(MAX_FRAME * 2) + '\0')]);
  t.is(w.close && w.close.code, 1009, `message over max_frame (${MAX_FRAME}): close 1009`);
  w = await wsCase(srv.port, [wsFrame(1, 'CONNECT\naccept-version:1.2\nhost:parley\n\n\0', { mask: false })], { connect: false });
  t.is(w.close && w.close.code, 1002, 'unmasked client frame: close 1002');
  w = await wsCase(srv.port, [wsFrame(3, 'x')]);
  t.is(w.close && w.close.code, 1002, 'reserved opcode 0x3: close 1002');
  w = await wsCase(srv.port, [Buffer.from([0xc1, 0x81, 1, 2, 3, 4, 0x79])]);
  t.is(w.close && w.close.code, 1002, 'RSV1 set without an extension: close 1002');
  w = await wsCase(srv.port, [wsFrame(0, 'orphan')]);
  t.is(w.close && w.close.code, 1002, 'continuation without a first fragment: close 1002');
  t.ok(w.close && !w.close.masked, 'server frames are not masked');
  w = await wsCase(srv.port, [wsFrame(9, 'ping!'), 200, wsFrame(8, Buffer.from([0x03, 0xe8]))]);
  t.ok(w.messages.some((m) => m.op === 10 && m.data === 'ping!'), 'ping answered by a pong with the same payload');
  t.is(w.close && w.close.code, 1000, 'client close 1000 answered with close 1000');

  // ------------------------------------------------------------ upgrades
  let u = await upgrade(srv.port, Object.assign(goodHeaders(), { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'v10.stomp, v12.stomp', 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
  t.is(u.status, 101, 'good upgrade: 101');
  t.is(u.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'Sec-WebSocket-Accept for RFC 6455\'s sample key');
  t.is(u.headers['sec-websocket-protocol'], 'v12.stomp', 'offered "v10.stomp, v12.stomp": v12.stomp echoed');
  t.is(u.headers['sec-websocket-extensions'], undefined, 'permessage-deflate declined (no Sec-WebSocket-Extensions in the answer)');
  u.sock.destroy();
  u = await upgrade(srv.port, Object.assign(goodHeaders(), { 'Sec-WebSocket-Protocol': 'v11.stomp' }));
  t.is(u.headers['sec-websocket-protocol'], 'v11.stomp', 'offered only v11.stomp: v11.stomp echoed');
  u.sock.destroy();
  u = await upgrade(srv.port, Object.assign(goodHeaders(), { 'Sec-WebSocket-Protocol': undefined, 'Sec-websocket-protocol': 'mqtt' }));
  u.sock.destroy();

  const bad = [
    ['no Upgrade header', { Upgrade: undefined }, 426],
    ['Upgrade: h2c', { Upgrade: 'h2c' }, 426],
    ['no Connection: Upgrade', { Connection: 'keep-alive' }, 400],
    ['no Sec-WebSocket-Key', { 'Sec-WebSocket-Key': undefined }, 400],
    ['malformed Sec-WebSocket-Key', { 'Sec-WebSocket-Key': 'short' }, 400],
    ['Sec-WebSocket-Version: 8', { 'Sec-WebSocket-Version': '8' }, 426],
    ['no STOMP subprotocol', { 'Sec-WebSocket-Protocol': undefined }, 400],
    ['only a foreign subprotocol', { 'Sec-WebSocket-Protocol': 'mqtt' }, 400],
  ];
  for (const [name, change, status] of bad) {
    u = await upgrade(srv.port, Object.assign(goodHeaders(), change));
    let j;
    try { j = JSON.parse(u.body); } catch (e) { j = null; }
    t.is(u.status, status, `${name}: ${status}`);
    t.ok(j && j.status === status && typeof j.error === 'string' && j.error.length > 0, `${name}: JSON error body (${u.body.slice(0, 100)})`);
    if (status === 426) {
      t.is(u.headers.upgrade, 'websocket', `${name}: the 426 names the protocol to upgrade to (Upgrade: websocket)`);
      t.is(u.headers['sec-websocket-version'], '13', `${name}: and the WebSocket version (Sec-WebSocket-Version: 13)`);
    }
    u.sock.destroy();
  }
  t.like(srv.log(), /WebSocket upgrade refused \(426\)/, 'refused upgrades are logged with their status');

  // Origin allow-list: a second server with one
  const osrv = await startParley({ ini: { server: { origins: 'https://chat.example, https://other.example' } } });
  servers.push(osrv);
  u = await upgrade(osrv.port, Object.assign(goodHeaders(), { Origin: 'https://evil.example' }));
  t.is(u.status, 403, 'Origin not in the allow-list: 403');
  u.sock.destroy();
  u = await upgrade(osrv.port, goodHeaders());
  t.is(u.status, 403, 'no Origin while an allow-list is set: 403');
  u.sock.destroy();
  u = await upgrade(osrv.port, Object.assign(goodHeaders(), { Origin: 'https://other.example' }));
  t.is(u.status, 101, 'Origin in the allow-list: 101');
  u.sock.destroy();
  const oc = await connectWs(osrv, { login: 'olga', headers: { Origin: 'https://chat.example' } });
  t.ok(oc.client.connected, '@stomp/stompjs with an allowed Origin connects');
  await oc.close();
  t.is(await osrv.stop(), 0, 'origin server stops cleanly');

  // ------------------------------------------------------------ still serving
  await alice.send('healthy', 'after');
  await bob.wait(() => bob.received.some((m) => m.body === 'after'), 5000, 'chat after the abuse');
  t.ok(['before', 'during', 'after'].every((b) => bob.received.some((m) => m.body === b)), 'the healthy clients chatted before, during and after');
  t.ok(!bob.received.some((m) => m.headers.sender === 'mallory' || /mallory/.test(m.headers['content-type'] || '')), 'no message with a smuggled sender reached the room');
  t.is((await httpGet(`${srv.http}/healthz`)).status, 200, '/healthz still 200');
  const m = await httpGet(`${srv.http}/metrics`);
  const proto = /parley_errors_total\{kind="protocol"\} (\d+)/.exec(m.body);
  const wserr = /parley_errors_total\{kind="websocket"\} (\d+)/.exec(m.body);
  t.ok(proto && Number(proto[1]) >= cases.length, `/metrics counts protocol errors (${proto && proto[1]})`);
  t.ok(wserr && Number(wserr[1]) >= 5, `/metrics counts WebSocket errors (${wserr && wserr[1]})`);
  await alice.close();
  await bob.close();
  t.is(await srv.stop(), 0, 'clean stop');
  t.ok(!/AddressSanitizer|runtime error|Segmentation/.test(srv.log()), 'no crash report in the log');
});
