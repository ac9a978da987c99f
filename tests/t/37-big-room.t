#!/usr/bin/env node
'use strict';
// A big room's fan-out with [server] gather_min at 1,000 (the default is
// 1,200: this test keeps a thousand connections): from that many
// subscribers on, a MESSAGE's shared tail is not copied into each
// connection's buffer but gathered into the send (sendmsg with an iovec),
// and a room's messages of one loop turn go to each subscriber together.  1,004 subscribers get pipelined bursts of
// messages of many sizes (tails below and above the 1 KiB reference limit)
// from two publishers in two rooms; two of them pause reading meanwhile,
// one is in both rooms, and 300 leave during a later burst.  Every
// subscriber must get every message whole, in position order, with no
// duplicate.  (A send the socket takes only in part, in the middle of a
// gathered tail, is test 27's.)  Runs against the normal build and the
// ASan/UBSan build, where a tail freed before its send is an error.
const crypto = require('crypto');
const t = require('../lib/tap');
const { startParley, sleep, waitFor } = require('../lib/parley');
const { bothBuilds } = require('../lib/asan');
const { stompTcp, stompWs } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const MEMBERS = 1000;		// plain readers, on top of the four watched ones
const BURSTS = 6;
const PER_BURST = 60;

// body sizes: mostly tails under the 1 KiB reference limit (the iovec
// path), some over it (referenced chains), some tiny
function bodySize(i) {
  if (i % 17 === 5) return 1500 + (i % 7) * 300;
  if (i % 11 === 3) return 1 + (i % 3);
  return 20 + ((i * 137) % 760);
}

// messages of one room as a subscriber got them, against what was sent
function check(name, frames, room, sent) {
  const got = frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event && f.headers.destination === `/room/${room}`);
  let bad = -1;
  for (let i = 0; i < sent.length && bad < 0; i++)
    if (!got[i] || !got[i].body.equals(sent[i]) || (i > 0 && !(BigInt(got[i].headers.position) > BigInt(got[i - 1].headers.position)))) bad = i;
  t.ok(got.length === sent.length && bad < 0, `${name}: all ${sent.length} messages of ${room}, whole, in position order` +
    (got.length !== sent.length ? ` (got ${got.length})` : '') + (bad >= 0 ? ` (first difference at #${bad})` : ''));
}

async function run(label, binary, pluginDir) {
  const server = { max_outbound: '64m', presence_max: 1, gather_min: MEMBERS };
  if (pluginDir) server.plugin_dir = pluginDir;
  const srv = await startParley({ binary, ini: { server, limits: { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 } } });
  servers.push(srv);

  // the plain members check each frame as it comes (keeping 300,000
  // frames would only cost memory): index, bytes, and position order
  const sent = { big: [], other: [] };
  const members = [];
  for (let i = 0; i < MEMBERS; i += 100) {
    const batch = [];
    for (let k = i; k < Math.min(MEMBERS, i + 100); k++) {
      const m = { n: 0, bad: 0, last: 0n, receipt: false };
      m.p = stompTcp(srv.stompPort, `m${k}`, {
        keep: false,
        ms: 20000,
        onFrame: (f) => {
          if (f.command === 'RECEIPT') { m.receipt = true; return; }
          if (f.command === 'CONNECTED') return;
          if (f.command !== 'MESSAGE' || f.headers.event) { if (f.command !== 'MESSAGE') m.bad++; return; }
          const pos = BigInt(f.headers.position);	// beyond 2^53
          if (!(pos > m.last) || !sent.big[m.n] || !f.body.equals(sent.big[m.n])) m.bad++;
          m.last = pos;
          m.n++;
        },
      }).then((c) => { m.c = c; c.write('SUBSCRIBE', { destination: '/room/big', id: 's', receipt: 'sub' }); });
      members.push(m);
      batch.push(m.p);
    }
    await Promise.all(batch);
  }
  await waitFor(() => members.every((m) => m.receipt), 60000, 'members subscribed');
  t.ok(true, `${label}: ${MEMBERS} members subscribed to one room`);

  const watched = {
    'stalled WebSocket': await stompWs(srv.ws, 'wsslow'),
    'stalled STOMP/TCP': await stompTcp(srv.stompPort, 'tcpslow'),
    'reading WebSocket': await stompWs(srv.ws, 'wsfast'),
    'reading STOMP/TCP in two rooms': await stompTcp(srv.stompPort, 'tcptwo'),
  };
  for (const [name, c] of Object.entries(watched)) {
    await waitFor(() => c.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED');
    c.write('SUBSCRIBE', { destination: '/room/big', id: 'b', receipt: 'sub-b' });
    if (name.includes('two rooms'))
      c.write('SUBSCRIBE', { destination: '/room/other', id: 'o', receipt: 'sub-o' });
    await waitFor(() => c.frames.filter((f) => f.command === 'RECEIPT').length === (name.includes('two rooms') ? 2 : 1), 5000, 'SUBSCRIBE receipts');
  }
  watched['stalled WebSocket'].ws._socket.pause();
  watched['stalled STOMP/TCP'].sock.pause();

  // two publishers, each a pipelined burst at a time, so a loop turn holds
  // many messages of both rooms
  const pubs = { big: await stompTcp(srv.stompPort, 'pubbig'), other: await stompTcp(srv.stompPort, 'puboth') };
  let n = 0;
  for (let b = 0; b < BURSTS; b++) {
    for (const p of Object.values(pubs)) p.sock.cork();
    for (let i = 0; i < PER_BURST; i++, n++) {
      for (const room of ['big', 'other']) {
        const size = bodySize(n + (room === 'other' ? 5 : 0));
        const body = Buffer.from(crypto.randomBytes(size).map((x) => 33 + (x % 90)));
        sent[room].push(body);
        pubs[room].write('SEND', { destination: `/room/${room}`, 'content-length': size, receipt: `${room}${sent[room].length}` }, body);
      }
    }
    for (const p of Object.values(pubs)) p.sock.uncork();
    for (const [room, p] of Object.entries(pubs)) {
      const id = `${room}${sent[room].length}`;
      await p.wait(() => p.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === id), 60000, `receipt ${id}`);
    }
  }
  t.ok(!Object.values(pubs).some((p) => p.frames.some((f) => f.command === 'ERROR')),
    `${label}: published ${sent.big.length} + ${sent.other.length} messages in ${BURSTS} pipelined bursts`);

  await waitFor(() => members.every((m) => m.n >= sent.big.length), 60000, 'members').catch(() => {});
  const short = members.filter((m) => m.n !== sent.big.length).length;
  const bad = members.filter((m) => m.bad > 0).length;
  t.is(short, 0, `${label}: every member got all ${sent.big.length} messages (${MEMBERS * sent.big.length} deliveries)`);
  t.is(bad, 0, `${label}: every member's messages whole, in order, nothing else`);

  await sleep(200);
  watched['stalled WebSocket'].ws._socket.resume();
  watched['stalled STOMP/TCP'].sock.resume();
  for (const [name, c] of Object.entries(watched)) {
    const rooms = name.includes('two rooms') ? ['big', 'other'] : ['big'];
    const want = rooms.reduce((a, r) => a + sent[r].length, 0);
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE' && !f.headers.event).length >= want, 30000, name).catch(() => {});
    for (const r of rooms) check(`${label}, ${name}`, c.frames, r, sent[r]);
    t.ok(!c.frames.some((f) => f.command === 'ERROR'), `${label}, ${name}: no ERROR`);
  }

  // members leave while a burst is being fanned out (holes in the room's
  // array mid-turn); the rest still get it
  const leaving = members.slice(0, 300);
  const staying = members.slice(300);
  for (const m of staying) { m.n = 0; m.bad = 0; }
  const before = sent.big.length;
  sent.big.length = 0;
  pubs.big.sock.cork();
  for (let i = 0; i < 50; i++) {
    const body = Buffer.from(`after ${i} `.padEnd(bodySize(i), 'x'));
    sent.big.push(body);
    pubs.big.write('SEND', { destination: '/room/big', 'content-length': body.length, receipt: `late${i}` }, body);
  }
  pubs.big.sock.uncork();
  for (const m of leaving) m.c.sock.destroy();
  await pubs.big.wait(() => pubs.big.frames.some((f) => f.headers['receipt-id'] === 'late49'), 30000, 'late receipts');
  await waitFor(() => staying.every((m) => m.n >= sent.big.length), 30000, 'staying members').catch(() => {});
  t.ok(staying.every((m) => m.n === sent.big.length && m.bad === 0),
    `${label}: with ${leaving.length} members leaving mid-burst, the other ${staying.length} get all ${sent.big.length} later messages in order (after ${before})`);

  for (const m of staying) m.c.sock.destroy();
  for (const c of Object.values(watched)) { if (c.ws) c.ws.terminate(); else c.sock.destroy(); }
  for (const p of Object.values(pubs)) p.sock.destroy();
  t.is(await srv.stop(), 0, `${label}: clean stop` + (srv.exited && srv.exited.code ? `\n${srv.log()}` : ''));
}

t.run(() => bothBuilds(t, run));
