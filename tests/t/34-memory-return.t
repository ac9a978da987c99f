#!/usr/bin/env node
'use strict';
// Memory goes back to the kernel after a burst.  10 STOMP subscribers stop
// reading while 15,000 messages are published to their room, so the server
// queues tens of megabytes of output; then they read everything.  Within a few
// seconds of the burst the server's RSS must be back near what it was
// before it (parleyd keeps freed heap pages in the process while it is
// busy, to avoid a brk(2) and page faults per turn, and gives them back in
// its once-a-second trim pass).  The subscribers resume one after another,
// so the last backlogs drain after the passes that free the connections'
// own buffers: the pass must also follow an output that emptied.
const fs = require('fs');
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { stompTcp } = require('../lib/stomp-raw');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const SUBS = 10;
const MSGS = 15000;
const BODY = 600;	// copied into each connection's output (tails < 1 KiB are not shared)

// A raw STOMP client that counts MESSAGE frames without keeping them,
// subscribed to room when one is given.
async function client(port, login, room) {
  const k = { messages: 0, receipts: new Set(), errors: [] };
  const c = await stompTcp(port, login, {
    keep: false,
    onFrame: (f) => {
      if (f.command === 'MESSAGE' && !f.headers.event) k.messages++;
      else if (f.command === 'RECEIPT') k.receipts.add(f.headers['receipt-id']);
      else if (f.command === 'ERROR') k.errors.push(f);
    },
  });
  Object.assign(k, { sock: c.sock, write: c.write });
  if (room) {
    c.write('SUBSCRIBE', { destination: `/room/${room}`, id: 's', receipt: 'sub' });
    await c.wait(() => k.receipts.has('sub'), 5000, `${login}'s SUBSCRIBE receipt`);
  }
  return k;
}

async function until(pred, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (pred()) return true;
  return pred();
}

t.run(async () => {
  const srv = await startParley({ ini: { server: { max_outbound: "32m" }, limits: { msg_rate: 0, byte_rate: 0, ip_max_connections: 0, ip_connect_rate: 0 } } });
  servers.push(srv);
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);

  const subs = await Promise.all(Array.from({ length: SUBS }, (_, i) => client(srv.stompPort, `sub${i}`, 'burst')));
  const pub = await client(srv.stompPort, 'publisher', null);
  await sleep(2500);		// presence settles; the trim pass runs
  const before = kb('VmRSS');

  for (const s of subs) s.sock.pause();
  const body = 'm'.repeat(BODY);
  for (let i = 0; i < MSGS; i++) pub.write('SEND', { destination: '/room/burst', receipt: `r${i}` }, body);
  t.ok(await until(() => pub.receipts.has(`r${MSGS - 1}`), 20000), `${MSGS} messages published and stored`);
  await sleep(300);
  const peak = kb('VmRSS');
  const queued = (peak - before) / 1024;
  t.ok(queued > 16, `the stalled subscribers made the server hold ${queued.toFixed(1)} MiB (> 16 MiB, so the burst is real)`);

  // one subscriber after another, so the backlogs drain over a few
  // seconds, after the trim passes that free the connections' own buffers
  // (a server that gave pages back only then kept most of the burst)
  for (const s of subs) { s.sock.resume(); await sleep(400); }
  t.ok(await until(() => subs.every((s) => s.messages >= MSGS), 30000),
    `all ${SUBS} subscribers received all ${MSGS} messages (${subs.reduce((a, s) => a + s.messages, 0)} of ${SUBS * MSGS})`);
  t.is(subs.reduce((a, s) => a + s.errors.length, 0), 0, 'no ERROR frames');

  await sleep(3000);		// two or three trim passes
  const after = kb('VmRSS');
  const kept = (after - before) / 1024;
  t.ok(kept < Math.max(4, queued / 4),
    `RSS after the burst: ${(after / 1024).toFixed(1)} MiB, ${kept.toFixed(1)} MiB above before it (peak ${(peak / 1024).toFixed(1)} MiB; limit: a quarter of the burst or 4 MiB)`);

  for (const s of subs) s.sock.destroy();
  pub.sock.destroy();
  t.is(await srv.stop(), 0, 'parleyd exits cleanly');
});
