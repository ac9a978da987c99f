#!/usr/bin/env node
'use strict';
// A big room's fan-out writes each subscriber as soon as its frames are
// queued (src/broker.c fan_out, src/conn.c conn_flush_now), while they are
// in the cache.  That must not make a quiet room or a receipt wait behind
// the big room's thousand sends: in a loop turn the small rooms go first,
// then what little other connections queued (receipts), then the big
// rooms.  One client writes two SENDs at once, the first to a room of
// 1,200 subscribers, the second (with a receipt) to a room of one; parleyd
// reads, publishes and fans both out in the same turn.  The small room's
// subscriber and the receipt must come before most of the big room's
// deliveries -- a server that takes the rooms in the order they were
// published has them come after all 1,200.  Order of arrival at this
// process only (node reads ready sockets in the order they became ready),
// 8 rounds, the median rank.  Runs against the normal build and the
// ASan/UBSan build.
const t = require('../lib/tap');
const { startParley, waitFor } = require('../lib/parley');
const { bothBuilds } = require('../lib/asan');
const { stompTcp } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const MEMBERS = 1200;
const ROUNDS = 8;

const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function run(label, binary, pluginDir) {
  const server = { max_outbound: '64m', presence_max: 1 };
  if (pluginDir) server.plugin_dir = pluginDir;
  const srv = await startParley({ binary, ini: { server, limits: { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 } } });
  servers.push(srv);

  // arrival order: one counter for every frame this process gets
  let seq = 0;
  const members = [];
  for (let i = 0; i < MEMBERS; i += 100) {
    const batch = [];
    for (let k = i; k < Math.min(MEMBERS, i + 100); k++) {
      const m = { got: new Map(), receipt: false };
      batch.push(stompTcp(srv.stompPort, `m${k}`, {
        keep: false,
        ms: 20000,
        onFrame: (f) => {
          if (f.command === 'RECEIPT') m.receipt = true;
          else if (f.command === 'MESSAGE' && !f.headers.event) m.got.set(f.body.toString(), ++seq);
        },
      }).then((c) => { m.c = c; c.write('SUBSCRIBE', { destination: '/room/big', id: 's', receipt: 'sub' }); }));
      members.push(m);
    }
    await Promise.all(batch);
  }
  await waitFor(() => members.every((m) => m.receipt), 60000, 'members subscribed');

  const quiet = { got: new Map(), receipt: false };
  const q = await stompTcp(srv.stompPort, 'quiet', {
    keep: false,
    onFrame: (f) => {
      if (f.command === 'RECEIPT') quiet.receipt = true;
      else if (f.command === 'MESSAGE' && f.headers.event === 'typing') quiet.got.set(f.body.toString(), ++seq);
    },
  });
  q.write('SUBSCRIBE', { destination: '/room/small', id: 'q', receipt: 'sub-q' });
  const pub = { receipts: new Map() };
  const p = await stompTcp(srv.stompPort, 'pub', {
    keep: false,
    onFrame: (f) => { if (f.command === 'RECEIPT') pub.receipts.set(f.headers['receipt-id'], ++seq); },
  });
  await waitFor(() => quiet.receipt, 5000, 'the small room\'s SUBSCRIBE receipt');
  t.ok(true, `${label}: ${MEMBERS} members in the big room, one in the small room`);

  const quietRank = [], receiptRank = [];
  for (let r = 0; r < ROUNDS; r++) {
    // both SENDs in one write: read, published and fanned out in one turn
    p.sock.cork();
    p.write('SEND', { destination: '/room/big', 'content-length': `big-${r}`.length }, `big-${r}`);
    p.write('SEND', { destination: '/room/small', event: 'typing', receipt: `small-${r}`, 'content-length': `small-${r}`.length }, `small-${r}`);
    p.sock.uncork();
    await waitFor(() => members.every((m) => m.got.has(`big-${r}`)) && quiet.got.has(`small-${r}`) &&
      pub.receipts.has(`small-${r}`), 20000, `round ${r}`);
    const big = members.map((m) => m.got.get(`big-${r}`));
    quietRank.push(big.filter((s) => s < quiet.got.get(`small-${r}`)).length);
    receiptRank.push(big.filter((s) => s < pub.receipts.get(`small-${r}`)).length);
  }
  const half = MEMBERS / 2;
  t.ok(median(quietRank) < half, `${label}: the small room's message came before most of the big room's ` +
    `${MEMBERS} deliveries of the same turn (big-room deliveries ahead of it, median of ${ROUNDS}: ${median(quietRank)}; rounds ${quietRank.join(' ')})`);
  t.ok(median(receiptRank) < half, `${label}: so did the receipt ` +
    `(median ${median(receiptRank)}; rounds ${receiptRank.join(' ')})`);

  for (const m of members) m.c.sock.destroy();
  q.sock.destroy();
  p.sock.destroy();
  t.is(await srv.stop(), 0, `${label}: clean stop` + (srv.exited && srv.exited.code ? `\n${srv.log()}` : ''));
}

t.run(() => bothBuilds(t, run));
