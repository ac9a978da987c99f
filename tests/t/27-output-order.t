#!/usr/bin/env node
'use strict';
// The output path: small frames are copied into a connection's flat buffer,
// large message tails are referenced, and what the socket does not take at
// once waits in the bufferevent.  A subscriber that stops reading while
// messages of every size are published (so all three paths mix on one
// connection), then reads again, must get every message whole and in
// order -- over WebSocket and over plain STOMP/TCP -- and so must a
// subscriber that reads all along.  Each build runs twice: as configured by
// default (these small rooms copy every frame), and with [server]
// gather_min = 1, where every MESSAGE's tail is shared and gathered into
// the send, and what the socket does not take is copied out of the tails
// from wherever the send stopped.  Runs against the normal build and the
// ASan/UBSan build.
const crypto = require('crypto');
const t = require('../lib/tap');
const { startParley, sleep, httpGet, waitFor } = require('../lib/parley');
const { bothBuilds } = require('../lib/asan');
const { stompTcp, stompWs } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

// sizes on both sides of the 1 KiB copy/reference limit, of the 125 and
// 65535-byte WebSocket length forms, and of the first obuf allocation;
// then a burst of small ones
const SIZES = [1, 100, 125, 126, 500, 1023, 1024, 1025, 4000, 65535, 65536, 200000];
const ROUNDS = 12;
const BURST = 400;

function check(name, frames, sent) {
  const got = frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event);
  t.is(got.length, sent.length, `${name}: received all ${sent.length} messages`);
  let bad = -1;
  for (let i = 0; i < sent.length; i++) {
    if (!got[i] || !got[i].body.equals(sent[i])) { bad = i; break; }
  }
  t.is(bad, -1, `${name}: every body byte-identical and in publish order` + (bad >= 0 ? ` (first difference at #${bad}, ${sent[bad].length} bytes)` : ''));
  t.ok(!frames.some((f) => f.command === 'ERROR'), `${name}: no ERROR`);
}

async function run(label, binary, pluginDir, gather) {
  const server = { max_outbound: '64m', max_frame: '1m' };
  if (gather) { server.gather_min = gather; label += `, gather_min ${gather}`; }
  if (pluginDir) server.plugin_dir = pluginDir;
  const srv = await startParley({ binary, ini: { server, limits: { msg_rate: 0, byte_rate: 0 } } });
  servers.push(srv);
  const name0 = label;

  const subs = {
    'stalled WebSocket': await stompWs(srv.ws, 'wsslow'),
    'stalled STOMP/TCP': await stompTcp(srv.stompPort, 'tcpslow'),
    'reading WebSocket': await stompWs(srv.ws, 'wsfast'),
    'reading STOMP/TCP': await stompTcp(srv.stompPort, 'tcpfast'),
  };
  for (const c of Object.values(subs)) {
    await waitFor(() => c.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED');
    c.write('SUBSCRIBE', { destination: '/room/sizes', id: 's', receipt: 'sub' });
    await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT'), 5000, 'SUBSCRIBE receipt');
  }
  subs['stalled WebSocket'].ws._socket.pause();
  subs['stalled STOMP/TCP'].sock.pause();

  const pub = await stompTcp(srv.stompPort, 'pub');
  await waitFor(() => pub.frames.some((f) => f.command === 'CONNECTED'), 5000, 'publisher CONNECTED');
  const sent = [];
  for (let r = 0; r < ROUNDS; r++) {
    // a different order each round, so every size follows every other
    const order = SIZES.slice(r % SIZES.length).concat(SIZES.slice(0, r % SIZES.length));
    for (const n of order) {
      const body = crypto.randomBytes(n);
      for (let i = 0; i < n; i++) if (body[i] === 0) body[i] = 1;	// text-safe for the NUL-less check
      sent.push(body);
      pub.write('SEND', { destination: '/room/sizes', 'content-type': 'application/octet-stream', 'content-length': n, receipt: `p${sent.length}` }, body);
    }
  }
  // a burst of small frames (tails under the 1 KiB reference limit, so
  // all copied), pipelined; replayed below in one loop turn, they pass
  // the flat buffer's 64 KiB and spill into pend
  const roundsLast = `p${sent.length}`;
  await waitFor(() => pub.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === roundsLast), 30000, 'receipts of the rounds');
  pub.sock.cork();
  for (let i = 0; i < BURST; i++) {
    const body = Buffer.from(`burst ${i} `.padEnd([1, 100, 300, 600][i % 4], 'b'));
    sent.push(body);
    pub.write('SEND', { destination: '/room/sizes', 'content-length': body.length, receipt: `p${sent.length}` }, body);
  }
  pub.sock.uncork();
  const last = `p${sent.length}`;
  await waitFor(() => pub.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === last), 30000, 'publisher receipts');
  t.ok(!pub.frames.some((f) => f.command === 'ERROR'), `${name0}: published ${sent.length} messages of ${SIZES.length} sizes (${(sent.reduce((a, b) => a + b.length, 0) / 1048576).toFixed(1)} MiB)`);

  await sleep(300);
  subs['stalled WebSocket'].ws._socket.resume();
  subs['stalled STOMP/TCP'].sock.resume();
  for (const [name, c] of Object.entries(subs)) {
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event).length >= sent.length, 30000, name).catch(() => {});
    check(`${name0}, ${name}`, c.frames, sent);
  }

  // after the backlog the direct path is used again: a small message now
  // still arrives after everything else
  pub.write('SEND', { destination: '/room/sizes', receipt: 'tail' }, 'tail');
  sent.push(Buffer.from('tail'));
  for (const [name, c] of Object.entries(subs)) {
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event).length >= sent.length, 5000, name).catch(() => {});
    const got = c.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event);
    t.is(got.length && got[got.length - 1].body.toString(), 'tail', `${name0}, ${name}: a later small message comes last`);
  }
  // resuming from the start replays everything in one go: hundreds of
  // copied frames and referenced tails in a few loop turns (the spill past
  // the flat buffer's 64 KiB, and its return to a small buffer after)
  const resumers = {
    'resuming WebSocket': await stompWs(srv.ws, 'wsresume'),
    'resuming STOMP/TCP': await stompTcp(srv.stompPort, 'tcpresume'),
  };
  for (const [name, c] of Object.entries(resumers)) {
    await waitFor(() => c.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED');
    c.write('SUBSCRIBE', { destination: '/room/sizes', id: 'r', since: '0', receipt: 'resume' });
    await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT'), 30000, `${name} replay`).catch(() => {});
    const marker = c.frames.find((f) => f.headers.event === 'resumed');
    t.is(marker && marker.headers.recovered, 'true', `${name0}, ${name}: replay complete (recovered:true)`);
    check(`${name0}, ${name}`, c.frames, sent);
    subs[name] = c;
  }

  // small frames only (tails under the 1 KiB reference limit), pipelined,
  // to a subscriber that stops reading: the first send the socket does not
  // take whole stops somewhere inside the turn's queue (with gather_min,
  // inside a gathered tail), and the rest is copied on from there
  const small = { slow: await stompTcp(srv.stompPort, 'smallslow'), fast: await stompWs(srv.ws, 'smallfast') };
  await waitFor(() => small.fast.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED');
  for (const c of Object.values(small)) {
    c.write('SUBSCRIBE', { destination: '/room/small', id: 'm', receipt: 'sm' });
    await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT'), 5000, 'SUBSCRIBE receipt');
  }
  small.slow.sock.pause();
  const sentSmall = [];
  let queued = 0;
  for (let b = 0; b < 40 && queued === 0; b++) {
    pub.sock.cork();
    for (let i = 0; i < 500; i++) {
      const n = sentSmall.length;
      const body = Buffer.from(`small ${n} `.padEnd(300 + (n * 7) % 500, String.fromCharCode(97 + n % 26)));
      sentSmall.push(body);
      pub.write('SEND', { destination: '/room/small', 'content-length': body.length, receipt: `s${n}` }, body);
    }
    pub.sock.uncork();
    const id = `s${sentSmall.length - 1}`;
    await waitFor(() => pub.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === id), 30000, 'small receipts');
    const m = /^parley_outbound_bytes_max (\d+)/m.exec((await httpGet(srv.http + '/metrics')).body);
    queued = m ? Number(m[1]) : 0;
  }
  t.ok(queued > 0, `${name0}: small frames: the stalled subscriber's socket took no more after ${sentSmall.length} messages (${queued} bytes wait in the server)`);
  small.slow.sock.resume();
  for (const [name, c] of Object.entries(small)) {
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event).length >= sentSmall.length, 30000, name).catch(() => {});
    check(`${name0}, small frames, ${name === 'slow' ? 'stalled STOMP/TCP' : 'reading WebSocket'}`, c.frames, sentSmall);
  }
  for (const c of Object.values(small)) { if (c.ws) c.ws.terminate(); else c.sock.destroy(); }

  for (const c of Object.values(subs)) { if (c.ws) c.ws.terminate(); else c.sock.destroy(); }
  pub.sock.destroy();
  t.is(await srv.stop(), 0, `${name0}: clean stop` + (srv.exited && srv.exited.code ? `\n${srv.log()}` : ''));
}

t.run(async () => {
  await bothBuilds(t, async (label, binary, pluginDir) => {
    await run(label, binary, pluginDir);
    await run(label, binary, pluginDir, 1);
  });
});
