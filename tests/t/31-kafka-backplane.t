#!/usr/bin/env node
'use strict';
// Two parleyd instances share a Kafka-protocol cluster (contrib/kafka-mock,
// 3 brokers) through the kafka backplane, each with its own SQLite store:
//  - clients on A and on B chat in one room: both see every message once,
//    in the same order, at the positions their RECEIPTs named;
//  - a record produced twice with the same message id (what a producer
//    retry does) reaches clients once and is stored once;
//  - a client resumes on B with `since` after messages were sent on A: it
//    gets exactly the missed ones, recovered=true, then live ones;
//  - REST history on each instance has every message exactly once;
//  - a broker goes down during traffic and comes back: nothing RECEIPTed is
//    lost, bob on B gets every message once and in order;
//  - B is killed with SIGKILL in the middle of traffic and restarted: every
//    RECEIPTed message ends up exactly once in both stores.
const t = require('../lib/tap');
const { basic, history, httpGet, httpRequest, once, ready, sleep, startParley, waitFor } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { startKafka } = require('../lib/svc-kafka');

const ROOM = 'lobby';

const chat = (c) => c.received.filter((m) => !m.headers.event);

t.run(async () => {
  const kafka = await startKafka({ topic: 'chat', partitions: 4 });
  const servers = [];
  const clients = [];
  try {
    const ini = (id) => ({
      server: { instance_id: id },
      backplane: { plugin: 'kafka' },
      kafka: { brokers: kafka.bootstrap, topic: 'chat', partitions: 4, 'kafka.socket.keepalive.enable': 'true' },
    });
    const A = await startParley({ ini: ini('a') });
    servers.push(A);
    const B = await startParley({ ini: ini('b') });
    servers.push(B);
    await waitFor(async () => await ready(A) && await ready(B), 15000, '/readyz on both');
    t.ok(true, 'both instances report ready with the kafka backplane');

    // --- chat across instances
    const alice = await connectWs(A, { login: 'alice' });
    const bob = await connectWs(B, { login: 'bob' });
    clients.push(alice, bob);
    alice.subscribe(ROOM);
    bob.subscribe(ROOM);
    await sleep(300);
    const sends = [];
    for (let i = 0; i < 10; i++) {
      sends.push(alice.send(ROOM, `a${i}`));
      sends.push(bob.send(ROOM, `b${i}`));
    }
    const receipts = await Promise.all(sends);
    await alice.wait(() => chat(alice).length >= 20, 10000, 'alice sees 20 messages');
    await bob.wait(() => chat(bob).length >= 20, 10000, 'bob sees 20 messages');
    await sleep(200);
    const ids = (c) => chat(c).map((m) => m.headers['message-id']);
    t.is(chat(alice).length, 20, 'alice (on A) got 20 chat messages');
    t.is(chat(bob).length, 20, 'bob (on B) got 20 chat messages');
    t.is(once(ids(alice), 'message'), null, 'no duplicates on A');
    t.deep(ids(bob), ids(alice), 'A and B deliver the same messages in the same order');
    const pos = chat(alice).map((m) => BigInt(m.headers.position));
    t.ok(pos.every((p, i) => i === 0 || p > pos[i - 1]), 'positions only grow');
    const byBody = new Map(chat(bob).map((m) => [m.body, m.headers.position]));
    const recBodies = [];
    for (let i = 0; i < 10; i++) recBodies.push(`a${i}`, `b${i}`);
    t.ok(receipts.every((r, i) => r.headers.position === byBody.get(recBodies[i])),
      'every RECEIPT names the position the message was delivered with');

    // --- a duplicate record (same message id twice, as a retry writes it)
    const d1 = await kafka.produce(ROOM, 'dup-xyz-1', 'mallory', 'produced twice');
    const d2 = await kafka.produce(ROOM, 'dup-xyz-1', 'mallory', 'produced twice');
    t.ok(d2.offset > d1.offset && d2.partition === d1.partition, `the cluster holds the record twice (offsets ${d1.offset}, ${d2.offset})`);
    await alice.send(ROOM, 'after the duplicate');
    await bob.wait(() => chat(bob).some((m) => m.body === 'after the duplicate'), 5000, 'bob gets the next message');
    await alice.wait(() => chat(alice).some((m) => m.body === 'after the duplicate'), 5000, 'alice gets the next message');
    t.is(chat(bob).filter((m) => m.body === 'produced twice').length, 1, 'bob (on B) sees the duplicated record once');
    t.is(chat(alice).filter((m) => m.body === 'produced twice').length, 1, 'alice (on A) sees it once');
    t.is(chat(bob).find((m) => m.body === 'produced twice').headers.position, String(d1.offset + 1),
      'the first copy is the one delivered (position = offset + 1)');

    // --- resume on B after messages were posted on A
    let carol = await connectWs(B, { login: 'carol' });
    carol.subscribe(ROOM);
    await sleep(200);
    const mark = await alice.send(ROOM, 'before carol leaves');
    await carol.wait(() => chat(carol).some((m) => m.body === 'before carol leaves'), 5000, 'carol sees the live message');
    const since = mark.headers.position;
    await carol.close();
    await sleep(100);
    const missed = [];
    for (let i = 0; i < 5; i++) missed.push((await alice.send(ROOM, `missed${i}`)).headers.position);
    carol = await connectWs(B, { login: 'carol' });
    clients.push(carol);
    carol.subscribe(ROOM, { since });
    await carol.wait(() => carol.received.some((m) => m.headers.event === 'resumed'), 10000, 'resumed marker');
    await alice.send(ROOM, 'after resume');
    await carol.wait(() => chat(carol).some((m) => m.body === 'after resume'), 5000, 'live after resume');
    // what was missed comes replayed or (if B had not read it yet) live
    // right after the marker: either way in order, once, nothing skipped
    t.deep(chat(carol).map((m) => m.body),
      ['missed0', 'missed1', 'missed2', 'missed3', 'missed4', 'after resume'],
      'resume on B brings exactly the messages sent on A meanwhile, then live ones');
    const mi = carol.received.findIndex((m) => m.headers.event === 'resumed');
    const resumed = carol.received[mi];
    const replayed = carol.received.slice(0, mi);
    const replayedChat = replayed.filter((m) => !m.headers.event).length;
    t.is(resumed.headers.recovered, 'true', `recovered=true (${replayedChat} of 5 replayed, the rest live)`);
    t.is(resumed.headers.position, replayed.length ? replayed[replayed.length - 1].headers.position : since,
      'the resumed marker carries the last replayed position');
    t.is(once(chat(carol).map((m) => m.headers['message-id']), 'message'), null, 'no duplicate at the seam');

    // --- every message once in each instance's store
    const all = chat(alice).map((m) => m.headers['message-id']);
    for (const c of chat(carol)) if (!all.includes(c.headers['message-id'])) all.push(c.headers['message-id']);
    for (const [name, srv] of [['A', A], ['B', B]]) {
      const h = await waitFor(async () => {
        const l = await history(srv, ROOM);
        return all.every((id) => l.some((m) => m.id === id)) ? l : null;
      }, 10000, `history on ${name}`);
      t.is(once(h.map((m) => m.id), 'id'), null, `history on ${name} has every message exactly once (${h.length})`);
    }

    // --- a broker goes down during traffic
    {
      const got = [];
      let stopped = false;
      const pump = (async () => {
        for (let i = 0; !stopped; i++) {
          got.push((await alice.send(ROOM, `bd${i}`)).headers.position);
          await sleep(10);
        }
      })();
      await sleep(300);
      await kafka.command('down 1');
      await sleep(1000);
      await kafka.command('up 1');
      await sleep(500);
      stopped = true;
      await pump;
      await bob.wait(() => chat(bob).filter((m) => m.body.startsWith('bd')).length >= got.length, 15000, 'bob gets every bd message');
      const seen = chat(bob).filter((m) => m.body.startsWith('bd')).map((m) => m.headers.position);
      t.deep(seen, got, `broker 1 down for 1 s: bob got all ${got.length} RECEIPTed messages, once, in order`);
    }

    // --- SIGKILL B in the middle of traffic, restart it
    const erin = await connectWs(B, { login: 'erin' });
    const receipted = [];
    let stop = false;
    const pump = async (c, prefix) => {
      for (let i = 0; !stop && i < 400; i++) {
        try {
          const r = await c.send(ROOM, `${prefix}${i}`);
          receipted.push(r.headers.position);
        } catch (e) { return; }	// the instance died under the client
        await sleep(5);
      }
    };
    const pa = pump(alice, 'ka');
    const pe = pump(erin, 'ke');
    await sleep(700);
    await B.kill();
    t.ok(true, `B killed with SIGKILL mid-stream (${receipted.length} receipts so far)`);
    await sleep(500);
    await B.restart();
    await waitFor(() => ready(B), 15000, 'B ready again');
    t.ok(true, 'B restarted and ready');
    await sleep(500);
    stop = true;
    await pa;
    await pe;
    t.ok(receipted.length > 50, `traffic went on during the kill (${receipted.length} RECEIPTs)`);
    for (const [name, srv] of [['A', A], ['B', B]]) {
      let h;
      try {
        h = await waitFor(async () => {
          const l = await history(srv, ROOM);
          const have = new Set(l.map((m) => m.position));
          return receipted.every((p) => have.has(p)) ? l : null;
        }, 15000, `every RECEIPTed message in ${name}'s store`);
      } catch (e) {
        const l = await history(srv, ROOM);
        const have = new Set(l.map((m) => m.position));
        t.diag(`missing on ${name}: ${receipted.filter((p) => !have.has(p)).slice(0, 10).join(' ')}`);
        throw e;
      }
      t.ok(true, `every RECEIPTed message is in ${name}'s store`);
      t.is(once(h.map((m) => m.id), 'id'), null, `${name}'s store has each message exactly once (${h.length})`);
      t.is(once(h.map((m) => m.position), 'position'), null, `${name}'s store has each position once`);
    }
    t.ok(!/offset commit failed|commit: /.test(A.log() + B.log()), 'offsets were committed without errors');
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const s of servers) {
      const code = await s.stop();
      if (!t.is(code, 0, 'parleyd exits 0 on SIGTERM')) t.diag(s.log());
    }
    await kafka.stop();
  }
});
