#!/usr/bin/env node
'use strict';
// One busy room cannot starve the others.  A publisher pipelines a flood of
// 50,000 SENDs (7 MiB) into a big room in one write; in the same tick
// another client sends one message to a small room.  parleyd reads each
// ready connection once per wakeup, at most 64 KiB (src/conn.c read_more),
// and fans out between reads, so the small room's SEND is read and
// published while the flood is still coming in: its server timestamp falls
// before most of the flood's, and its subscriber gets it before the big
// room's has the whole flood.  What this catches is a server that drains
// one connection before it turns to the others (with read_more looping
// until the socket is empty, this test does not finish); the size of the
// cap it cannot see, since the kernel's receive buffer bounds a read on
// loopback as much.  Order only, no timing: the timestamps are the
// server's own, in the frames.
const t = require('../lib/tap');
const { startParley } = require('../lib/parley');
const { stompFrame, stompTcp } = require('../lib/stomp-raw');

const LIMITS = { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 };
const N = 50000;		// flood messages, 7 MiB of SENDs
const SUBS = 20;		// big room's subscribers

t.run(async () => {
  // subscribers here read as fast as node can: with a flood this big the
  // slow-consumer limit (4 MiB queued) is not what is tested
  const srv = await startParley({ ini: { limits: LIMITS, server: { max_outbound: '64m' } } });
  try {
    // big room: one subscriber keeps what it gets (timestamps), the others
    // only read
    let floodTs = [], subscribed = false;
    const watcher = await stompTcp(srv.stompPort, 'watcher', {
      keep: false,
      // flood messages only, not presence notices (event:join, no body)
      onFrame: (f) => {
        if (f.command === 'MESSAGE' && f.body.length === 100 && !f.headers.event) floodTs.push(Number(f.headers.timestamp));
        if (f.command === 'RECEIPT') subscribed = true;
      },
    });
    const others = [];
    for (let i = 1; i < SUBS; i++) {
      const c = await stompTcp(srv.stompPort, `sub${i}`, { keep: false });
      c.sock.removeAllListeners('data');	// read and drop, no parsing
      c.sock.on('data', () => {});
      others.push(c);
    }
    for (const c of [watcher, ...others]) c.write('SUBSCRIBE', { id: 's', destination: '/room/big' });
    watcher.write('SUBSCRIBE', { id: 'r', destination: '/room/none', receipt: 'subscribed' });
    await watcher.wait(() => subscribed, 10000, 'the watcher\'s subscriptions');
    const small = await stompTcp(srv.stompPort, 'small');
    small.write('SUBSCRIBE', { id: 's', destination: '/room/small', receipt: 'sub-small' });
    await small.wait(() => small.frames.some((f) => f.command === 'RECEIPT'), 10000, 'the small room subscription');
    const pub = await stompTcp(srv.stompPort, 'flooder');
    const pub2 = await stompTcp(srv.stompPort, 'quiet');
    await new Promise((r) => setTimeout(r, 300));	// presence notices settle
    floodTs = [];

    // the flood, in one write, then at once the small room's message
    const body = 'f'.repeat(100);
    const parts = [];
    for (let i = 0; i < N; i++) {
      parts.push(stompFrame('SEND', Object.assign({ destination: '/room/big', 'content-type': 'text/plain' },
        i === N - 1 ? { receipt: 'flood-done' } : {}), body));
    }
    const flood = Buffer.concat(parts);
    pub.sock.write(flood);
    pub2.write('SEND', { destination: '/room/small', 'content-type': 'text/plain', receipt: 'small-done' }, 'hello, small room');

    await small.wait(() => small.frames.some((f) => f.command === 'MESSAGE' && f.body.toString() === 'hello, small room'), 60000, 'the small room\'s message');
    const seenAtSmall = floodTs.length;
    const smallTs = Number(small.frames.find((f) => f.command === 'MESSAGE' && f.body.toString() === 'hello, small room').headers.timestamp);
    await pub.wait(() => pub.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'flood-done'), 120000, 'the flood\'s last receipt');
    await watcher.wait(() => floodTs.length >= N, 120000, 'the whole flood at the watcher');

    t.diag(`flood of ${N} x ${SUBS}: ${(flood.length / 1048576).toFixed(1)} MiB of SENDs; the watcher had ${seenAtSmall} of them when the small room's message arrived`);
    t.is(floodTs.length, N, `the big room's watcher got all ${N} flood messages`);
    const after = floodTs.filter((x) => x > smallTs).length;
    const last = floodTs[floodTs.length - 1];
    t.ok(smallTs < last, `the small room's message was stamped (${smallTs}) before the flood's last one (${last})`);
    t.ok(after >= N / 2, `most of the flood was stamped after it: ${after} of ${N} messages (${last - smallTs} ms of flood after it)`);
    t.ok(seenAtSmall < N, `the small room's subscriber had it before the big room's watcher had the whole flood (${seenAtSmall} of ${N})`);
    for (const c of [watcher, small, pub, pub2, ...others]) c.sock.destroy();
    t.is(await srv.stop(), 0, 'parleyd stops cleanly');
  } finally {
    await srv.stop();
  }
});
