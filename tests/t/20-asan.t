#!/usr/bin/env node
'use strict';
// The core under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer):
// the ASan build's parleyd and plugins run a compact scenario -- chat over
// WebSocket and TCP, transactions, acks, resume (since/history), REST,
// malformed STOMP frames, bad WebSocket frames and upgrades, a slow consumer,
// a restart, a bad config -- and SIGTERM.  Fails if a sanitizer printed
// anything (leaks included) or the exit code is not 0.
const fs = require('fs');
const path = require('path');
const net = require('net');
const crypto = require('crypto');
const t = require('../lib/tap');
const { startParley, runParleyd, sleep, httpGet, httpRequest, basic, ROOT } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { wsFrame } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const { ASAN_BIN: BIN, ASAN_PLUGINS: PLUGINS, SAN_ENV, sanReport, asanMissing } = require('../lib/asan');

// send raw bytes on a fresh STOMP TCP connection (after CONNECT), wait for close
function rawStomp(port, bad, { connect = true } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    const tm = setTimeout(() => { sock.destroy(); resolve(out); }, 3000);
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(tm); resolve(out); });
    sock.on('data', (d) => {
      out += d.toString('latin1');
      if (connect && /^CONNECTED[^\0]*\0/.test(out) && !sock.sentBad) { sock.sentBad = true; sock.write(bad); }
    });
    sock.on('connect', () => {
      if (connect) sock.write('CONNECT\naccept-version:1.2\nhost:parley\nlogin:asan\n\n\0');
      else sock.write(bad);
    });
  });
}

// raw WebSocket: upgrade with headers, send frames, resolve with what came back when closed
function rawWs(port, headers, frames) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = Buffer.alloc(0);
    const tm = setTimeout(() => { sock.destroy(); resolve(out); }, 3000);
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(tm); resolve(out); });
    sock.on('data', (d) => {
      out = Buffer.concat([out, d]);
      if (!sock.upgraded && out.indexOf('\r\n\r\n') !== -1 && /^HTTP\/1\.1 101/.test(out.toString('latin1'))) {
        sock.upgraded = true;
        sock.write(wsFrame(1, 'CONNECT\naccept-version:1.2\nhost:parley\nlogin:wsasan\n\n\0'));
        setTimeout(() => { for (const f of frames) sock.write(f); }, 100);
      }
    });
    sock.on('connect', () => {
      let req = `GET /ws HTTP/1.1\r\nHost: x\r\n`;
      for (const [k, v] of Object.entries(headers)) if (v !== undefined) req += `${k}: ${v}\r\n`;
      sock.write(req + '\r\n');
    });
  });
}
const wsHeaders = (extra = {}) => Object.assign({ Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
  'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': 'v12.stomp' }, extra);

t.run(async () => {
  if (asanMissing()) {
    t.ok(false, asanMissing());
    return;
  }
  // config paths under the sanitizers
  // (-t also loads the plugins: point plugin_dir at the ASan build's)
  const tdir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'parley-asan-t-'));
  const tini = path.join(tdir, 'parley.ini');
  fs.writeFileSync(tini, fs.readFileSync(path.join(ROOT, 'etc', 'parley.ini'), 'utf8')
    .replace(/^;plugin_dir = .*$/m, `plugin_dir = ${PLUGINS}`));
  const bad = await runParleyd(['-t', '-c', tini], { env: SAN_ENV, binary: BIN });
  fs.rmSync(tdir, { recursive: true, force: true });
  t.is(bad.code, 0, 'ASan parleyd -t etc/parley.ini: exit 0');
  if (bad.code !== 0) t.diag(bad.stderr.slice(0, 3000));
  t.is(sanReport(bad.stderr), '', 'no sanitizer report from -t');

  const srv = await startParley({ binary: BIN, env: SAN_ENV, startTimeoutMs: 30000,
    ini: { server: { plugin_dir: PLUGINS, max_frame: '8k', max_outbound: '64k', heartbeat_ms: 0, resume_max: 50 },
      limits: { msg_rate: 0, byte_rate: 0, ip_connect_rate: 0 } } });
  servers.push(srv);
  const cfgBad = fs.readFileSync(srv.cfgFile, 'utf8').replace('[server]', '[server]\nworkers = 0\ncolour = red');
  fs.writeFileSync(path.join(srv.dir, 'bad.ini'), cfgBad);
  const rb = await runParleyd(['-t', '-c', path.join(srv.dir, 'bad.ini')], { env: SAN_ENV, binary: BIN });
  t.is(rb.code, 2, 'ASan parleyd -t on a bad config: exit 2');
  t.is(sanReport(rb.stderr), '', 'no sanitizer report from the config error path');

  // ---------------------------------------------- chat over WebSocket
  const alice = await connectWs(srv, { login: 'alice' });
  const bob = await connectWs(srv, { login: 'bob' });
  bob.subscribe('asan');
  await sleep(100);
  const positions = [];
  for (let i = 0; i < 40; i++) positions.push((await alice.send('asan', `msg ${i} ${'é'.repeat(i)}`)).headers.position);
  await alice.send('asan', 'typing', { event: 'typing' });
  await bob.wait(() => bob.received.filter((m) => !m.headers.event).length >= 40, 10000, 'chat');
  t.is(bob.received.filter((m) => !m.headers.event).length, 40, 'chat over WebSocket: 40 messages delivered');

  // resume (since + history) while alice keeps posting
  const posting = (async () => { for (let i = 0; i < 30; i++) await alice.send('asan', `live ${i}`); })();
  const carol = await connectWs(srv, { login: 'carol' });
  carol.subscribe('asan', { since: positions[30] });
  const dave = await connectWs(srv, { login: 'dave' });
  dave.subscribe('asan', { history: '5' });
  await posting;
  const erin = await connectWs(srv, { login: 'erin' });
  erin.subscribe('asan', { since: '0' });		// 70 > resume_max: recovered=false
  await carol.wait(() => carol.received.some((m) => m.body === 'live 29'), 10000, 'resume');
  const cm = carol.received.filter((m) => !m.headers.event);
  t.is(cm.length, 9 + 30, 'resume since: every message after the position, then live');
  t.ok(carol.received.some((m) => m.headers.event === 'resumed' && m.headers.recovered === 'true'), 'resumed marker recovered=true');
  await erin.wait(() => erin.received.some((m) => m.headers.event === 'resumed'), 10000, 'erin resumed');
  t.ok(erin.received.some((m) => m.headers.event === 'resumed' && m.headers.recovered === 'false'), 'too far behind: recovered=false');
  await dave.wait(() => dave.received.some((m) => m.headers.event === 'resumed'), 10000, 'dave resumed');
  t.ok(true, 'history:5 resumed');
  await carol.close();
  await dave.close();
  await erin.close();

  // ---------------------------------------------- TCP: transactions, acks, NUL bodies, DISCONNECT
  const tcpOut = await rawStomp(srv.stompPort,
    'SUBSCRIBE\ndestination:/room/asan-tcp\nid:x\\cy\nack:client-individual\n\n\0' +
    'SUBSCRIBE\ndestination:/room/asan-tcp2\nid:c\nack:client\nreceipt:s2\n\n\0' +
    'BEGIN\ntransaction:t1\n\n\0SEND\ndestination:/room/asan-tcp\ntransaction:t1\nreceipt:rt\n\nin tx\0COMMIT\ntransaction:t1\nreceipt:rc\n\n\0' +
    'BEGIN\ntransaction:t2\n\n\0SEND\ndestination:/room/asan-tcp\ntransaction:t2\n\ndropped\0ABORT\ntransaction:t2\n\n\0' +
    'SEND\ndestination:/room/asan-tcp\ncontent-length:5\nreceipt:rn\n\na\0b\0c\0' +
    'SEND\ndestination:/room/asan-tcp2\nreceipt:r2\n\nclient mode\0' +
    'UNSUBSCRIBE\nid:c\n\n\0DISCONNECT\nreceipt:bye\n\n\0');
  t.like(tcpOut, /RECEIPT\nreceipt-id:bye/, 'TCP session with transactions, acks and a NUL body ends with the DISCONNECT receipt');
  const ackOut = await rawStomp(srv.stompPort,
    'SUBSCRIBE\ndestination:/room/acks\nid:a\nack:client-individual\nreceipt:s\n\n\0');
  t.like(ackOut, /RECEIPT/, 'subscriber left with unacknowledged state');

  // ---------------------------------------------- REST
  let r = await httpRequest('POST', `${srv.http}/api/v1/rooms`, { name: 'asan-rest', topic: 't' }, basic('alice'));
  t.is(r.status, 201, 'REST create');
  r = await httpRequest('POST', `${srv.http}/api/v1/rooms/asan-rest/messages`, { body: 'via rest' }, basic('alice'));
  t.is(r.status, 201, 'REST post');
  r = await httpRequest('GET', `${srv.http}/api/v1/rooms/asan/messages?limit=10&before=${positions[20]}`, undefined, basic('alice'));
  t.is(r.json && r.json.messages.length, 10, 'REST paging');
  for (const [m, u, b] of [['POST', '/api/v1/rooms', '{bad json'], ['GET', '/api/v1/rooms/asan/messages?limit=x'], ['DELETE', '/api/v1/rooms/asan-rest'], ['GET', '/api/v1/%zz'], ['GET', '/nope']]) {
    await httpRequest(m, `${srv.http}${u}`, b, basic('bob'));
  }
  await httpGet(`${srv.http}/metrics`);
  await httpGet(`${srv.http}/readyz`);
  const garbage = await new Promise((resolve) => {
    let got = '';
    const s = net.connect(srv.port, '127.0.0.1', () => s.write('GARBAGE \x00\xff HTTP/9.9\r\n\r\n'));
    s.on('data', (d) => { got += d; }); s.on('error', () => {}); s.on('close', () => resolve(got));
  });
  t.like(garbage, /^HTTP\/1\.1 400/, 'a garbage HTTP request gets 400 and a close');

  // ---------------------------------------------- malformed STOMP
  const many = Array.from({ length: 80 }, (_, i) => `h${i}:v`).join('\n');
  const cases = ['FROB\n\n\0', 'SEND\ndestination /room/x\n\n\0', 'SEND\ndestination:/room/x\nx:a\\tb\n\n\0',
    `SEND\ndestination:/room/x\n\n${'z'.repeat(9000)}\0`, `SEND\ndestination:/room/x\n${many}\n\n\0`,
    `SEND\ndestination:/room/x\nlong:${'y'.repeat(9000)}\n\n\0`, 'SEND\ndestination:/room/x\ncontent-length:abc\n\n\0',
    'SEND\ndestination:/room/x\ncontent-length:2\n\nhello\0', 'SEND\ndestination:/queue/x\nreceipt:r\n\n\0',
    'SUBSCRIBE\ndestination:/room/x\nid:1\nsince:nope\n\n\0', 'ACK\nid:nope\n\n\0', 'COMMIT\ntransaction:nope\n\n\0',
    Buffer.from([0xde, 0xad, 0xbe, 0xef, 0, 0xff, 10, 10, 0]),
    'SEND\ndestination:/room/x\ncontent-type:a\\nb\n\n\0'];
  let errors = 0;
  for (const c of cases) if (/ERROR\n/.test(await rawStomp(srv.stompPort, c))) errors++;
  t.is(errors, cases.length, `malformed STOMP: ${errors}/${cases.length} ERROR frames`);
  t.like(await rawStomp(srv.stompPort, 'SEND\ndestination:/room/x\n\nhi\0', { connect: false }), /ERROR/, 'SEND before CONNECT');
  t.like(await rawStomp(srv.stompPort, 'CONNECT\naccept-version:9.9\n\n\0', { connect: false }), /ERROR/, 'bad version');
  // a connection that goes away mid-frame
  await new Promise((resolve) => {
    const s = net.connect(srv.stompPort, '127.0.0.1', () => { s.write('CONNECT\naccept-version:1.2\nlogin:cut\n\n\0SEND\ndestination:/room/x\ncontent-length:100\n\nabc'); setTimeout(() => { s.destroy(); resolve(); }, 200); });
    s.on('error', () => {});
  });

  // ---------------------------------------------- WebSocket abuse
  const wsOut = [];
  wsOut.push(await rawWs(srv.port, wsHeaders(), [wsFrame(1, Buffer.from([0xc0, 0xaf]))]));
  wsOut.push(await rawWs(srv.port, wsHeaders(), [wsFrame(1, 'x'.repeat(9000))]));
  wsOut.push(await rawWs(srv.port, wsHeaders(), [wsFrame(1, 'x', { mask: false })]));
  wsOut.push(await rawWs(srv.port, wsHeaders(), [wsFrame(3, 'x')]));
  wsOut.push(await rawWs(srv.port, wsHeaders(), [Buffer.from([0x01, 0x82, 1, 2, 3, 4, 0x40, 0x40]), wsFrame(9, 'p'), wsFrame(0, 'frag')]));
  wsOut.push(await rawWs(srv.port, wsHeaders(), [wsFrame(9, 'ping'), wsFrame(8, Buffer.from([0x03, 0xe8]))]));
  for (const h of [{ Upgrade: undefined }, { 'Sec-WebSocket-Key': undefined }, { 'Sec-WebSocket-Protocol': 'mqtt' }, { 'Sec-WebSocket-Version': '7' }]) {
    wsOut.push(await rawWs(srv.port, wsHeaders(h), []));
  }
  t.is(wsOut.length, 10, 'WebSocket abuse: 10 connections handled');

  // ---------------------------------------------- slow consumer
  const slow = net.connect(srv.stompPort, '127.0.0.1');
  slow.on('error', () => {});
  await new Promise((resolve) => slow.on('connect', resolve));
  slow.write('CONNECT\naccept-version:1.2\nlogin:slow\n\n\0SUBSCRIBE\ndestination:/room/flood\nid:1\n\n\0');
  await sleep(200);
  slow.pause();
  const big = 'b'.repeat(7000);
  for (let i = 0; i < 800; i++) alice.client.publish({ destination: '/room/flood', body: big });
  await alice.send('flood', 'end of flood');
  for (let i = 0; i < 100 && !/slow consumer/.test(srv.log()); i++) await sleep(50);
  t.like(srv.log(), /slow consumer/, 'slow consumer disconnected');
  slow.destroy();

  // ---------------------------------------------- restart (storage reopened, history read)
  await alice.close();
  await bob.close();
  const code1 = await srv.stop(30000);
  t.is(code1, 0, `SIGTERM: ASan parleyd exits 0 (got ${code1})`);
  let rep = sanReport(srv.log());
  t.is(rep, '', 'no sanitizer report (ASan, UBSan, LSan) in the first run');
  if (rep) t.diag(rep);
  await srv.restart();
  const f = await connectWs(srv, { login: 'frank' });
  f.subscribe('asan', { history: '20' });
  await f.wait(() => f.received.some((m) => m.headers.event === 'resumed'), 10000, 'history after restart');
  t.ok(f.received.filter((m) => !m.headers.event).length === 20, 'history from SQLite after the restart');
  await f.send('asan', 'after restart');
  // leave this client connected: the drain must close it
  const code2 = await srv.stop(30000);
  t.is(code2, 0, `second run: exit 0 with a client still connected (got ${code2})`);
  rep = sanReport(srv.log());
  t.is(rep, '', 'no sanitizer report in the second run');
  if (rep) t.diag(rep);
});
