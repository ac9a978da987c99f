#!/usr/bin/env node
'use strict';
// Media with the s3 plugin against a real SigV4-checking S3 server
// (s3rver on loopback): upload, fetch through the presigned URL (sha256
// equal), multipart upload, wrong credentials and missing bucket refused at
// start with a clear log line, oversized uploads 413 with nothing stored,
// tampered and expired presigned URLs refused, an outage shows on /readyz
// and heals.
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('../lib/tap');
const { startParley, httpGet, sleep } = require('../lib/parley');
const { startS3 } = require('../lib/svc-s3');
const M = require('../lib/media');

const AK = 'PARLEYTESTAK';
const SK = 'parley/test+secret';
const BUCKET = 'parley-media';

// Start parleyd expecting it to refuse; resolves to { started, log }.
async function startFails(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-test-'));
  try {
    const srv = await startParley(Object.assign({ dir }, opts));
    await srv.stop();
    return { started: true, log: srv.log() };
  } catch (e) {
    return { started: false, log: e.message };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

t.run(async () => {
  let s3;
  try {
    s3 = await startS3({ buckets: [BUCKET], keys: [[AK, SK]] });
  } catch (e) {
    t.ok(false, 'the S3 test server starts: ' + e.message);
    return;
  }
  const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-spool-'));
  const servers = [];
  const s3ini = (extra = {}) => Object.assign({ endpoint: s3.endpoint, bucket: BUCKET, path_style: 'true', part_size: '5m' }, extra);
  try {
    // ---- start-up refuses what cannot work, saying which key to fix
    let r = await startFails({ ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: AK, secret_key: 'wrong-secret' }) } });
    t.ok(!r.started, 'a wrong secret_key stops start-up');
    t.like(r.log, /refused the credentials for bucket 'parley-media' \(HTTP 403 SignatureDoesNotMatch.*check \[s3\] access_key and secret_key/,
      'log: refused credentials, the S3 error code, the keys to check');
    r = await startFails({ ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: 'NOSUCHKEY', secret_key: SK }) } });
    t.ok(!r.started && /HTTP 403 InvalidAccessKeyId/.test(r.log), 'an unknown access_key stops start-up: InvalidAccessKeyId in the log');
    r = await startFails({ ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: AK, secret_key: SK, bucket: 'no-such-bucket' }) } });
    t.ok(!r.started && /bucket 'no-such-bucket' does not exist .*create_bucket = true/.test(r.log),
      'a missing bucket stops start-up, pointing at create_bucket');
    r = await startFails({ ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: AK, secret_key: SK, endpoint: 'ftp://x' }) } });
    t.ok(!r.started && /\[s3\] endpoint = 'ftp:\/\/x': expected http/.test(r.log), 'a malformed endpoint: log names [s3] endpoint');
    r = await startFails({ ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: AK, secret_key: SK, part_size: '1m' }) } });
    t.ok(!r.started && /\[s3\] part_size = '1m'/.test(r.log), 'part_size under 5m: log names [s3] part_size');

    // ---- the server under test: credentials from the environment
    const srv = await startParley({
      ini: { media: { plugin: 's3', max_size: '16m' }, s3: s3ini({ presign_expiry: '60', create_bucket: 'true' }) },
      env: { TMPDIR: spoolDir, AWS_ACCESS_KEY_ID: AK, AWS_SECRET_ACCESS_KEY: SK },
    });
    servers.push(srv);
    t.like(srv.log(), /\[s3\] media in bucket parley-media at http:\/\/127\.0\.0\.1:\d+ \(path-style/, 'started with credentials from AWS_* variables');

    const img = M.png(12, 12, [20, 20, 220]);
    r = await M.upload(srv, img, { type: 'image/png', name: 'blue.png', room: 'lobby' });
    t.is(r.status, 201, 'PNG upload: 201');
    const id = r.json.id;
    t.deep(s3.objects(BUCKET), [`media/${id}`, `media/${id}.meta`].sort(), 'object and metadata object in the bucket under prefix media/');
    let g = await M.fetchMedia(srv, id);
    t.is(g.first.status, 302, 'GET: 302 to the store');
    const loc = new URL(g.first.headers.location);
    t.is(`${loc.origin}${loc.pathname}`, `${s3.endpoint}/${BUCKET}/media/${id}`, 'Location: path-style object URL');
    t.deep([loc.searchParams.get('X-Amz-Algorithm'), loc.searchParams.get('X-Amz-Expires'), loc.searchParams.get('X-Amz-SignedHeaders')],
      ['AWS4-HMAC-SHA256', '60', 'host'], 'presigned: SigV4 query auth, expiry from [s3] presign_expiry');
    t.like(loc.searchParams.get('X-Amz-Credential'), new RegExp(`^${AK}/\\d{8}/us-east-1/s3/aws4_request$`), 'credential scope');
    t.is(g.first.headers['cache-control'], 'private, no-store', 'the redirect is not cached');
    t.is(g.status, 200, 'the presigned URL works without credentials (s3rver checked the signature)');
    t.is(M.sha256(g.raw), M.sha256(img), 'sha256 of the fetched bytes equals the upload');
    t.is(g.headers['content-type'], 'image/png', 'the store serves the sniffed Content-Type');
    t.is(g.headers['content-disposition'], 'inline; filename="blue.png"', 'and the disposition parleyd signed in');
    t.is((await M.fetchMedia(srv, id, { login: 'bob' })).status, 200, 'bob (read on lobby) may fetch it too');

    // tampering breaks the signature
    const bad = new URL(loc.href);
    bad.searchParams.set('X-Amz-Expires', '604800');
    t.is((await M.request(bad.href)).status, 403, 'presigned URL with a changed expiry: 403');
    const bad2 = new URL(loc.href);
    bad2.searchParams.set('response-content-type', 'text/html');
    t.is((await M.request(bad2.href)).status, 403, 'presigned URL with a changed response-content-type: 403');

    // non-images are attachments at the store too
    const doc = Buffer.from('%PDF-1.4 not really\n');
    r = await M.upload(srv, doc, { type: 'application/pdf', name: 'report (final).pdf' });
    g = await M.fetchMedia(srv, r.json.id);
    t.ok(g.status === 200 && g.headers['content-type'] === 'application/pdf' &&
      g.headers['content-disposition'] === 'attachment; filename="report _final_.pdf"', 'a PDF: attachment, via the presigned URL');

    // ---- multipart upload above part_size
    const big = Buffer.alloc(12 * 1024 * 1024 + 12345);
    for (let i = 0; i < big.length; i += 4096) require('crypto').randomBytes(16).copy(big, i);
    const t0 = Date.now();
    r = await M.upload(srv, big, { type: 'application/zip', name: 'big.zip' });
    const ms = Date.now() - t0;
    t.is(r.status, 201, '12 MiB upload: 201');
    t.diag(`12 MiB upload to S3 (3 parts): ${ms} ms`);
    const parts = s3.log().match(new RegExp('Stored part \\d+ of', 'g')) || [];
    t.is(parts.length, 3, 'sent as a multipart upload of 3 parts (part_size 5m)');
    g = await M.fetchMedia(srv, r.json.id);
    t.ok(g.status === 200 && M.sha256(g.raw) === M.sha256(big) && r.json.sha256 === M.sha256(big),
      'multipart object: sha256 of the download equals the upload');

    // ---- refusals store nothing
    const before = s3.objects(BUCKET);
    r = await M.upload(srv, { size: 16 * 1024 * 1024 + 1 }, { type: 'application/octet-stream' });
    t.is(r.status, 413, 'over [media] max_size: 413');
    r = await M.upload(srv, { size: 17 * 1024 * 1024 }, { type: 'application/octet-stream', chunked: true });
    t.is(r.status, 413, 'over max_size, chunked: 413');
    r = await M.upload(srv, Buffer.from('<b>x</b>'), { type: 'text/html' });
    t.is(r.status, 415, 'type not allowed: 415');
    r = await M.upload(srv, img, { type: 'image/png', login: null });
    t.is(r.status, 401, 'no credentials: 401');
    t.deep(s3.objects(BUCKET), before, 'nothing reached the bucket');
    t.deep(fs.readdirSync(spoolDir), [], 'no spool file left');

    // ---- delete
    r = await M.fetchMedia(srv, id, { method: 'DELETE' });
    t.is(r.status, 204, 'DELETE by the uploader: 204');
    t.ok(!s3.objects(BUCKET).some((k) => k.startsWith(`media/${id}`)), 'object and metadata removed from the bucket');
    t.is((await M.fetchMedia(srv, id)).status, 404, 'GET after delete: 404');

    // ---- an outage: 503, /readyz says why, heals by itself
    await s3.down();
    r = await M.upload(srv, img, { type: 'image/png' });
    t.is(r.status, 503, 'store down: upload answers 503');
    t.like(srv.log(), /storing \S+ \(\d+ bytes\) with the s3 plugin failed: PUT: .*(Couldn't connect|Connection refused)/, 'log says the PUT could not connect');
    let ready;
    for (let i = 0; i < 40; i++) {
      ready = await httpGet(`${srv.http}/readyz`);
      if (ready.status === 503) break;
      await sleep(100);
    }
    t.ok(ready.status === 503 && /s3: .*unreachable/.test(ready.body), '/readyz: 503 naming s3 as unreachable');
    await s3.up();
    for (let i = 0; i < 100; i++) {
      ready = await httpGet(`${srv.http}/readyz`);
      if (ready.status === 200) break;
      await sleep(100);
    }
    t.is(ready.status, 200, '/readyz is ready again once the store is back (probed with backoff)');
    r = await M.upload(srv, img, { type: 'image/png' });
    t.is(r.status, 201, 'uploads work again');
    t.is((srv.log().match(/\[s3\] backend not ready: .*unreachable/g) || []).length, 1,
      'log: "not ready" once for the outage, not once per probe');
    t.like(srv.log(), /\[s3\] backend ready/, 'log: ready again');

    // ---- expired presigned URLs
    const srv2 = await startParley({
      ini: { media: { plugin: 's3' }, s3: s3ini({ access_key: AK, secret_key: SK, presign_expiry: '1' }) },
      env: { TMPDIR: spoolDir },
    });
    servers.push(srv2);
    r = await M.upload(srv2, img, { type: 'image/png' });
    const first = await M.request(`${srv2.http}/api/v1/media/${r.json.id}`, { headers: { authorization: M.basicAuth('alice') } });
    await sleep(2200);
    g = await M.request(first.headers.location);
    t.ok(g.status === 403 && /expired/.test(g.raw.toString()), 'a presigned URL past presign_expiry: 403 Request has expired');

    t.skip('virtual-hosted bucket URLs against the test server',
      "s3rver computes the SigV4 canonical URI of virtual-hosted requests as /bucket/key (S3 signs /key), so it cannot check them");
    for (const s of servers) t.is(await s.stop(), 0, 'parleyd exits 0');
  } finally {
    for (const s of servers) await s.stop();
    await s3.stop();
    fs.rmSync(spoolDir, { recursive: true, force: true });
  }
});
