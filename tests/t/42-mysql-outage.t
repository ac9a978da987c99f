#!/usr/bin/env node
'use strict';
// A MariaDB outage loses nothing: parleyd with [storage] plugin = mysql
// keeps chat going live while the database is stopped, says so on /readyz
// and /metrics (parley_storage_backlog > 0), and once the database is back
// writes every message exactly once (REST history and the table itself
// agree).  With the local backplane (not durable) a RECEIPT means "stored",
// so RECEIPTs wait for the database and all arrive once it is back.  Then
// the same with the database crashed (SIGKILL) in the middle of traffic, so
// that a batch dies half way through its transaction.
// Clients: @stomp/stompjs over WebSocket; database: a private MariaDB.
const t = require('../lib/tap');
const { startParley, sleep, httpGet, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { withMariadb } = require('../lib/svc-mariadb');

const ROOM = 'outage';
let db, srv;
const clients = [];
process.on('exit', () => { if (srv && srv.proc && !srv.exited) srv.proc.kill('SIGKILL'); });

async function backlog() {
  const r = await httpGet(`${srv.http}/metrics`);
  const m = /^parley_storage_backlog (\d+)/m.exec(r.body);
  return m ? Number(m[1]) : NaN;
}

async function readyz() {
  const r = await httpGet(`${srv.http}/readyz`);
  let j = {};
  try { j = JSON.parse(r.body); } catch (e) { /* keep {} */ }
  return { status: r.status, body: j };
}

// Poll fn() until pred(value) or ms pass; returns the last value.
async function until(fn, pred, ms) {
  const deadline = Date.now() + ms;
  let v;
  for (;;) {
    v = await fn();
    if (pred(v) || Date.now() > deadline) return v;
    await sleep(100);
  }
}

// Every chat message of the room through REST, paging forward.
async function history() {
  const all = [];
  let after = '0';
  for (let pages = 0; pages < 100; pages++) {
    const r = await httpGet(`${srv.http}/api/v1/rooms/${ROOM}/messages?after=${after}&limit=100`, basic('alice'));
    if (r.status !== 200) throw new Error(`REST history: ${r.status} ${r.body}`);
    const j = JSON.parse(r.body);
    all.push(...j.messages);
    if (!j.has_more || j.messages.length === 0) break;
    after = j.messages[j.messages.length - 1].position;
  }
  return all;
}

// position -> body of the room as the table holds it.
async function tableRows() {
  const out = await db.query(`SELECT position, CAST(body AS CHAR) FROM \`${db.database}\`.messages WHERE room = '${ROOM}' ORDER BY position`);
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

// Every message in sent (with its receipt position) is stored exactly once.
async function checkStored(name, sent) {
  const h = await history();
  const byPos = new Map();
  for (const m of h) byPos.set(m.position, (byPos.get(m.position) || 0) + 1);
  const missing = sent.filter((s) => !byPos.has(s.position));
  const dup = [...byPos.values()].filter((n) => n > 1).length;
  t.ok(missing.length === 0, `${name}: REST history has all ${sent.length} RECEIPTed messages` +
    (missing.length ? ` (missing ${missing.length}: ${missing.slice(0, 5).map((s) => s.body).join(', ')})` : ''));
  t.is(dup, 0, `${name}: REST history has each position once`);
  const rows = await tableRows();
  const rowPos = rows.map((r) => r[0]);
  t.is(new Set(rowPos).size, rowPos.length, `${name}: the messages table has no duplicate position (${rows.length} rows)`);
  const want = new Map(sent.map((s) => [s.position, s.body]));
  const wrong = rows.filter((r) => want.has(r[0]) && want.get(r[0]) !== r[1]);
  const stored = rows.filter((r) => want.has(r[0])).length;
  t.ok(stored === sent.length && wrong.length === 0, `${name}: the table holds each of them once with its body (${stored}/${sent.length}, ${wrong.length} wrong)`);
  const cnt = (await db.query(`SELECT message_count FROM \`${db.database}\`.rooms WHERE name = '${ROOM}'`)).trim();
  t.is(cnt, String(rows.length), `${name}: rooms.message_count agrees with the table`);
}

t.run(() => withMariadb(t, async (d) => {
  db = d;
  try {
    srv = await startParley({
      ini: {
        storage: { plugin: 'mysql' },
        mysql: Object.assign(db.iniKeys(), { connect_timeout_ms: 2000 }),
      },
    });
    const alice = await connectWs(srv, { login: 'alice' });
    const bob = await connectWs(srv, { login: 'bob' });
    clients.push(alice, bob);
    alice.subscribe(ROOM);
    bob.subscribe(ROOM);
    await sleep(200);

    // SEND with a receipt; resolves to { body, position } when it comes.
    const sent = [];
    let seq = 0;
    const post = (body) => new Promise((resolve, reject) => {
      const receipt = `o-${seq++}`;
      const tm = setTimeout(() => reject(new Error(`no RECEIPT for ${body} in 60 s`)), 60000);
      alice.client.watchForReceipt(receipt, (f) => {
        clearTimeout(tm);
        const s = { body, position: f.headers.position, at: Date.now() };
        sent.push(s);
        resolve(s);
      });
      alice.client.publish({ destination: `/room/${ROOM}`, body, headers: { receipt } });
    });
    const send = (body) => post(body);
    for (let i = 0; i < 20; i++) await send(`before-${i}`);
    t.is(sent.length, 20, '20 messages sent and RECEIPTed before the outage');
    t.is(await until(backlog, (n) => n === 0, 10000), 0, 'messages before the outage are written (backlog 0)');
    t.is((await readyz()).status, 200, '/readyz is ready while MariaDB runs');

    // --- outage: MariaDB stopped ---
    await db.down();
    const downAt = Date.now();
    // nobody writes yet: the host's storage probe (ping) notices
    const idle = await until(readyz, (r) => r.status === 503, 10000);
    t.is(idle.status, 503, `/readyz says not ready before anyone writes (${Date.now() - downAt} ms after the stop)`);
    t.like(idle.body.reason, /^mysql: connect .*127\.0\.0\.1/, `... naming the plugin and the server it cannot reach (${idle.body.reason})`);
    const during = [];
    const duringP = [];
    for (let i = 0; i < 50; i++) {
      during.push(`during-${i}`);
      duringP.push(post(`during-${i}`));
      await sleep(2);
    }
    await bob.wait(() => during.every((b) => bob.received.some((m) => m.body === b)), 10000, 'live delivery during the outage');
    t.ok(true, 'bob received all 50 messages live while MariaDB was down');
    const nr = await until(readyz, (r) => r.status === 503, 10000);
    t.is(nr.status, 503, '/readyz still says not ready with messages waiting');
    const bl = await backlog();
    t.ok(bl >= 50, `/metrics shows the 50 unwritten messages: parley_storage_backlog ${bl}`);
    t.ok(nr.body.storage_backlog > 0, `/readyz shows the backlog too (${nr.body.storage_backlog})`);
    t.is(sent.filter((x) => x.body.startsWith('during-')).length, 0, 'no RECEIPT while the messages are not stored');

    // --- MariaDB back ---
    await sleep(1000);
    await db.up();
    const upAt = Date.now();
    const left = await until(backlog, (n) => n === 0, 30000);
    t.is(left, 0, `the backlog drains to 0 once MariaDB is back (${Date.now() - upAt} ms after it accepted connections, ${upAt - downAt} ms outage)`);
    const receipts = await Promise.all(duringP);
    t.ok(receipts.every((r) => r.at >= upAt && /^\d+$/.test(r.position)), 'all 50 RECEIPTs came, after MariaDB was back');
    const rd = await until(readyz, (r) => r.status === 200, 10000);
    t.is(rd.status, 200, '/readyz is ready again');
    await checkStored('after a stop', sent);

    // --- crash in the middle of traffic ---
    const crashP = [];
    let crashed = false;
    const writer = (async () => {
      for (let i = 0; i < 300; i++) {
        crashP.push(post(`crash-${i}`));
        await sleep(4);
      }
    })();
    await until(async () => crashP.length, (n) => n >= 60, 20000);
    await db.down({ signal: 'SIGKILL' });
    crashed = true;
    await sleep(1000);
    await db.up();
    await writer;
    const crashSent = await Promise.all(crashP);
    t.ok(crashed && crashSent.length === 300, 'a writer sent 300 messages while MariaDB was killed and restarted, and got 300 RECEIPTs');
    t.is(await until(backlog, (n) => n === 0, 30000), 0, 'the backlog drains to 0 after the crash');
    await bob.wait(() => crashSent.every((x) => bob.received.some((m) => m.body === x.body)), 10000, 'live delivery during the crash');
    t.ok(true, 'bob received all 300 live');
    await checkStored('after a crash', sent);
    t.like(srv.log(), /backend not ready/, 'parleyd logged the storage outage');

    for (const c of clients) await c.close();
    t.is(await srv.stop(), 0, 'parleyd exits 0 on SIGTERM');
  } finally {
    for (const c of clients) if (!c.closed) await c.close().catch(() => {});
    if (srv) await srv.stop().catch(() => {});
  }
}), { timeoutMs: 180000 });
