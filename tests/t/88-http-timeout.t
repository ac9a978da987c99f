#!/usr/bin/env node
'use strict';
// [server] http_timeout_ms: an HTTP connection that goes silent is not
// kept forever (slowloris, forgotten keep-alive connections).  Silent from
// the start or between requests: closed without a word.  Within a request
// (headers or body): 408 naming the key, then closed, and logged.  What
// counts is silence, not the request's length: a client that trickles
// bytes faster than the timeout is served.  A REST answer that takes
// longer than the timeout (the message waits for its batch) still comes.
// A download read slowly but steadily for longer than the timeout
// completes; one the client stops reading ends after the timeout.
// A WebSocket connection leaves the HTTP rule behind at the upgrade.
// Run against the normal and the ASan/UBSan build; a bad value is refused.
const fs = require('fs');
const net = require('net');
const path = require('path');
const t = require('../lib/tap');
const { startParley, runParleyd, httpRequest, basic, sleep, metric } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { ASAN_BIN, ASAN_PLUGINS, SAN_ENV, sanReport, asanMissing } = require('../lib/asan');
const media = require('../lib/media');
const crypto = require('crypto');

const TIMEOUT = 1500;

// Connect, write the given pieces (string, or { wait: ms }), then collect
// what comes back until the server closes; resolves to { data, closedAfter }
// (ms from the last byte written to the close), or closedAfter -1 if still
// open after ms.
function session(port, pieces, ms = 8000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '', last = Date.now(), done = false;
    const finish = (closedAfter) => { if (!done) { done = true; clearTimeout(tm); s.destroy(); resolve({ data, closedAfter }); } };
    const tm = setTimeout(() => finish(-1), ms);
    s.setEncoding('latin1');
    s.on('data', (d) => { data += d; });
    s.on('error', () => {});
    s.on('close', () => finish(Date.now() - last));
    s.on('connect', async () => {
      for (const p of pieces) {
        if (typeof p === 'string') { s.write(p); last = Date.now(); } else await sleep(p.wait);
      }
    });
  });
}

// GET a media file on a raw socket, reading at most perTick bytes every
// tickMs (stop: read the first bytes, then nothing until resumeAt ms, then
// everything), on a connection that
// closes after the answer or (keepAlive) stays for more; resolves to
// { bytes, sha, ms } when the server closes, or after ms.
function download(srv, id, { perTick = 0, tickMs = 300, stop = false, resumeAt = 0, ms = 30000, keepAlive = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    const hash = crypto.createHash('sha256');
    let head = Buffer.alloc(0), inBody = false, bytes = 0, win = 0, done = false;
    const t0 = Date.now();
    const finish = () => {
      if (done) return;
      done = true; clearInterval(tick); clearTimeout(tm); s.destroy();
      resolve({ bytes, sha: hash.digest('hex'), ms: Date.now() - t0, head: head.toString('latin1') });
    };
    const tm = setTimeout(finish, ms);
    if (stop && resumeAt) setTimeout(() => { stop = false; perTick = Infinity; s.resume(); }, resumeAt);
    const tick = setInterval(() => { win = 0; if (!stop && s.isPaused()) s.resume(); }, tickMs);
    s.on('data', (d) => {
      if (!inBody) {
        head = Buffer.concat([head, d]);
        const i = head.indexOf('\r\n\r\n');
        if (i === -1) return;
        d = head.subarray(i + 4);
        head = head.subarray(0, i);
        inBody = true;
      }
      bytes += d.length;
      hash.update(d);
      win += d.length;
      if (stop || win >= perTick) s.pause();
    });
    s.on('error', () => {});
    s.on('close', finish);
    s.on('end', finish);
    s.on('connect', () => s.write(`GET /api/v1/media/${id} HTTP/1.1\r\nHost: x\r\nAuthorization: ${media.basicAuth('alice')}\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`));
  });
}

async function scenario(label, srv) {
  const P = srv.port;
  let r = await session(P, []);
  t.ok(r.data === '' && r.closedAfter >= TIMEOUT - 200 && r.closedAfter < TIMEOUT + 2000,
    `${label}: a connection that sends nothing is closed after the timeout, without a word (${r.closedAfter} ms, ${r.data.length} bytes)`);

  r = await session(P, ['GET /healthz HTTP/1.1\r\nHost: x\r\n']);
  t.like(r.data, /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*Connection: close[\s\S]*http_timeout_ms/, `${label}: headers that stop half-way: 408 naming [server] http_timeout_ms, Connection: close`);
  t.ok(r.closedAfter >= TIMEOUT - 200 && r.closedAfter < TIMEOUT + 2000, `${label}: ... after the timeout, then closed (${r.closedAfter} ms)`);

  r = await session(P, ['POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na']);
  t.like(r.data, /^HTTP\/1\.1 408 /, `${label}: a body that stops half-way: 408`);

  r = await session(P, ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n']);
  t.ok(/^HTTP\/1\.1 200 /.test(r.data) && !/408/.test(r.data) && r.closedAfter >= TIMEOUT - 200 && r.closedAfter < TIMEOUT + 2000,
    `${label}: a keep-alive connection after its answer (200) is closed when idle for the timeout, without a 408 (${r.closedAfter} ms)`);

  // 1 byte every 400 ms for about 4 s, well past the timeout in total
  const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const trickle = [];
  const step = Math.ceil(req.length / 10);
  for (let i = 0; i < req.length; i += step) trickle.push(req.slice(i, i + step), { wait: 400 });
  r = await session(P, trickle);
  t.like(r.data, /^HTTP\/1\.1 200 /, `${label}: a request trickled in 10 pieces 400 ms apart (4 s in all) is served: silence counts, not length`);

  // the answer is late, not the client: a message waits for its batch
  const t0 = Date.now();
  const post = await httpRequest('POST', `${srv.http}/api/v1/rooms/slow/messages`, JSON.stringify({ body: 'late' }),
    Object.assign({ 'Content-Type': 'application/json' }, basic('alice')));
  const took = Date.now() - t0;
  t.ok(post.status === 201 && took >= TIMEOUT, `${label}: a REST answer that takes longer than the timeout still comes (${post.status} after ${took} ms)`);

  // 24 MiB: more than loopback's socket buffers hold
  const big = crypto.randomBytes(24 << 20);
  const up = await media.upload(srv, big, { type: 'application/octet-stream' });
  if (!t.is(up.status, 201, `${label}: a 24 MiB file is uploaded`)) t.diag(up.raw.toString().slice(0, 300));
  const id = up.json && up.json.id;
  let d = await download(srv, id, { perTick: 2 << 20, tickMs: 300, keepAlive: true });
  t.ok(d.bytes === big.length && d.sha === media.sha256(big) && d.ms > TIMEOUT * 2,
    `${label}: a download read 2 MiB every 300 ms (${d.ms} ms in all, more than the timeout) arrives whole (${d.bytes} bytes, sha256 ${d.sha === media.sha256(big) ? 'matches' : 'differs'})`);
  // stop reading; look again well after the timeout: what the socket
  // buffers held comes, then the end, not the rest of the file
  d = await download(srv, id, { stop: true, keepAlive: true, resumeAt: TIMEOUT + 2500, ms: TIMEOUT + 10000 });
  t.ok(d.bytes < big.length && d.ms < TIMEOUT + 10000 && /HTTP answer not read for 1500 ms: closed/.test(srv.log()),
    `${label}: a client that stops reading its download is closed after the timeout (${d.bytes} bytes taken, ${d.ms} ms, logged)`);
  if (!/HTTP answer not read/.test(srv.log())) t.diag(srv.log().split("\n").slice(-8).join("\n"));

  // a WebSocket connection quiet for longer than the timeout stays
  const a = await connectWs(srv, { login: 'ann' });
  const b = await connectWs(srv, { login: 'bob' });
  b.subscribe('quiet');
  await sleep(TIMEOUT + 1000);
  t.ok(!a.closed && !b.closed, `${label}: WebSocket connections quiet for ${TIMEOUT + 1000} ms stay open`);
  a.client.publish({ destination: '/room/quiet', body: 'still here', headers: { event: 'typing' } });
  await b.wait(() => b.received.some((m) => m.body === 'still here'), 5000, 'the message').catch(() => {});
  t.ok(b.received.some((m) => m.body === 'still here'), `${label}: and still chat`);
  await a.close();
  await b.close();
  t.like(srv.log(), /HTTP request not complete after 1500 ms of silence: 408/, `${label}: the 408s are logged`);
  const n = {};
  for (const reason of ['http_request', 'http_idle', 'http_unread'])
    n[reason] = await metric(srv, `parley_connections_timed_out_total{reason="${reason}"}`);
  t.ok(n.http_request === 2 && n.http_idle >= 2 && n.http_unread === 1,
    `${label}: /metrics counts them: http_request ${n.http_request} (half headers, half body), http_idle ${n.http_idle}, http_unread ${n.http_unread}`);
}

t.run(async () => {
  const ini = { server: { http_timeout_ms: TIMEOUT }, batch: { interval_ms: TIMEOUT + 1000, size: 100000 },
    media: { max_size: '64m' } };
  const srv = await startParley({ ini });
  await scenario('parleyd', srv);
  t.is(await srv.stop(), 0, 'parleyd: exit 0');

  if (asanMissing()) t.ok(false, asanMissing());
  else {
    const san = await startParley({ binary: ASAN_BIN, env: SAN_ENV, startTimeoutMs: 30000,
      ini: Object.assign({}, ini, { server: { http_timeout_ms: TIMEOUT, plugin_dir: ASAN_PLUGINS } }) });
    await scenario('ASan build', san);
    const code = await san.stop(30000);
    t.is(code, 0, `ASan build: exit 0 (23 is a sanitizer report; got ${code})`);
    t.is(sanReport(san.log()), '', 'ASan build: no sanitizer report, leaks included');
  }

  const cfg = path.join(srv.dir, 'bad.ini');
  fs.writeFileSync(cfg, fs.readFileSync(srv.cfgFile, 'utf8').replace(/http_timeout_ms = \d+/, 'http_timeout_ms = 10'));
  const r = await runParleyd(['-t', '-c', cfg]);
  t.ok(r.code === 2 && /bad\.ini.*\[server\] http_timeout_ms.*10/.test(r.stderr), `http_timeout_ms = 10 (below 1000): -t exits ${r.code} naming file, section, key and value`);
}, { timeoutMs: 150000 });
