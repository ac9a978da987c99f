#!/usr/bin/env node
'use strict';
// [limits] log_lines_per_minute: lines a client address makes the server
// log (bad frames, closes, failed logins) are capped per address; past the
// cap one line says so, the rest are counted (/metrics), and a minute
// later one line gives the count and the first line left out; at exit the
// counts still due are written.  Other addresses (another source address,
// a client behind a trusted proxy) keep their own budget; 0 = no cap; the
// key is checked like every other.
const fs = require('fs');
const net = require('net');
const path = require('path');
const t = require('../lib/tap');
const { startParley, runParleyd, sleep, waitFor, metric } = require('../lib/parley');
const { connectWs, WebSocket } = require('../lib/stomp');

// A STOMP connection from localAddress that sends a bad command and is
// closed by the server: two lines (STOMP error, closing).
function badClient(port, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => s.write('BOGUS\n\n\0'));
    s.on('error', reject);
    s.on('data', () => {});
    s.on('close', resolve);
  });
}

// The lines about peers at address ip ("IP:port: ..." or "IP via ...").
function linesAbout(log, ip) {
  const re = new RegExp(`^\\S+ (info|warn) +${ip.replace(/\./g, '\\.')}(:\\d+| via )`);
  return log.split('\n').filter((l) => re.test(l));
}

t.run(async () => {
  const srv = await startParley({ ini: { limits: { log_lines_per_minute: 6, trusted_proxies: '127.0.0.1' } } });

  // 50 client addresses come and go through the proxy: the table that
  // counts them grows, and forgets them a minute later (checked below)
  for (let i = 1; i <= 50; i++) {
    const w = new WebSocket(srv.ws, ['v12.stomp'], { headers: { 'X-Forwarded-For': `198.18.0.${i}` } });
    await new Promise((res) => { w.on('open', res); w.on('error', res); });
    w.close();
    await new Promise((res) => w.on('close', res));
  }
  const addrs0 = await metric(srv, 'parley_client_addresses');
  t.ok(addrs0 >= 50, `50 client addresses through the proxy are counted (parley_client_addresses ${addrs0})`);

  // ---------------------------------------------------------- one address over its cap
  for (let i = 0; i < 10; i++) await badClient(srv.stompPort);
  await waitFor(async () => (await metric(srv, 'parley_log_lines_held_total')) >= 14, 5000, 'the held count');
  let log = srv.log();
  t.is(linesAbout(log, '127.0.0.1').length, 6, '10 bad clients from one address: 6 of their 20 lines are logged (log_lines_per_minute = 6)');
  const notice = log.split('\n').filter((l) => /warn +127\.0\.0\.1: over \[limits\] log_lines_per_minute \(6\)/.test(l));
  t.is(notice.length, 1, 'one warn line says the address is over the cap');
  t.is(await metric(srv, 'parley_log_lines_held_total'), 14, 'parley_log_lines_held_total counts the 14 left out');
  const tHeld = Date.now();

  // ---------------------------------------------------------- other addresses keep their budget
  for (let i = 0; i < 2; i++) await badClient(srv.stompPort, '127.0.0.2');
  await waitFor(() => linesAbout(srv.log(), '127.0.0.2').length >= 4, 5000, '127.0.0.2 lines');
  t.is(linesAbout(srv.log(), '127.0.0.2').length, 4, 'another source address (127.0.0.2) still gets its lines logged');

  // a client behind the trusted proxy (127.0.0.1) is counted as itself
  const ws = new WebSocket(srv.ws, ['v12.stomp'], { headers: { 'X-Forwarded-For': '198.51.100.7' } });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  ws.send('BOGUS\n\n\0');
  await new Promise((res) => ws.on('close', res));
  const proxied = /198\.51\.100\.7 via 127\.0\.0\.1:\d+: STOMP error: unknown or malformed command/;
  await waitFor(() => proxied.test(srv.log()), 5000, 'the proxied client line').catch(() => {});
  t.like(srv.log(), proxied, 'a WebSocket client behind the trusted proxy has its own budget: its STOMP error is logged while the proxy\'s address is over');

  // the held address is not held back otherwise: it still chats
  const a = await connectWs(srv, { login: 'alice' });
  const b = await connectWs(srv, { login: 'bob' });
  b.subscribe('talk');
  await sleep(200);
  await a.send('talk', 'still here');
  await b.wait(() => b.received.some((m) => m.body === 'still here'), 5000, 'the message').catch(() => {});
  t.ok(b.received.some((m) => m.body === 'still here'), 'clients from the held address still chat');
  await a.close();
  await b.close();

  // ---------------------------------------------------------- the summary a minute later
  const before = await metric(srv, 'parley_log_lines_held_total');
  const summaryRe = /warn +127\.0\.0\.1: (\d+) more lines about this address in the last (\d+) s not logged \(\[limits\] log_lines_per_minute = 6\); the first: (.*)/;
  await waitFor(() => summaryRe.test(srv.log()), 80000 - (Date.now() - tHeld), 'the summary line');
  const waited = Date.now() - tHeld;
  const sm = srv.log().match(summaryRe);
  t.is(Number(sm[1]), before, `the summary gives the count (${sm[1]}), as /metrics did`);
  t.ok(Number(sm[2]) >= 60 && Number(sm[2]) <= 66 && waited >= 59000, `it comes a minute after the first line left out (${sm[2]} s; ${waited} ms here)`);
  t.like(sm[3], /^127\.0\.0\.1:\d+: (STOMP error: unknown or malformed command: BOGUS|closing: unknown or malformed command)$/, 'and quotes the first line left out');
  log = srv.log();
  const lines0 = linesAbout(log, '127.0.0.1').length;
  await badClient(srv.stompPort);
  await waitFor(() => linesAbout(srv.log(), '127.0.0.1').length >= lines0 + 2, 5000, 'lines logged again').catch(() => {});
  t.is(linesAbout(srv.log(), '127.0.0.1').length, lines0 + 2, 'a minute on, the address has its budget back: a bad client\'s two lines are logged');

  // the 50 addresses, gone for a minute now, are forgotten
  await waitFor(async () => (await metric(srv, 'parley_client_addresses')) < 10, 15000, 'the table to shrink').catch(() => {});
  const addrs1 = await metric(srv, 'parley_client_addresses');
  t.ok(addrs1 < 10, `a minute after they left, the 50 addresses are forgotten (parley_client_addresses ${addrs0} -> ${addrs1})`);

  // ---------------------------------------------------------- at exit
  for (let i = 0; i < 4; i++) await badClient(srv.stompPort, '127.0.0.2');
  await waitFor(async () => (await metric(srv, 'parley_log_lines_held_total')) > before, 5000, 'more held');
  t.is(await srv.stop(), 0, 'SIGTERM: exit 0');
  t.like(srv.log(), /warn +127\.0\.0\.2: \d+ more lines? about this address in the last \d+ s not logged/, 'the count still due for 127.0.0.2 is written at exit');
  t.like(srv.log(), /warn +127\.0\.0\.2: \d+ more lines?[^\n]*\n[^\n]*parleyd stopped/, 'before "parleyd stopped"');

  // ---------------------------------------------------------- 0: no cap
  const srv0 = await startParley({ ini: { limits: { log_lines_per_minute: 0 } } });
  for (let i = 0; i < 10; i++) await badClient(srv0.stompPort);
  await waitFor(() => linesAbout(srv0.log(), '127.0.0.1').length >= 20, 5000, 'all lines');
  t.is(linesAbout(srv0.log(), '127.0.0.1').length, 20, 'log_lines_per_minute = 0: all 20 lines are logged');
  t.ok(!/log_lines_per_minute/.test(srv0.log()), 'and nothing is held');
  t.is(await srv0.stop(), 0, 'exit 0');

  // ---------------------------------------------------------- a bad value
  const cfg = path.join(srv0.dir, 'bad.ini');
  fs.writeFileSync(cfg, fs.readFileSync(srv0.cfgFile, 'utf8').replace(/log_lines_per_minute = 0/, 'log_lines_per_minute = -5'));
  const r = await runParleyd(['-t', '-c', cfg]);
  t.is(r.code, 2, 'log_lines_per_minute = -5: -t exits 2');
  t.like(r.stderr, /bad\.ini.*\[limits\] log_lines_per_minute.*-5/, 'naming file, section, key and value');
}, { timeoutMs: 150000 });
