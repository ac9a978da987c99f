#!/usr/bin/env node
'use strict';
// Chat with history in MariaDB: two clients chat through parleyd with
// [storage] plugin = mysql (over the Unix socket), edit and delete (their
// own, and a moderator someone else's), parleyd restarts, and a client that
// resumes with `since` gets exactly the messages after it (no gap, no
// duplicate) from MySQL, then live ones; REST history shows edits and
// tombstones.  Also: create_schema = false on an empty database and a wrong
// password stop start-up with a message that says why.
// Clients: @stomp/stompjs over WebSocket, REST with Node's http.
const t = require('../lib/tap');
const { startParley, sleep, httpGet, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { withMariadb } = require('../lib/svc-mariadb');

const ROOM = 'mod-chat';
const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const chat = (ms) => ms.filter((m) => m.headers.event === undefined);

async function backlogZero(srv, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await httpGet(`${srv.http}/metrics`);
    const m = /^parley_storage_backlog (\d+)/m.exec(r.body);
    if (m && m[1] === '0') return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

async function history(srv, room) {
  const all = [];
  let after = '0';
  for (let pages = 0; pages < 50; pages++) {
    const r = await httpGet(`${srv.http}/api/v1/rooms/${room}/messages?after=${after}&limit=20`, basic('alice'));
    if (r.status !== 200) throw new Error(`REST history: ${r.status} ${r.body}`);
    const j = JSON.parse(r.body);
    all.push(...j.messages);
    if (!j.has_more || j.messages.length === 0) break;
    after = j.messages[j.messages.length - 1].position;
  }
  return all;
}

t.run(() => withMariadb(t, async (db) => {
  try {
    const mysql = { socket: db.socket, user: db.user, password: db.password, database: db.database };
    const srv = await startParley({
      ini: {
        storage: { plugin: 'mysql' },
        mysql,
        rooms: { 'mod-*': 'carol:read+write+moderate, *:read+write' },
      },
    });
    servers.push(srv);
    t.like(srv.log(), /mysql.*connected/, 'parleyd connects to MariaDB over its Unix socket');
    t.is((await httpGet(`${srv.http}/readyz`)).status, 200, '/readyz is ready');

    // --- two clients chat ---
    const alice = await connectWs(srv, { login: 'alice' });
    const bob = await connectWs(srv, { login: 'bob' });
    alice.subscribe(ROOM);
    bob.subscribe(ROOM);
    await sleep(200);
    const sent = [];
    for (let i = 0; i < 15; i++) {
      for (const [c, who] of [[alice, 'alice'], [bob, 'bob']]) {
        const body = i === 7 && who === 'alice' ? 'h\u00e9llo \u{1F44B} \u{1F1EF}\u{1F1F5} from alice' : `${who} says ${i}`;
        const r = await c.send(ROOM, body);
        sent.push({ who, body, position: r.headers.position });
      }
    }
    await alice.wait(() => chat(alice.received).length >= 30, 10000, 'alice sees 30');
    await bob.wait(() => chat(bob.received).length >= 30, 10000, 'bob sees 30');
    t.deep(chat(bob.received).map((m) => m.body), sent.map((s) => s.body), 'both see the 30 messages of both, in order');
    const idOf = (body) => chat(alice.received).find((m) => m.body === body).headers['message-id'];

    // --- edits and deletes ---
    const api = (m, room, id, body, who) => httpRequest(m, `${srv.http}/api/v1/rooms/${room}/messages/${encodeURIComponent(id)}`, body, basic(who));
    let r = await api('PATCH', ROOM, idOf('alice says 2'), { body: 'alice says 2 (edited \u270F\uFE0F)' }, 'alice');
    t.is(r.status, 200, 'alice edits her message (REST PATCH)');
    r = await api('DELETE', ROOM, idOf('bob says 3'), undefined, 'bob');
    t.is(r.status, 200, 'bob deletes his message (REST DELETE)');
    r = await api('DELETE', ROOM, idOf('alice says 4'), undefined, 'carol');
    t.is(r.status, 200, 'carol, a moderator of the room, deletes one of alice\'s');
    r = await api('DELETE', ROOM, idOf('alice says 5'), undefined, 'mallory');
    t.is(r.status, 403, 'mallory may not delete alice\'s message');
    r = await api('PATCH', ROOM, idOf('alice says 6'), { body: 'hijacked' }, 'bob');
    t.is(r.status, 403, 'bob may not edit alice\'s message');
    await bob.wait(() => bob.received.filter((m) => m.headers.event === 'edit' || m.headers.event === 'delete').length >= 3, 5000, 'edit/delete events');
    t.ok(true, 'the edit and the deletes are broadcast as events');
    t.ok(await backlogZero(srv), 'everything is written to MariaDB (backlog 0)');

    const rows = (await db.query(`SELECT COUNT(*), SUM(deleted), SUM(edited_ms > 0) FROM \`${db.database}\`.messages WHERE room = '${ROOM}'`)).trim().split('\t');
    t.deep(rows, ['30', '2', '1'], 'the messages table holds 30 rows, 2 tombstones, 1 edited (edits and deletes keep no row of their own)');

    const midPos = sent[19].position;
    await alice.close();
    await bob.close();

    // --- restart, resume from MySQL ---
    await srv.restart();
    t.like(srv.log(), /mysql.*connected/, 'parleyd restarts on the same database');
    const bob2 = await connectWs(srv, { login: 'bob' });
    const resumed = new Promise((resolve) => bob2.client.watchForReceipt('resume-1', resolve));
    bob2.subscribe(ROOM, { since: midPos, receipt: 'resume-1' });
    await bob2.wait(() => bob2.received.some((m) => m.headers.event === 'resumed'), 10000, 'resumed marker');
    const rr = await resumed;
    t.is(rr.headers.recovered, 'true', 'the RECEIPT of the resuming SUBSCRIBE says recovered:true');
    const marker = bob2.received.find((m) => m.headers.event === 'resumed');
    const replayed = chat(bob2.received.slice(0, bob2.received.indexOf(marker)));
    const want = sent.filter((s) => BigInt(s.position) > BigInt(midPos));
    t.deep(replayed.map((m) => m.headers.position), want.map((s) => s.position),
      `since ${midPos} replays the ${want.length} later messages from MySQL in order, once each`);
    t.is(marker.headers.recovered, 'true', 'the resumed marker says recovered:true');
    t.is(marker.headers.position, sent[sent.length - 1].position, 'the marker carries the last replayed position');
    const alice2 = await connectWs(srv, { login: 'alice' });
    const live = await alice2.send(ROOM, 'after the restart');
    await bob2.wait(() => bob2.received.some((m) => m.body === 'after the restart'), 5000, 'live after resume');
    const after = chat(bob2.received.slice(bob2.received.indexOf(marker) + 1));
    t.deep(after.map((m) => m.body), ['after the restart'], 'then live messages follow, no duplicate at the seam');
    t.ok(BigInt(live.headers.position) > BigInt(sent[sent.length - 1].position), 'positions keep growing across the restart');

    const hist = await connectWs(srv, { login: 'carol' });
    hist.subscribe(ROOM, { history: '5' });
    await hist.wait(() => hist.received.some((m) => m.headers.event === 'resumed'), 5000, 'history marker');
    const h5 = chat(hist.received.slice(0, hist.received.findIndex((m) => m.headers.event === 'resumed')));
    t.deep(h5.map((m) => m.body), sent.slice(-4).map((s) => s.body).concat(['after the restart']), 'history:5 gives the last 5 messages');

    // --- REST history from MySQL after the restart ---
    t.ok(await backlogZero(srv), 'the live message is written too');
    const h = await history(srv, ROOM);
    t.is(h.length, 31, 'REST history pages forward through all 31 messages');
    t.deep(h.map((m) => m.position), sent.map((s) => s.position).concat([live.headers.position]), '... in order, each once, at their positions');
    const by = (body) => h.find((m) => m.position === sent.find((s) => s.body === body).position);
    const e = by('alice says 2');
    t.ok(e.body === 'alice says 2 (edited \u270F\uFE0F)' && e.edited > 0, 'the edited message has its new body and its edit time');
    t.ok(by('bob says 3').deleted === true && by('bob says 3').body === '', 'bob\'s deleted message is a tombstone');
    t.ok(by('alice says 4').deleted === true, 'the moderator\'s delete is stored');
    t.is(by('alice says 6').body, 'alice says 6', 'the refused edit changed nothing');
    t.ok(h.some((m) => m.body === 'h\u00e9llo \u{1F44B} \u{1F1EF}\u{1F1F5} from alice'), 'emoji round-trip through MySQL');
    const rget = await httpGet(`${srv.http}/api/v1/rooms/${ROOM}`, basic('alice'));
    const ri = rget.status === 200 ? JSON.parse(rget.body) : {};
    t.ok(rget.status === 200 && String(ri.message_count) === '31', `the room lists 31 messages (${rget.body})`);
    for (const c of [bob2, alice2, hist]) await c.close();
    t.is(await srv.stop(), 0, 'parleyd exits 0');

    // --- start-up refusals ---
    await db.query(`CREATE DATABASE parley_empty; GRANT ALL ON parley_empty.* TO '${db.user}'@'127.0.0.1';`);
    let err = '';
    try {
      const s2 = await startParley({ ini: { storage: { plugin: 'mysql' },
        mysql: Object.assign(db.iniKeys(), { database: 'parley_empty', create_schema: 'false' }) } });
      servers.push(s2);
      await s2.stop();
    } catch (x) { err = x.message; }
    t.like(err, /exited[\s\S]*create_schema = false/, 'create_schema = false on a database without the schema: parleyd does not start and says why');
    t.is((await db.query('SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = \'parley_empty\'')).trim(), '0', '... and creates nothing');
    err = '';
    try {
      const s3 = await startParley({ ini: { storage: { plugin: 'mysql' },
        mysql: Object.assign(db.iniKeys(), { password: 'wrong' }) } });
      servers.push(s3);
      await s3.stop();
    } catch (x) { err = x.message; }
    t.like(err, /exited[\s\S]*Access denied/, 'a wrong password: parleyd does not start and says why');
    t.ok(!/wrong/.test(err.split('\n').filter((l) => /mysql/.test(l)).join('\n')), '... without printing the password');
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
  }
}), { timeoutMs: 120000 });
