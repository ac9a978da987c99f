#!/usr/bin/env node
'use strict';
// Native TLS: wss:// and STOMP over TLS with a self-signed certificate;
// TLS below min_version refused; a missing key stops start-up (exit 2).
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const tls = require('tls');
const { execFileSync } = require('child_process');
const { startParley, freePort, runParleyd, sleep } = require('../lib/parley');
const { connectWs, WebSocket } = require('../lib/stomp');

t.run(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const tlsPort = await freePort();
  const tlsStomp = await freePort();
  const srv = await startParley({ dir, ini: { server: { http_timeout_ms: 1500, connect_timeout_ms: 1500 }, tls: {
    listen: `127.0.0.1:${tlsPort}`, stomp_listen: `127.0.0.1:${tlsStomp}`,
    cert: 'cert.pem', key: 'key.pem', min_version: '1.3' } } });
  t.like(srv.log(), /listening on 127\.0\.0\.1:\d+ \(TLS, HTTP/, 'TLS listener logged');

  // wss:// with stompjs
  const url = `wss://127.0.0.1:${tlsPort}/ws`;
  const origWs = global.WebSocket;
  const a = await new Promise((resolve, reject) => {
    const { Client } = require('@stomp/stompjs');
    const c = new Client({
      webSocketFactory: () => new origWs(url, ['v12.stomp'], { rejectUnauthorized: false }),
      connectHeaders: { login: 'secure' }, reconnectDelay: 0, debug: () => {},
    });
    c.onConnect = () => resolve(c);
    c.onStompError = (f) => reject(new Error(f.headers.message));
    c.onWebSocketClose = () => reject(new Error('closed'));
    c.activate();
  });
  const got = [];
  a.subscribe('/room/tls', (m) => got.push(m.body));
  await sleep(100);
  // STOMP over TLS, raw
  const s = tls.connect({ host: '127.0.0.1', port: tlsStomp, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  let buf = '';
  s.on('data', (d) => { buf += d; });
  await new Promise((r) => s.on('secureConnect', r));
  t.is(s.getProtocol(), 'TLSv1.3', 'STOMP over TLS negotiated TLS 1.3');
  s.write('CONNECT\naccept-version:1.2\nlogin:tcp\n\n\0SEND\ndestination:/room/tls\nreceipt:1\n\nover tls\0');
  for (let i = 0; i < 50 && !/receipt-id:1/.test(buf); i++) await sleep(100);
  t.like(buf, /CONNECTED[\s\S]*RECEIPT\nreceipt-id:1/, 'STOMP over TLS: CONNECTED and RECEIPT');
  for (let i = 0; i < 50 && !got.includes('over tls'); i++) await sleep(100);
  t.ok(got.includes('over tls'), 'a wss:// subscriber gets the message sent over STOMP/TLS');
  if (!got.includes('over tls')) t.diag(JSON.stringify(got) + srv.log());
  s.destroy();
  await a.deactivate();

  // a bad frame over TLS: the ERROR goes out before the close (the close
  // waits for the output once the handshake is done)
  const e = tls.connect({ host: '127.0.0.1', port: tlsStomp, rejectUnauthorized: false });
  let ebuf = '';
  e.on('data', (d) => { ebuf += d; });
  e.on('error', () => {});
  await new Promise((r) => e.on('secureConnect', r));
  e.write('BOGUS\n\n\0');
  await new Promise((r) => { e.on('close', r); setTimeout(r, 5000); });
  t.like(ebuf, /^ERROR\n[\s\S]*message:unknown or malformed command/, 'STOMP over TLS: a bad frame gets its ERROR before the close');

  // TLS 1.2 refused with min_version = 1.3
  const old = tls.connect({ host: '127.0.0.1', port: tlsStomp, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
  const res = await new Promise((r) => { old.on('secureConnect', () => r('connected')); old.on('error', (e) => r(e.code || e.message)); });
  t.ok(res !== 'connected', `TLS 1.2 is refused when min_version = 1.3 (${res})`);

  // a handshake that never comes, or stops half-way, does not hold a
  // connection: http_timeout_ms (HTTP port), connect_timeout_ms (STOMP)
  const net = require('net');
  const stall = (port, bytes) => new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    const t0 = Date.now();
    const tm = setTimeout(() => { c.destroy(); resolve(-1); }, 8000);
    c.on('connect', () => { if (bytes) c.write(bytes); });
    c.on('data', () => {});
    c.on('error', () => {});
    c.on('close', () => { clearTimeout(tm); resolve(Date.now() - t0); });
  });
  // the first 11 bytes of a TLS ClientHello (record and handshake headers)
  const half = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  const [h0, h1, s0, s1] = await Promise.all([stall(tlsPort), stall(tlsPort, half), stall(tlsStomp), stall(tlsStomp, half)]);
  t.ok([h0, h1].every((ms) => ms >= 1300 && ms < 5000), `TLS HTTP port: no handshake, or half a ClientHello, is closed after http_timeout_ms (${h0}, ${h1} ms)`);
  t.ok([s0, s1].every((ms) => ms >= 1300 && ms < 5000), `TLS STOMP port: the same after connect_timeout_ms (${s0}, ${s1} ms)`);
  t.is(await srv.stop(), 0, 'clean exit');

  // a TLS listener without a key: exit 2 before listening, naming the keys
  fs.writeFileSync(path.join(dir, 'bad.ini'), `[server]\nlisten = 127.0.0.1:${await freePort()}\nstomp_listen =\nplugin_dir = ${process.env.PARLEY_PLUGIN_DIR || path.resolve('build/plugins/.libs')}\n[tls]\nlisten = 127.0.0.1:${await freePort()}\ncert = cert.pem\n`);
  const r = await runParleyd(['-c', path.join(dir, 'bad.ini')], { cwd: dir });
  t.is(r.code, 2, 'missing [tls] key: exit 2');
  t.like(r.stderr, /\[tls\] cert and \[tls\] key are required/, 'the error names the keys');
  fs.rmSync(dir, { recursive: true, force: true });
});
