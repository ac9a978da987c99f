'use strict';
// Helpers for the media tests: real image bytes, multipart bodies, uploads
// (buffered, streamed, chunked), raw HTTP for paths clients would normalise,
// and a fetch that follows a presigned redirect like a browser would.
const crypto = require('crypto');
const http = require('http');
const net = require('net');
const zlib = require('zlib');

function sha256(buf) { return crypto.createHash('sha256').update(buf).digest('hex'); }

function crc32(buf) {
  let c, crc = 0xffffffff;
  for (let n = 0; n < buf.length; n++) {
    c = (crc ^ buf[n]) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// A real w x h RGB PNG filled with one colour (browsers decode it).
function png(w = 8, h = 8, rgb = [200, 30, 30]) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const row = Buffer.alloc(1 + 3 * w);
  for (let x = 0; x < w; x++) { row[1 + 3 * x] = rgb[0]; row[2 + 3 * x] = rgb[1]; row[3 + 3 * x] = rgb[2]; }
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// Bytes that start like a JPEG / GIF / WebP (enough for magic sniffing).
const jpegHead = () => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), crypto.randomBytes(200)]);
const gifHead = () => Buffer.concat([Buffer.from('GIF89a'), crypto.randomBytes(100)]);
const webpHead = () => Buffer.concat([Buffer.from('RIFF'), Buffer.from([0x20, 0, 0, 0]), Buffer.from('WEBPVP8 '), crypto.randomBytes(100)]);

// multipart/form-data from [{ name, filename?, type?, data }]
function multipart(parts, boundary = '----parley' + crypto.randomBytes(8).toString('hex')) {
  const bufs = [Buffer.from('preamble to ignore\r\n')];
  for (const p of parts) {
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.type) h += `Content-Type: ${p.type}\r\n`;
    bufs.push(Buffer.from(h + '\r\n'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from('\r\n'));
  }
  bufs.push(Buffer.from(`--${boundary}--\r\nepilogue\r\n`));
  return { body: Buffer.concat(bufs), type: `multipart/form-data; boundary=${boundary}` };
}

function basicAuth(login, pass = '') {
  return 'Basic ' + Buffer.from(`${login}:${pass}`).toString('base64');
}

// Send a request; body is a Buffer, or { size, chunk } streamed in pieces
// (chunked when chunked is true).  Resolves to { status, headers, raw, json }.
function request(url, { method = 'GET', headers = {}, body, chunked = false, timeoutMs = 60000, onContinue } = {}) {
  return new Promise((resolve, reject) => {
    const h = Object.assign({}, headers);
    const streamed = body && !Buffer.isBuffer(body);
    if (body !== undefined && !chunked) h['content-length'] = streamed ? body.size : body.length;
    const req = http.request(url, { method, headers: h }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(raw.toString()); } catch (e) { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, raw, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (onContinue) req.on('continue', onContinue);
    const sendBody = () => {
      if (body === undefined) { req.end(); return; }
      if (!streamed) { req.end(body); return; }
      let left = body.size;
      const piece = body.chunk || Buffer.alloc(256 * 1024, 0x61);
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, piece.length);
          left -= n;
          if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    };
    if (h.expect === '100-continue') req.on('continue', sendBody);
    else sendBody();
  });
}

// POST /api/v1/media.  opts: login, pass, type (Content-Type), name, room,
// chunked, query (extra query string).
function upload(srv, body, { login = 'alice', pass = '', type, name, room, chunked, headers = {}, expect } = {}) {
  const q = [];
  if (name !== undefined) q.push('name=' + encodeURIComponent(name));
  if (room !== undefined) q.push('room=' + encodeURIComponent(room));
  const h = Object.assign({}, headers);
  if (login !== null) h.authorization = basicAuth(login, pass);
  if (type) h['content-type'] = type;
  if (expect) h.expect = '100-continue';
  return request(`${srv.http}/api/v1/media${q.length ? '?' + q.join('&') : ''}`, { method: 'POST', headers: h, body, chunked });
}

// GET a media URL as login; a 302 (presigned S3 URL) is followed without
// credentials, as a browser's <img> would.  Resolves to the final answer
// plus first (the parleyd answer).
async function fetchMedia(srv, id, { login = 'alice', pass = '', method = 'GET', headers = {} } = {}) {
  const h = Object.assign({}, headers);
  if (login !== null) h.authorization = basicAuth(login, pass);
  const first = await request(`${srv.http}/api/v1/media/${id}`, { method, headers: h });
  if (first.status !== 302) return Object.assign({ first }, first);
  const second = await request(first.headers.location, { method });
  return Object.assign({ first }, second);
}

// Raw HTTP/1.1 request text (paths a client library would normalise).
function rawRequest(port, text, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error('raw request timed out')); }, timeoutMs);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => { buf += d; });
    s.on('end', () => { clearTimeout(t); resolve(buf); });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

module.exports = { sha256, png, jpegHead, gifHead, webpHead, multipart, basicAuth, request, upload, fetchMedia, rawRequest };
