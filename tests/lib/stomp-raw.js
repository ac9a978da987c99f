'use strict';
// A raw STOMP 1.2 client over TCP, for tests that need what a library
// hides: exact bytes, a socket that stops reading, frames after an ERROR.
//
//   const c = await stompTcp(port, 'alice');   resolves once CONNECTED
//   c.write('SEND', { destination: '/room/a', receipt: 'r1' }, body)
//   c.frames        every frame { command, headers, body (Buffer) }
//   await c.wait(() => c.frames.some(...), ms, 'what')   rejects on timeout
//   c.closed, c.sock
//
//   const w = await stompWs(url, 'bob'[, passcode])   the same over WebSocket
//   (v12.stomp): resolves once open, CONNECT sent; w.ws, w.frames, w.write
//
// Options: keep: false keeps no frames (a test counting megabytes of them
// in onFrame); onFrame(f) sees each frame as it arrives; passcode.
//
//   stompFrame(cmd, headers, body)   one STOMP frame as bytes (what write
//   sends), for a test that pipelines many in one socket write
//
//   wsFrame(opcode, payload, { mask, fin })   one WebSocket frame as bytes,
//   masked (a client's) unless mask: false, FIN set unless fin: false
const net = require('net');
const crypto = require('crypto');
const WebSocket = require('ws');

function wsFrame(opcode, payload, { mask = true, fin = true } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  const head = [(fin ? 0x80 : 0) | opcode];
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 255);
  else { head.push((mask ? 0x80 : 0) | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >> 16) & 255, (len >> 8) & 255, len & 255); }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, masked]);
}

// One STOMP frame as bytes: command, headers as given (no escaping), body.
function stompFrame(cmd, h = {}, body = '') {
  let s = cmd + '\n';
  for (const [k, v] of Object.entries(h)) s += `${k}:${v}\n`;
  return Buffer.concat([Buffer.from(s + '\n'), Buffer.from(body), Buffer.from([0])]);
}

// Content-length aware frame splitter: feed it socket data.
function frameReader(onFrame) {
  let buf = Buffer.alloc(0);
  return (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      let i = 0;
      while (i < buf.length && (buf[i] === 10 || buf[i] === 13)) i++;
      if (i) buf = buf.subarray(i);
      const he = buf.indexOf('\n\n');
      if (he === -1) return;
      const lines = buf.subarray(0, he).toString().split('\n');
      const f = { command: lines.shift(), headers: {} };
      for (const l of lines) { const k = l.indexOf(':'); if (!(l.slice(0, k) in f.headers)) f.headers[l.slice(0, k)] = l.slice(k + 1); }
      const cl = f.headers['content-length'];
      const end = cl !== undefined ? he + 2 + Number(cl) : buf.indexOf(0, he + 2);
      if (end === -1 || buf.length < end + 1) return;
      f.body = buf.subarray(he + 2, end);
      buf = buf.subarray(end + 1);
      onFrame(f);
    }
  };
}

function stompTcp(port, login, { keep = true, onFrame, ms = 5000, passcode } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const c = { sock, frames: [], closed: false, connected: false };
    const waiters = [];
    const wake = () => { for (const w of waiters.slice()) w(); };
    c.wait = (pred, wms = 10000, what = 'condition') => new Promise((res, rej) => {
      if (pred()) return res();
      const check = () => { if (pred()) { clearTimeout(tm); waiters.splice(waiters.indexOf(check), 1); res(); } };
      const tm = setTimeout(() => { waiters.splice(waiters.indexOf(check), 1); rej(new Error('timeout waiting for ' + what)); }, wms);
      waiters.push(check);
    });
    c.write = (cmd, h = {}, body = '') => sock.write(stompFrame(cmd, h, body));
    sock.on('data', frameReader((f) => {
      if (f.command === 'CONNECTED') c.connected = true;
      if (keep) c.frames.push(f);
      if (onFrame) onFrame(f);
      wake();
    }));
    sock.on('close', () => { c.closed = true; wake(); });
    sock.on('error', () => {});
    sock.on('connect', () => c.write('CONNECT', Object.assign({ 'accept-version': '1.2', host: 'parley', login }, passcode !== undefined ? { passcode } : {})));
    c.wait(() => c.connected, ms, `CONNECTED for ${login}`).then(() => resolve(c), reject);
  });
}

function stompWs(url, login, passcode) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp']);
    const c = { ws, frames: [] };
    ws.on('message', frameReader((f) => c.frames.push(f)));
    ws.on('error', reject);
    c.write = (cmd, h, body = '') => ws.send(stompFrame(cmd, h, body));
    ws.on('open', () => {
      c.write('CONNECT', Object.assign({ 'accept-version': '1.2', host: 'parley', login }, passcode !== undefined ? { passcode } : {}));
      resolve(c);
    });
  });
}

module.exports = { frameReader, stompFrame, stompTcp, stompWs, wsFrame };
