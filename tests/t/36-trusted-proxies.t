#!/usr/bin/env node
'use strict';
// Per-IP limits behind a reverse proxy ([limits] trusted_proxies): a
// WebSocket connection from a trusted proxy is counted for the client its
// X-Forwarded-For names (the rightmost address that is not a trusted
// proxy), over the limit it gets 429 naming the reason, the log names the
// client, and closing a connection gives its place back.  Without the key
// the header is ignored and the proxy's own address is what is limited.
// Raw STOMP/TCP connections are always counted for their peer.  A bad
// entry stops start-up naming file, section and key.  The header parser
// runs under ASan/UBSan with odd values.  Then the same
// through a real nginx (contrib's proxy headers).
const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const t = require('../lib/tap');
const { startParley, runParleyd, sleep, httpGet, freePort, ROOT } = require('../lib/parley');
const { wsFrame } = require('../lib/stomp-raw');

const servers = [];
const procs = [];
process.on('exit', () => {
  for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL');
  for (const p of procs) p.kill('SIGKILL');
});

// An HTTP upgrade to WebSocket with the given extra headers; resolves to
// { status, head, sock } (the socket stays open on 101).
function upgrade(port, headers = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (status) => { clearTimeout(tm); resolve({ status, head: buf, sock }); };
    const tm = setTimeout(() => done(0), 5000);
    sock.setEncoding('latin1');
    sock.on('error', () => done(-1));
    sock.on('close', () => { if (!/\r\n\r\n/.test(buf)) done(-1); });
    sock.on('data', (d) => {
      buf += d;
      const m = /^HTTP\/1\.1 (\d+)/.exec(buf);
      if (m && /\r\n\r\n/.test(buf)) done(Number(m[1]));
    });
    let req = 'GET /ws HTTP/1.1\r\nHost: parley\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n';
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    sock.on('connect', () => sock.write(req + '\r\n'));
  });
}

function close(c) {
  return new Promise((r) => {
    if (c.sock.destroyed) return r();
    c.sock.once('close', r);
    c.sock.destroy();
  });
}

const LIMITS = { ip_max_connections: 2, ip_connect_rate: 0, msg_rate: 0 };

t.run(async () => {
  const srv = await startParley({ ini: { limits: Object.assign({ trusted_proxies: '127.0.0.1, 10.0.0.0/8, ::1' }, LIMITS) } });
  servers.push(srv);
  const A = { 'X-Forwarded-For': '203.0.113.5' };
  const a1 = await upgrade(srv.port, A);
  const a2 = await upgrade(srv.port, A);
  t.ok(a1.status === 101 && a2.status === 101, `two WebSocket connections for client 203.0.113.5 through the proxy (${a1.status}, ${a2.status})`);
  const a3 = await upgrade(srv.port, A);
  t.is(a3.status, 429, 'a third one for the same client: 429');
  t.like(a3.head, /too many connections from this address/, '... naming the reason');
  const b1 = await upgrade(srv.port, { 'X-Forwarded-For': '203.0.113.6' });
  t.is(b1.status, 101, 'another client through the same proxy is not held back by the first (101)');
  // the client writes what it likes left of the proxy's entry: not believed
  const spoof = await upgrade(srv.port, { 'X-Forwarded-For': '198.51.100.1, 203.0.113.5' });
  t.is(spoof.status, 429, 'a client naming another address before its own is counted as itself (rightmost untrusted): 429');
  // trusted hops are skipped from the right
  const chain = await upgrade(srv.port, { 'X-Forwarded-For': '203.0.113.5, 10.1.2.3' });
  t.is(chain.status, 429, 'through a second trusted proxy (10.1.2.3) the client is still 203.0.113.5: 429');
  await sleep(100);
  t.like(srv.log(), /203\.0\.113\.5: refusing connection: too many open connections from this address/, 'the log names the client, not the proxy');
  await close(a1);
  await sleep(100);
  const a4 = await upgrade(srv.port, A);
  t.is(a4.status, 101, 'after one of its connections closed the client may connect again (101)');
  // no header, or garbage: the proxy itself is the client
  const n1 = await upgrade(srv.port);
  const n2 = await upgrade(srv.port, { 'X-Forwarded-For': 'not-an-address' });
  const n3 = await upgrade(srv.port);
  t.ok(n1.status === 101 && n2.status === 101 && n3.status === 429, `without a usable X-Forwarded-For the proxy's address is counted (${n1.status}, ${n2.status}, ${n3.status})`);
  // REST through the proxy is not counted per client
  const h = await httpGet(`${srv.http}/healthz`, { 'X-Forwarded-For': '203.0.113.5' });
  t.is(h.status, 200, 'plain HTTP requests through the proxy are served (not counted per client)');
  // raw STOMP/TCP: counted for its peer, whatever the proxies list says
  const stomp = [];
  for (let i = 0; i < 3; i++) {
    stomp.push(await new Promise((resolve) => {
      const s = net.connect(srv.stompPort, '127.0.0.1');
      let got = '';
      s.setEncoding('latin1');
      s.on('data', (d) => { got += d; if (/CONNECTED/.test(got)) resolve({ s, ok: true }); });
      s.on('close', () => resolve({ s, ok: false }));
      s.on('error', () => {});
      s.on('connect', () => s.write('CONNECT\naccept-version:1.2\nhost:parley\nlogin:tcp\n\n\0'));
    }));
  }
  // the peer 127.0.0.1 already holds n1 and n2 (counted at the upgrade)
  t.ok(stomp.every((x) => !x.ok), 'raw STOMP/TCP from 127.0.0.1 is counted for 127.0.0.1 (over its 2)');
  for (const c of [a2, b1, a4, n1, n2, a3, n3, spoof, chain]) await close(c);
  for (const x of stomp) x.s.destroy();
  t.is(await srv.stop(), 0, 'clean stop');

  // IPv6 clients are counted per /64 ([limits] ipv6_prefix): one host may
  // use any address of its block; IPv4-mapped IPv6 is the IPv4 address
  const v6 = await startParley({ ini: { limits: Object.assign({ trusted_proxies: '127.0.0.1', log_lines_per_minute: 2 }, LIMITS) } });
  servers.push(v6);
  const x = (ip) => ({ 'X-Forwarded-For': ip });
  const v1 = await upgrade(v6.port, x('2001:db8:1:2::a'));
  const v2 = await upgrade(v6.port, x('2001:db8:1:2:ffff:ffff:ffff:ffff'));
  const v3 = await upgrade(v6.port, x('2001:db8:1:2::b'));
  t.ok(v1.status === 101 && v2.status === 101 && v3.status === 429,
    `IPv6: three addresses of one /64 share its 2 connections (${v1.status}, ${v2.status}, ${v3.status})`);
  const v4 = await upgrade(v6.port, x('2001:db8:1:3::a'));
  t.is(v4.status, 101, 'IPv6: the next /64 has its own (101)');
  await sleep(100);
  t.like(v6.log(), /2001:db8:1:2::\/64: refusing connection: too many open connections/, 'the log names the block');
  const m1 = await upgrade(v6.port, x('192.0.2.1'));
  const m2 = await upgrade(v6.port, x('::ffff:192.0.2.1'));
  const m3 = await upgrade(v6.port, x('::ffff:192.0.2.1'));
  const m4 = await upgrade(v6.port, x('::ffff:192.0.2.2'));
  t.ok(m1.status === 101 && m2.status === 101 && m3.status === 429 && m4.status === 101,
    `IPv4-mapped IPv6 counts as the IPv4 address, not as a /64 of all IPv4 (${m1.status}, ${m2.status}, ${m3.status}, ${m4.status})`);
  // the log cap goes by the same block: 2 lines, then one notice for it
  for (const ip of ['2001:db8:9:9::1', '2001:db8:9:9::2', '2001:db8:9:9::3']) {
    const c = await upgrade(v6.port, x(ip));
    c.sock.write(wsFrame(1, 'BOGUS\n\n\0'));
    await new Promise((r) => c.sock.once('close', r));
  }
  await sleep(100);
  t.ok((v6.log().match(/2001:db8:9:9::\d via 127\.0\.0\.1:\d+: /g) || []).length === 2 &&
    /2001:db8:9:9::\/64: over \[limits\] log_lines_per_minute \(2\)/.test(v6.log()),
    'three addresses of one /64 share its log_lines_per_minute (2 lines, then the notice for the block)');
  for (const c of [v1, v2, v3, v4, m1, m2, m3, m4]) await close(c);
  t.is(await v6.stop(), 0, 'clean stop');
  const w6 = await startParley({ ini: { limits: Object.assign({ trusted_proxies: '127.0.0.1', ipv6_prefix: 128 }, LIMITS) } });
  servers.push(w6);
  const w = [];
  for (const ip of ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2::c']) w.push(await upgrade(w6.port, x(ip)));
  t.ok(w.every((c) => c.status === 101), `ipv6_prefix = 128: each address on its own (${w.map((c) => c.status)})`);
  for (const c of w) await close(c);
  t.is(await w6.stop(), 0, 'clean stop');

  // without trusted_proxies the header is ignored
  const plain = await startParley({ ini: { limits: LIMITS } });
  servers.push(plain);
  const p1 = await upgrade(plain.port, { 'X-Forwarded-For': '203.0.113.7' });
  const p2 = await upgrade(plain.port, { 'X-Forwarded-For': '203.0.113.8' });
  const p3 = await upgrade(plain.port, { 'X-Forwarded-For': '203.0.113.9' });
  // (the harness's own readiness check may still hold a keep-alive slot)
  t.ok(p1.status === 101 && p3.status === -1,
    `without trusted_proxies X-Forwarded-For is ignored: three clients' worth from 127.0.0.1 are over its 2, the last closed at accept (${p1.status}, ${p2.status}, ${p3.status})`);
  for (const c of [p1, p2, p3]) await close(c);
  t.is(await plain.stop(), 0, 'clean stop');

  // a bad entry: start-up stops and says where
  const dir = fs.mkdtempSync('/tmp/parley-proxies-');
  for (const [bad, why] of [['10.0.0.0/33', /prefix length out of range/], ['proxy.example', /not an IP address/]]) {
    const ini = path.join(dir, 'bad.ini');
    fs.writeFileSync(ini, `[limits]\ntrusted_proxies = 127.0.0.1, ${bad}\n`);
    const r = await runParleyd(['-t', '-c', ini], { cwd: dir });
    t.ok(r.code !== 0, `trusted_proxies with '${bad}': parleyd -t exits ${r.code}`);
    t.like(r.stderr, new RegExp(`bad\\.ini: \\[limits\\] trusted_proxies = .*${why.source}`), '... naming file, section, key and why');
  }
  fs.writeFileSync(path.join(dir, 'bad.ini'), '[limits]\nipv6_prefix = 16\n');
  const r6 = await runParleyd(['-t', '-c', path.join(dir, 'bad.ini')], { cwd: dir });
  t.ok(r6.code === 2 && /bad\.ini.*\[limits\] ipv6_prefix.*16/.test(r6.stderr), `ipv6_prefix = 16 (below 32): -t exits ${r6.code} naming file, section, key and value`);
  fs.rmSync(dir, { recursive: true, force: true });

  // the header parser under ASan/UBSan, with odd headers
  const asan = path.resolve(ROOT, process.env.PARLEY_ASAN_BUILD || 'build-asan');
  if (fs.existsSync(path.join(asan, 'parleyd'))) {
    const san = await startParley({
      binary: path.join(asan, 'parleyd'),
      env: { ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:exitcode=23', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
      ini: { server: { plugin_dir: path.join(asan, 'plugins', '.libs') }, limits: Object.assign({ trusted_proxies: '127.0.0.0/8 ::1 2001:db8::/32' }, LIMITS) },
    });
    servers.push(san);
    const odd = ['', ',', ' , ,', '203.0.113.9,', ',203.0.113.9', '2001:db8::5, 2001:db9::7', '::ffff:203.0.113.10',
      '1'.repeat(300), '203.0.113.11 , 127.0.0.2 ,127.0.0.3', '[2001:db9::1]:443', '203.0.113.12\t', 'x'.repeat(70) + ', 203.0.113.13'];
    const got = [];
    for (const x of odd) { const r = await upgrade(san.port, { 'X-Forwarded-For': x }); got.push(r.status); r.sock.destroy(); }
    t.ok(got.every((s) => s === 101 || s === 429), `odd X-Forwarded-For values are answered (${got.join(' ')})`);
    const code = await san.stop();
    t.ok(code === 0 && !/AddressSanitizer|runtime error:|LeakSanitizer/.test(san.log()), `ASan build: no sanitizer report, exit ${code}`);
  } else {
    t.skip('ASan build', `no ${asan}/parleyd (tests/run-all.sh builds it)`);
  }

  // through nginx: it appends the address it saw (127.0.0.1) to the
  // header; parleyd trusts 127.0.0.1 and counts the client named before it
  const nginx = (['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)));
  if (!nginx) {
    t.ok(false, 'nginx is installed (tests/run-all.sh installs it)');
    return;
  }
  const behind = await startParley({ ini: { limits: Object.assign({ trusted_proxies: '127.0.0.1' }, LIMITS) } });
  servers.push(behind);
  const ndir = fs.mkdtempSync('/tmp/parley-nginx-');
  const nport = await freePort();
  fs.writeFileSync(path.join(ndir, 'nginx.conf'), `
daemon off; worker_processes 1; pid ${ndir}/nginx.pid; error_log ${ndir}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${ndir}; proxy_temp_path ${ndir}; fastcgi_temp_path ${ndir}; uwsgi_temp_path ${ndir}; scgi_temp_path ${ndir};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${nport};
    location / {
      proxy_pass http://127.0.0.1:${behind.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`);
  const ng = spawn(nginx, ['-p', ndir, '-c', path.join(ndir, 'nginx.conf')], { stdio: 'ignore' });
  procs.push(ng);
  for (let i = 0; i < 50; i++) {
    if (await new Promise((r) => { const s = net.connect(nport, '127.0.0.1'); s.on('connect', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); })) break;
    await sleep(100);
  }
  const v = [];
  for (const ip of ['192.0.2.10', '192.0.2.10', '192.0.2.10', '192.0.2.11']) v.push(await upgrade(nport, { 'X-Forwarded-For': ip }));
  t.ok(v[0].status === 101 && v[1].status === 101 && v[2].status === 429 && v[3].status === 101,
    `through nginx: client 192.0.2.10 gets 2 connections and a 429, 192.0.2.11 its own (${v.map((x) => x.status).join(', ')})`);
  await sleep(100);
  t.like(behind.log(), /192\.0\.2\.10: refusing connection/, 'the log names the client behind nginx');
  for (const x of v) x.sock.destroy();
  ng.kill('SIGTERM');
  t.is(await behind.stop(), 0, 'clean stop');
  fs.rmSync(ndir, { recursive: true, force: true });
});
