#!/usr/bin/env node
'use strict';
// Heart-beating, both ways ([server] heartbeat_ms = 300 here):
// - negotiation: CONNECTED heart-beat is max(ours, theirs) per direction,
//   0 where either side says 0;
// - the server sends EOLs at the negotiated interval;
// - a client that promised heart-beats and stays silent is dropped after
//   the interval plus tolerance (and not before), and the log says why;
// - a client that does send heart-beats (stompjs over WebSocket, raw TCP)
//   stays connected.
const net = require('net');
const WebSocket = require('ws');
const t = require('../lib/tap');
const { startParley, sleep, httpGet } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });
// resolves to null after ms without keeping the process alive (for races)
const later = (ms) => new Promise((r) => setTimeout(() => r(null), ms).unref());

const HB = 300;		// [server] heartbeat_ms
const TOL = 50;		// [server] heartbeat_tolerance_pct

// A raw STOMP connection that counts heart-beat EOLs between frames.
function rawConnect(port, headers) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const c = { sock, frames: [], eols: [], closed: false, buf: '' };
    c.closedP = new Promise((res) => sock.on('close', () => { c.closed = true; c.closedAt = Date.now(); res(); }));
    sock.on('error', () => {});
    sock.on('data', (d) => {
      c.buf += d.toString('latin1');
      for (;;) {
        const m = /^(\r?\n)+/.exec(c.buf);
        if (m) { for (let i = 0; i < m[0].split('\n').length - 1; i++) c.eols.push(Date.now()); c.buf = c.buf.slice(m[0].length); }
        const z = c.buf.indexOf('\0');
        if (z === -1) break;
        const text = c.buf.slice(0, z);
        c.buf = c.buf.slice(z + 1);
        const [head] = text.split('\n\n');
        const lines = head.split('\n');
        const f = { command: lines.shift(), headers: {} };
        for (const l of lines) { const i = l.indexOf(':'); if (!(l.slice(0, i) in f.headers)) f.headers[l.slice(0, i)] = l.slice(i + 1); }
        c.frames.push(f);
        if (f.command === 'CONNECTED') { c.connectedAt = Date.now(); resolve(c); }
        if (f.command === 'ERROR') reject(new Error('ERROR ' + f.headers.message));
      }
    });
    sock.on('connect', () => {
      let s = 'CONNECT\n';
      for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
      sock.write(s + '\n\0');
    });
    setTimeout(() => reject(new Error('no CONNECTED')), 5000).unref();
  });
}
const hb = (cx, cy) => ({ 'accept-version': '1.2', host: 'parley', login: 'hb', 'heart-beat': `${cx},${cy}` });

t.run(async () => {
  const srv = await startParley({ ini: { server: { heartbeat_ms: HB, heartbeat_tolerance_pct: TOL } } });
  servers.push(srv);

  // ---------------------------------------------- negotiation
  for (const [cx, cy, want] of [[0, 0, '0,0'], [0, 100, `${HB},0`], [0, 1000, '1000,0'], [100, 0, `0,${HB}`],
    [1000, 0, '0,1000'], [1000, 100, `${HB},1000`]]) {
    const c = await rawConnect(srv.stompPort, hb(cx, cy));
    t.is(c.frames[0].headers['heart-beat'], want, `CONNECT heart-beat:${cx},${cy} -> CONNECTED heart-beat:${want}`);
    c.sock.destroy();
  }
  const v10 = await rawConnect(srv.stompPort, { login: 'old' });
  t.is(v10.frames[0].headers['heart-beat'], undefined, 'STOMP 1.0 (no accept-version): no heart-beat header');
  v10.sock.destroy();

  // ---------------------------------------------- server sends heart-beats
  // client: "I send none, send me one every 100 ms" -> every 300 ms
  const rx = await rawConnect(srv.stompPort, hb(0, 100));
  await sleep(2000);
  const n = rx.eols.length;
  t.ok(n >= 4 && n <= 10, `server sent ${n} heart-beats in 2 s at a ${HB} ms interval (want 4..10)`);
  const gaps = rx.eols.slice(1).map((x, i) => x - rx.eols[i]);
  t.ok(gaps.length > 0 && Math.max(...gaps) <= HB + 100, `no gap between server heart-beats over the promised ${HB} ms + 100 ms jitter (max ${Math.max(...gaps)})`);
  t.ok(!rx.closed, 'a client that asked for no heart-beats from itself is not dropped');
  rx.sock.destroy();

  const none = await rawConnect(srv.stompPort, hb(0, 0));
  await sleep(1000);
  t.is(none.eols.length, 0, 'heart-beat:0,0 -> the server sends no heart-beats');
  t.ok(!none.closed, 'and does not drop the silent client');
  none.sock.destroy();

  // ---------------------------------------------- silent client is dropped
  // client: "I send one every 100 ms" (-> 300 ms), then never does
  const silent = await rawConnect(srv.stompPort, hb(100, 0));
  await Promise.race([silent.closedP, later(5000)]);
  const after = silent.closed ? silent.closedAt - silent.connectedAt : null;
  t.ok(silent.closed, 'a silent client that promised heart-beats is disconnected');
  t.ok(after !== null && after >= HB, `not before the interval (${after} ms >= ${HB} ms)`);
  t.ok(after !== null && after <= HB * (100 + TOL) / 100 + 600, `soon after interval + tolerance (${after} ms <= ${HB * (100 + TOL) / 100 + 600} ms)`);
  t.like(srv.log(), /no heart-beat from hb/, 'the log names the client and the reason');

  // a client that sends EOLs is kept
  const live = await rawConnect(srv.stompPort, hb(100, 0));
  const iv = setInterval(() => live.sock.write('\n'), 150);
  await sleep(1500);
  clearInterval(iv);
  t.ok(!live.closed, 'a client that sends heart-beats every 150 ms stays connected for 1.5 s');
  await Promise.race([live.closedP, later(3000)]);
  t.ok(live.closed, 'and is dropped once it stops');

  // frames count as heart-beats too
  const chatty = await rawConnect(srv.stompPort, hb(100, 0));
  const iv2 = setInterval(() => chatty.sock.write('SEND\ndestination:/room/hb\n\nping\0'), 150);
  await sleep(1200);
  clearInterval(iv2);
  t.ok(!chatty.closed, 'any frame counts as activity (SEND every 150 ms keeps the connection)');
  chatty.sock.destroy();

  // ---------------------------------------------- WebSocket
  // @stomp/stompjs with heart-beats both ways: it checks ours, we check its
  const sj = await connectWs(srv, { login: 'stompjs', heartbeat: 200 });
  let dropped = false;
  sj.client.onWebSocketClose = () => { dropped = true; };
  await sleep(2000);
  t.ok(!dropped && sj.client.connected, '@stomp/stompjs with 200 ms heart-beats both ways stays connected for 2 s');
  const got = [];
  sj.subscribe('hb', {}, (m) => got.push(m.body));
  await sleep(100);
  await sj.send('hb', 'still alive');
  await sj.wait(() => got.includes('still alive'), 3000, 'message after heart-beats');
  t.ok(true, 'and still chats');
  await sj.close();

  // a raw WebSocket client that promises heart-beats and stays silent
  const ws = new WebSocket(srv.ws, ['v12.stomp']);
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve({ code, at: Date.now() })));
  ws.on('error', () => {});
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  let wsConnectedAt = 0;
  ws.on('message', (d) => { if (String(d).startsWith('CONNECTED')) wsConnectedAt = Date.now(); });
  ws.send('CONNECT\naccept-version:1.2\nhost:parley\nlogin:wsilent\nheart-beat:100,0\n\n\0');
  const cl = await Promise.race([closed, later(5000)]);
  t.ok(cl !== null, 'a silent WebSocket client is disconnected too');
  t.ok(cl && cl.code >= 1000 && cl.code !== 1006, `with a close frame (code ${cl && cl.code})`);
  t.ok(cl && wsConnectedAt && cl.at - wsConnectedAt >= HB, `not before the interval (${cl && cl.at - wsConnectedAt} ms)`);

  // metrics count the drops
  const m = await httpGet(`${srv.http}/metrics`);
  const hbErr = /parley_errors_total\{kind="heartbeat"\} (\d+)/.exec(m.body);
  t.ok(hbErr && Number(hbErr[1]) >= 3, `/metrics counts heart-beat drops (${hbErr && hbErr[1]})`);

  t.is(await srv.stop(), 0, 'clean stop');
});
