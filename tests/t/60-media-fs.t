#!/usr/bin/env node
'use strict';
// Media with the fs plugin: uploads (raw, multipart, streamed, chunked,
// Expect: 100-continue), download with the right headers, image sniffing,
// allowed types, size limit (413, nothing stored, spool empty), auth and
// room permissions, delete, path-traversal ids, media-id on STOMP.
const fs = require('fs');
const path = require('path');
const t = require('../lib/tap');
const { startParley, sleep, PARLEYD } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const M = require('../lib/media');

const MAX = 24 * 1024 * 1024;

// an AddressSanitizer build keeps freed memory in quarantine
const asan = (() => {
  try {
    return /libasan/.test(require('child_process').execFileSync('ldd', [PARLEYD]).toString());
  } catch (e) { return false; }
})();

function vmHWM(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

t.run(async () => {
  const spoolDir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'parley-spool-'));
  const srv = await startParley({
    ini: {
      media: { max_size: '24m' },
      rooms: { secret: 'alice:read+write, *:' },
    },
    env: { TMPDIR: spoolDir },
  });
  const mediaDir = path.join(srv.dir, 'media');
  const stored = () => fs.readdirSync(mediaDir).sort();
  const spooled = () => fs.readdirSync(spoolDir);
  try {
    // ---- a large upload streams: memory stays flat, bytes arrive intact
    {
      const piece = require('crypto').randomBytes(256 * 1024);
      const size = 20 * 1024 * 1024;
      const h = require('crypto').createHash('sha256');
      for (let i = 0; i < size / piece.length; i++) h.update(piece);
      const want = h.digest('hex');
      const before = vmHWM(srv.proc.pid);
      const t0 = Date.now();
      const r = await M.upload(srv, { size, chunk: piece }, { type: 'application/octet-stream', name: 'big.bin' });
      const ms = Date.now() - t0;
      const grew = vmHWM(srv.proc.pid) - before;
      t.is(r.status, 201, '20 MiB upload accepted (201)');
      t.is(r.json && r.json.size, size, 'size in the answer');
      t.is(r.json && r.json.sha256, want, 'sha256 in the answer matches the bytes sent');
      if (asan) t.skip('peak memory stays flat during a 20 MiB upload', 'AddressSanitizer build: its quarantine keeps freed memory');
      else t.ok(grew < 8 * 1024 * 1024, `parleyd peak memory grew ${(grew / 1048576).toFixed(1)} MiB for a 20 MiB upload (streamed, not buffered)`);
      t.diag(`20 MiB upload: ${ms} ms (${(size / 1048576 / (ms / 1000)).toFixed(0)} MiB/s)`);
      const g = await M.fetchMedia(srv, r.json.id);
      t.ok(g.status === 200 && M.sha256(g.raw) === want, 'download is byte-identical (sha256)');
      t.is(g.headers['content-disposition'], 'attachment; filename="big.bin"', 'not an image: served as an attachment');
    }

    // ---- a PNG, raw body
    const img = M.png(16, 16, [10, 200, 10]);
    let r = await M.upload(srv, img, { type: 'image/png', name: 'green.png' });
    t.is(r.status, 201, 'PNG upload: 201');
    const pngId = r.json.id;
    t.like(pngId, /^[A-Za-z0-9_-]{22}$/, 'id: 22 characters of base64url');
    t.deep([r.json.url, r.json.size, r.json.content_type, r.json.sha256, r.json.name],
      [`/api/v1/media/${pngId}`, img.length, 'image/png', M.sha256(img), 'green.png'], 'answer: url, size, content_type, sha256, name');
    t.is(r.headers.location, `/api/v1/media/${pngId}`, 'Location header');
    t.ok(stored().includes(pngId) && stored().includes(`${pngId}.meta`), 'file and metadata sidecar in [fs] dir');

    let g = await M.fetchMedia(srv, pngId);
    t.is(g.status, 200, 'GET: 200');
    t.is(M.sha256(g.raw), M.sha256(img), 'GET: same bytes');
    t.is(g.headers['content-type'], 'image/png', 'GET: Content-Type from the metadata');
    t.is(g.headers['x-content-type-options'], 'nosniff', 'GET: X-Content-Type-Options: nosniff');
    t.is(g.headers['content-disposition'], 'inline; filename="green.png"', 'GET: a safe image is inline');
    t.is(g.headers.etag, `"${M.sha256(img)}"`, 'GET: ETag is the sha256');
    t.like(g.headers['content-security-policy'], /sandbox/, 'GET: CSP sandbox');
    g = await M.fetchMedia(srv, pngId, { method: 'HEAD' });
    t.ok(g.status === 200 && Number(g.headers['content-length']) === img.length && g.raw.length === 0, 'HEAD: headers only');
    g = await M.fetchMedia(srv, pngId, { headers: { 'if-none-match': `"${M.sha256(img)}"` } });
    t.is(g.status, 304, 'If-None-Match with the ETag: 304');

    // ---- sniffing: the bytes decide for images
    r = await M.upload(srv, M.jpegHead(), { type: 'text/plain' });
    t.is(r.json && r.json.content_type, 'image/jpeg', 'JPEG bytes claimed as text/plain are stored as image/jpeg');
    r = await M.upload(srv, Buffer.from('<html><script>alert(1)</script></html>'), { type: 'image/png', name: 'x.png' });
    t.is(r.json && r.json.content_type, 'application/octet-stream', 'HTML claimed as image/png is not believed: application/octet-stream');
    g = await M.fetchMedia(srv, r.json.id);
    t.ok(g.headers['content-type'] === 'application/octet-stream' && /^attachment/.test(g.headers['content-disposition']),
      '... and served as an attachment');
    let mp = M.multipart([{ name: 'caption', data: 'hello' }, { name: 'file', filename: 'anim.gif', type: 'application/octet-stream', data: M.gifHead() }]);
    r = await M.upload(srv, mp.body, { type: mp.type });
    t.deep(r.json && [r.json.content_type, r.json.name], ['image/gif', 'anim.gif'], 'multipart: the file part (with a text field beside it), GIF sniffed');
    const webp = M.webpHead();
    mp = M.multipart([{ name: 'f', filename: 'C:\\Users\\me\\pic.webp', type: 'image/webp', data: webp }]);
    r = await M.upload(srv, mp.body, { type: mp.type });
    t.deep(r.json && [r.json.content_type, r.json.name, r.json.sha256], ['image/webp', 'pic.webp', M.sha256(webp)],
      'multipart: WebP, path stripped from the file name, exact bytes');

    // ---- refusals leave nothing behind
    const before = stored();
    r = await M.upload(srv, Buffer.from('<html></html>'), { type: 'text/html' });
    t.is(r.status, 415, 'text/html is not in the default allowed_types: 415');
    t.like(r.json && r.json.error, /allowed_types/, '415 names the config key');
    r = await M.upload(srv, img, { login: null, type: 'image/png' });
    t.is(r.status, 401, 'no credentials: 401');
    t.ok(/Basic/.test(r.headers['www-authenticate'] || ''), '401 asks for Basic auth');
    mp = M.multipart([{ name: 'a', filename: 'a.png', data: img }, { name: 'b', filename: 'b.png', data: img }]);
    r = await M.upload(srv, mp.body, { type: mp.type });
    t.is(r.status, 400, 'multipart with two files: 400');
    mp = M.multipart([{ name: 'caption', data: 'no file' }]);
    r = await M.upload(srv, mp.body, { type: mp.type });
    t.is(r.status, 400, 'multipart without a file part: 400');
    mp = M.multipart([{ name: 'f', filename: 'a.png', data: img }]);
    r = await M.upload(srv, mp.body.subarray(0, mp.body.length - 30), { type: mp.type });
    t.is(r.status, 400, 'multipart without its closing boundary: 400');
    r = await M.upload(srv, Buffer.alloc(0), { type: 'image/png' });
    t.is(r.status, 400, 'empty upload: 400');

    r = await M.upload(srv, { size: MAX + 1 }, { type: 'application/octet-stream' });
    t.is(r.status, 413, 'over [media] max_size with Content-Length: 413');
    t.like(r.json && r.json.error, /max_size/, '413 names [media] max_size');
    r = await M.upload(srv, { size: MAX + 4096 }, { type: 'application/octet-stream', chunked: true });
    t.is(r.status, 413, 'over max_size, chunked (no Content-Length): 413');
    mp = M.multipart([{ name: 'f', filename: 'big.bin', data: Buffer.alloc(MAX + 1, 0x62) }]);
    r = await M.upload(srv, mp.body, { type: mp.type });
    t.is(r.status, 413, 'over max_size inside multipart: 413');
    let continued = false;
    r = await M.request(`${srv.http}/api/v1/media`, {
      method: 'POST', body: { size: MAX * 2 }, onContinue: () => { continued = true; },
      headers: { authorization: M.basicAuth('alice'), 'content-type': 'application/octet-stream', expect: '100-continue' },
    });
    t.ok(r.status === 413 && !continued, 'Expect: 100-continue over the limit: 413 at once, no 100 Continue, body never sent');
    continued = false;
    r = await M.request(`${srv.http}/api/v1/media`, {
      method: 'POST', body: img, onContinue: () => { continued = true; },
      headers: { authorization: M.basicAuth('alice'), 'content-type': 'image/png', expect: '100-continue' },
    });
    t.ok(r.status === 201 && continued, 'Expect: 100-continue within the limit: 100 Continue, then 201');
    const after = stored().filter((f) => !f.startsWith(r.json.id));
    t.deep(after, before, 'refused uploads stored nothing in [fs] dir');
    await sleep(100);
    t.deep(spooled(), [], 'and left no spool file behind');

    // ---- path traversal and malformed ids never reach the filesystem
    fs.writeFileSync(path.join(srv.dir, 'secret.txt'), 'top secret');
    const raw = async (method, p) => {
      const out = await M.rawRequest(srv.port, `${method} ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: ${M.basicAuth('alice')}\r\nConnection: close\r\n\r\n`);
      return { status: Number((/^HTTP\/1\.1 (\d+)/.exec(out) || [])[1]), text: out };
    };
    for (const p of ['/api/v1/media/..%2Fsecret.txt', '/api/v1/media/../secret.txt', '/api/v1/media/%2e%2e%2fsecret.txt',
      '/api/v1/media/..', '/api/v1/media/a/b', '/api/v1/media/.meta', `/api/v1/media/${pngId}.meta`,
      '/api/v1/media/' + 'a'.repeat(65), '/api/v1/media/%2Fetc%2Fpasswd']) {
      const a = await raw('GET', p);
      t.ok(a.status === 400 && !/top secret|root:/.test(a.text), `GET ${p}: 400, nothing read`);
    }
    let a = await raw('DELETE', '/api/v1/media/..%2Fsecret.txt');
    t.ok(a.status === 400 && fs.existsSync(path.join(srv.dir, 'secret.txt')), 'DELETE with a traversal id: 400, nothing removed');
    a = await raw('GET', '/api/v1/media/AAAAAAAAAAAAAAAAAAAAAA');
    t.is(a.status, 404, 'a well-formed unknown id: 404');
    a = await raw('GET', '/api/v1/media');
    t.ok(a.status === 405 && /\r\nAllow: POST\r\n/.test(a.text) && /"status":405,"error":"POST a file here; GET \/api\/v1\/media\/\{id\}"}$/.test(a.text),
      'GET /api/v1/media: 405, Allow: POST, a whole JSON body');
    a = await raw('PUT', `/api/v1/media/${pngId}`);
    t.ok(a.status === 405 && /Allow: GET, HEAD, DELETE/.test(a.text) && /"method not allowed"}$/.test(a.text), 'PUT on a media id: 405');

    // ---- permissions follow rooms
    r = await M.upload(srv, img, { type: 'image/png', room: 'secret' });
    t.is(r.status, 201, 'alice uploads into room secret');
    const secretId = r.json.id;
    t.is((await M.fetchMedia(srv, secretId, { login: 'bob' })).status, 403, 'bob may not read secret: 403');
    t.is((await M.fetchMedia(srv, secretId, { login: 'alice' })).status, 200, 'alice may');
    r = await M.upload(srv, img, { type: 'image/png', room: 'lobby' });
    t.is((await M.fetchMedia(srv, r.json.id, { login: 'bob' })).status, 200, 'media of room lobby: bob (read on lobby) may fetch it');
    const n0 = stored().length;
    r = await M.upload(srv, img, { type: 'image/png', room: 'secret', login: 'bob' });
    t.ok(r.status === 403 && stored().length === n0, 'bob uploading into secret (no write): 403, nothing stored');
    t.is((await M.fetchMedia(srv, pngId, { login: 'carol' })).status, 403, 'media not shared in any room: only its uploader');

    // ---- STOMP: a message refers to media by id
    const alice = await connectWs(srv, { login: 'alice' });
    const bob = await connectWs(srv, { login: 'bob' });
    bob.subscribe('lobby');
    await sleep(150);
    await alice.send('lobby', 'look at this', { 'media-id': pngId });
    await bob.wait(() => bob.received.some((m) => m.body === 'look at this'), 5000, 'media message');
    const mm = bob.received.find((m) => m.body === 'look at this');
    t.is(mm.headers['media-id'], pngId, 'MESSAGE carries media-id');
    await sleep(200);
    g = await M.fetchMedia(srv, pngId, { login: 'bob' });
    if (g.status === 200) t.ok(true, 'shared in lobby: bob may now fetch it');
    else t.skip('shared in lobby: bob may now fetch it', 'the core does not call media_share() on SEND yet (doc/media.md)');
    const eve = await connectWs(srv, { login: 'eve' });
    const errs = [];
    eve.client.onStompError = (f) => errs.push(f);
    eve.client.publish({ destination: '/room/lobby', body: 'ghost', headers: { 'media-id': 'AAAAAAAAAAAAAAAAAAAAAA', receipt: 'g1' } });
    await sleep(500);
    if (errs.length > 0) t.like(errs[0].headers.message, /media/, 'SEND with an unknown media-id: ERROR naming the media');
    else t.skip('SEND with an unknown media-id is refused', 'the core does not call media_share() on SEND yet (doc/media.md)');
    await Promise.all([alice.close(), bob.close(), eve.close().catch(() => {})]);

    // ---- delete: the uploader only
    t.is((await M.fetchMedia(srv, pngId, { login: 'bob', method: 'DELETE' })).status, 403, 'DELETE by someone else: 403');
    t.is((await M.fetchMedia(srv, pngId, { method: 'DELETE' })).status, 204, 'DELETE by the uploader: 204');
    t.is((await M.fetchMedia(srv, pngId)).status, 404, 'then GET: 404');
    t.ok(!stored().includes(pngId) && !stored().includes(`${pngId}.meta`), 'file and metadata removed');

    const metrics = (await M.request(`${srv.http}/metrics`)).raw.toString();
    const mval = (re) => Number((re.exec(metrics) || [])[1]);
    t.ok(mval(/^parley_media_uploads_total (\d+)/m) >= 8 && mval(/^parley_media_rejected_total\{reason="too_large"\} (\d+)/m) >= 3 &&
      mval(/^parley_media_downloads_total (\d+)/m) >= 5, '/metrics counts uploads, refusals by reason and downloads');

    t.is(await srv.stop(), 0, 'parleyd exits 0 on SIGTERM');
    t.deep(spooled(), [], 'no spool files at exit');
  } finally {
    await srv.stop();
    fs.rmSync(spoolDir, { recursive: true, force: true });
  }
});
