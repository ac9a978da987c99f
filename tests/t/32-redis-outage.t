#!/usr/bin/env node
'use strict';
// Redis goes away under two parleyd instances (redis backplane) and comes
// back: /readyz says 503 with the reason, a SEND gets an ERROR (never a
// RECEIPT) and a REST post a 503, nothing sent during the outage shows up
// later; once redis-server is back (same data, AOF) both instances are
// ready again on their own and clients on A and B chat again, including
// the ones that stayed connected through the outage.
const t = require('../lib/tap');
const { startParley, sleep, httpGet, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { startRedis } = require('../lib/svc-redis');

const ROOM = 'ops';

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

async function readyz(srv) {
  try { return await httpGet(`${srv.http}/readyz`); } catch (e) { return { status: 0, body: String(e) }; }
}

const chat = (c) => c.received.filter((m) => !m.headers.event);

// SEND with a receipt; resolves to { receipt } or { error } (the ERROR frame).
function trySend(c, room, body) {
  return new Promise((resolve) => {
    const receipt = 'r' + Math.random().toString(36).slice(2);
    const t0 = setTimeout(() => resolve({ timeout: true }), 10000);
    c.client.watchForReceipt(receipt, (f) => { clearTimeout(t0); resolve({ receipt: f }); });
    c.client.onStompError = (f) => { clearTimeout(t0); c.errors.push(f); resolve({ error: f, receiptAsked: receipt }); };
    c.client.publish({ destination: `/room/${room}`, body, headers: { receipt } });
  });
}

t.run(async () => {
  const redis = await startRedis();
  const servers = [];
  const clients = [];
  try {
    const ini = (id) => ({
      server: { instance_id: id },
      backplane: { plugin: 'redis' },
      // a unix socket for one instance, TCP for the other
      redis: { url: id === 'a' ? `unix://${redis.socket}?db=0` : redis.url, reconnect_max_ms: 500 },
    });
    const A = await startParley({ ini: ini('a') });
    servers.push(A);
    const B = await startParley({ ini: ini('b') });
    servers.push(B);
    await waitFor(async () => (await readyz(A)).status === 200 && (await readyz(B)).status === 200, 10000, 'ready');
    t.ok(true, 'A (unix socket) and B (TCP) are ready');

    const alice = await connectWs(A, { login: 'alice' });
    const bob = await connectWs(B, { login: 'bob' });
    clients.push(alice, bob);
    alice.subscribe(ROOM);
    bob.subscribe(ROOM);
    await sleep(200);
    await alice.send(ROOM, 'before');
    await bob.wait(() => chat(bob).some((m) => m.body === 'before'), 5000, 'bob gets "before"');
    t.ok(true, 'chat works before the outage');

    // --- outage
    await redis.down();
    const down = await waitFor(async () => {
      const r = await readyz(A);
      return r.status === 503 ? r : null;
    }, 5000, '/readyz 503 on A');
    t.is(down.status, 503, '/readyz answers 503 while redis is down');
    t.like(down.body, /redis/, `/readyz names redis as the reason: ${down.body}`);
    await waitFor(async () => (await readyz(B)).status === 503, 5000, '/readyz 503 on B');
    t.ok(true, 'B reports not ready as well');

    const r = await trySend(alice, ROOM, 'during');
    t.ok(r.error && !r.receipt, 'SEND during the outage gets an ERROR, not a RECEIPT');
    if (r.error) {
      t.is(r.error.headers['receipt-id'], r.receiptAsked, 'the ERROR names the receipt of the SEND');
      t.like(r.error.headers.message + ' ' + r.error.body, /not accepted.*redis backplane unavailable/s,
        `the ERROR says why: ${r.error.headers.message}: ${r.error.body}`);
    }
    const post = await httpRequest('POST', `${B.http}/api/v1/rooms/${ROOM}/messages`, { body: 'during-rest' }, basic('bob'));
    t.is(post.status, 503, 'a REST post during the outage gets 503');
    t.like(post.body, /redis/, 'and names redis');

    // --- back
    await sleep(300);
    await redis.up();
    await waitFor(async () => (await readyz(A)).status === 200 && (await readyz(B)).status === 200, 10000, 'ready again');
    t.ok(true, 'both instances are ready again without a restart');
    const alice2 = await connectWs(A, { login: 'alice' });
    clients.push(alice2);
    alice2.subscribe(ROOM);
    await sleep(200);
    const r1 = await alice2.send(ROOM, 'after-a');
    t.ok(/^\d+$/.test(r1.headers.position), 'SEND after the outage gets a RECEIPT');
    await bob.wait(() => chat(bob).some((m) => m.body === 'after-a'), 5000, 'bob (connected through the outage) gets a message from A');
    t.ok(true, 'bob, connected through the outage, receives messages from A again');
    await bob.send(ROOM, 'after-b');
    await alice2.wait(() => chat(alice2).some((m) => m.body === 'after-b'), 5000, 'alice2 gets a message from B');
    t.ok(true, 'messages from B reach A again');
    t.ok(!chat(bob).some((m) => m.body.startsWith('during')), 'nothing refused during the outage was delivered');
    const pos = chat(bob).map((m) => BigInt(m.headers.position));
    t.ok(pos.every((p, i) => i === 0 || p > pos[i - 1]), 'positions kept growing across the outage');

    const h = await httpRequest('GET', `${A.http}/api/v1/rooms/${ROOM}/messages?limit=100`, undefined, basic('alice'));
    const bodies = h.json.messages.map((m) => m.body);
    t.ok(bodies.includes('before') && !bodies.includes('during') && !bodies.includes('during-rest'),
      `history keeps what was RECEIPTed and nothing refused: ${JSON.stringify(bodies)}`);
    const lost = (A.log().match(/command connection lost/g) || []).length;
    t.is(lost, 1, 'A logged the lost command connection once, not once per retry');
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const s of servers) {
      const code = await s.stop();
      if (!t.is(code, 0, 'parleyd exits 0 on SIGTERM')) t.diag(s.log());
    }
    await redis.stop();
  }
});
