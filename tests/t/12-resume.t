#!/usr/bin/env node
'use strict';
// Resume: SUBSCRIBE with `since:<position>` while another client keeps
// posting gets every message after the position exactly once, in order,
// then one MESSAGE event:resumed (recovered:true, position = last replayed),
// then live messages -- no gap and no duplicate at the seam.  `history:<n>`
// gives the last n.  Too far behind for resume_max: recovered:false, said
// out loud.  After a restart the same works from SQLite history.
// Clients: @stomp/stompjs over WebSocket.
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });
// resolves to null after ms without keeping the process alive (for races)
const later = (ms) => new Promise((r) => setTimeout(() => r(null), ms).unref());

const ROOM = 'resume';
const RESUME_MAX = 1000;

// chat messages only (join/leave/typing events carry an `event` header)
const chat = (ms) => ms.filter((m) => m.headers.event === undefined);
const pos = (m) => BigInt(m.headers.position);

function receiptOf(c, id, ms = 10000) {
  return new Promise((resolve, reject) => {
    const tm = setTimeout(() => reject(new Error(`no RECEIPT ${id}`)), ms);
    c.client.watchForReceipt(id, (f) => { clearTimeout(tm); resolve(f); });
  });
}

// Check what one resuming subscriber saw against what the writer sent.
// sent: [{ body, position }] in send order (positions from receipts).
function checkResume(name, c, since, sent, { recovered = 'true' } = {}) {
  const ms = c.received;
  const markers = ms.filter((m) => m.headers.event === 'resumed');
  t.is(markers.length, 1, `${name}: exactly one event:resumed`);
  const mk = markers[0] || { headers: {} };
  t.is(mk.headers.recovered, recovered, `${name}: resumed marker says recovered=${recovered}`);
  const got = chat(ms).map(pos);
  const want = sent.map((s) => BigInt(s.position)).filter((p) => p > since);
  let inOrder = true;
  for (let i = 1; i < got.length; i++) if (got[i] <= got[i - 1]) inOrder = false;
  t.ok(inOrder, `${name}: positions strictly increase (no duplicate, in order)`);
  const gotSet = new Set(got.map(String));
  const missing = want.filter((p) => !gotSet.has(String(p)));
  const extra = got.filter((p) => p <= since || !want.some((w) => w === p));
  t.ok(missing.length === 0, `${name}: no gap: all ${want.length} messages after ${since} arrived` +
    (missing.length ? ` (missing ${missing.slice(0, 10).join(',')}${missing.length > 10 ? '...' : ''})` : ''));
  t.ok(extra.length === 0, `${name}: nothing at or before ${since}, nothing unknown` + (extra.length ? ` (extra ${extra.slice(0, 10).join(',')})` : ''));
  // the seam: replayed messages come before the marker, live ones after
  const idx = ms.indexOf(mk);
  const before = chat(ms.slice(0, idx)).map(pos);
  const after = chat(ms.slice(idx + 1)).map(pos);
  const mpos = mk.headers.position !== undefined ? BigInt(mk.headers.position) : -1n;
  t.ok(before.every((p) => p <= mpos) && after.every((p) => p > mpos),
    `${name}: marker position ${mpos} is the last replayed one (${before.length} replayed before it, ${after.length} live after it)`);
  if (before.length) t.is(String(before[before.length - 1]), String(mpos), `${name}: marker position equals the last replayed message`);
  // the body of every message matches the writer's
  const byPos = new Map(sent.map((s) => [s.position, s.body]));
  t.ok(chat(ms).every((m) => byPos.get(m.headers.position) === m.body), `${name}: bodies match the positions`);
  return { before: before.length, after: after.length };
}

t.run(async () => {
  const srv = await startParley({ ini: { server: { resume_max: RESUME_MAX, history_max: 500 }, limits: { msg_rate: 0, byte_rate: 0 } } });
  servers.push(srv);
  const writer = await connectWs(srv, { login: 'wendy' });
  const sent = [];
  const post = async (body) => {
    const r = await writer.send(ROOM, body);
    sent.push({ body, position: r.headers.position });
  };

  // a reader sees the first 50, remembers the 30th, goes away
  const bob = await connectWs(srv, { login: 'bob' });
  bob.subscribe(ROOM);
  await sleep(100);
  for (let i = 0; i < 50; i++) await post(`m${i}`);
  await bob.wait(() => chat(bob.received).length >= 50, 10000, 'bob sees 50 messages');
  const seen = chat(bob.received);
  t.is(seen.length, 50, 'live subscriber received 50 messages');
  t.ok(seen.every((m, i) => m.body === `m${i}`), 'live delivery is in send order');
  await bob.close();

  // the writer keeps posting (pipelined: receipts are not awaited, so
  // messages arrive while a replay is being read and sent) while several
  // clients resume at different moments from different positions
  const watcher = await connectWs(srv, { login: 'wally' });
  watcher.subscribe(ROOM);
  await sleep(100);
  let posting = true;
  const N2 = 1200, NRES = 8;
  const pending = [];
  const writing = (async () => {
    for (let i = 50; i < 50 + N2; i += 4) {
      for (let k = i; k < i + 4; k++) pending.push(writer.send(ROOM, `m${k}`).then((r) => ({ body: `m${k}`, position: r.headers.position })));
      await sleep(2);
    }
    for (const b of await Promise.all(pending)) sent.push(b);
    posting = false;
  })();
  const resumers = [];
  for (let k = 0; k < NRES; k++) {
    await sleep(60);
    // a position some 100-300 messages back from what is live now
    const w = chat(watcher.received);
    const since = BigInt(w[Math.max(0, w.length - 100 - k * 25)].headers.position);
    const c = await connectWs(srv, { login: `res${k}` });
    const rc = receiptOf(c, `resume-${k}`);
    const midPosting = posting;
    c.subscribe(ROOM, { since: String(since), receipt: `resume-${k}` });
    resumers.push({ c, since, rc, midPosting });
  }
  await writing;
  const last = sent[sent.length - 1].position;
  for (const r of resumers) {
    await r.c.wait(() => r.c.received.some((m) => m.headers.position === last && !m.headers.event), 15000, 'resumer reaches the last message');
  }
  await sleep(200);	// anything duplicated late would show up now
  t.ok(sent.length === 50 + N2, `writer got ${sent.length} receipts`);
  let seams = 0;
  for (const [k, r] of resumers.entries()) {
    const rf = await r.rc;
    t.is(rf.headers.recovered, 'true', `resumer ${k}: the SUBSCRIBE receipt carries recovered:true`);
    const { before, after } = checkResume(`resumer ${k} (since ${r.since})`, r.c, r.since, sent);
    if (r.midPosting && before > 0 && after > 0) seams++;
  }
  t.ok(seams >= NRES / 2, `the seam was exercised: ${seams} of ${NRES} resumes had replayed and live messages around the marker while posting went on`);
  for (const r of resumers) await r.c.close();

  // ------------------------------------------------ history:N
  const hist = await connectWs(srv, { login: 'hana' });
  const hr = receiptOf(hist, 'h1');
  hist.subscribe(ROOM, { history: '7', receipt: 'h1' });
  await hist.wait(() => hist.received.some((m) => m.headers.event === 'resumed'), 5000, 'history marker');
  const hmsgs = chat(hist.received);
  t.deep(hmsgs.map((m) => m.body), sent.slice(-7).map((s) => s.body), 'history:7 gives the last 7 messages in order');
  const hm = hist.received.find((m) => m.headers.event === 'resumed');
  t.is(hm.headers.recovered, 'true', 'history: marker recovered=true');
  t.is(hm.headers.position, sent[sent.length - 1].position, 'history: marker position is the last message');
  t.is((await hr).headers.recovered, 'true', 'history: receipt carries recovered:true');
  t.ok(hist.received.indexOf(hm) === hist.received.length - 1 ||
       hist.received.slice(hist.received.indexOf(hm) + 1).every((m) => m.headers.event), 'history: nothing replayed after the marker');
  await writer.send(ROOM, 'live after history');
  await hist.wait(() => hist.received.some((m) => m.body === 'live after history'), 5000, 'live after history');
  t.ok(true, 'history: live messages follow');
  sent.push({ body: 'live after history', position: hist.received.find((m) => m.body === 'live after history').headers.position });
  await hist.close();

  const h0 = await connectWs(srv, { login: 'hugo' });
  h0.subscribe(ROOM, { history: '0' });
  await sleep(400);
  t.is(chat(h0.received).length + h0.received.filter((m) => m.headers.event === 'resumed').length, 0, 'history:0 replays nothing');
  await h0.close();

  // ------------------------------------------------ too far behind
  const far = await connectWs(srv, { login: 'fay' });
  const fr = receiptOf(far, 'far');
  far.subscribe(ROOM, { since: '0', receipt: 'far' });
  await far.wait(() => far.received.some((m) => m.headers.event === 'resumed'), 10000, 'far marker');
  const fm = far.received.find((m) => m.headers.event === 'resumed');
  t.is(fm.headers.recovered, 'false', `since:0 with ${sent.length} messages and resume_max ${RESUME_MAX}: recovered=false`);
  t.is((await fr).headers.recovered, 'false', 'and the SUBSCRIBE receipt says recovered:false');
  const fmsgs = chat(far.received);
  t.is(fmsgs.length, RESUME_MAX, `it replays resume_max (${RESUME_MAX}) messages`);
  t.deep(fmsgs.map((m) => m.body), sent.slice(-RESUME_MAX).map((s) => s.body), 'the newest ones, in order, ending at the last');
  await far.close();

  // ------------------------------------------------ bad resume headers
  for (const [hdrs, want] of [[{ since: 'abc' }, /since/], [{ history: '100000000' }, /history/], [{ since: '1', history: '2' }, /since and history|exclusive/], [{ since: '-5' }, /since/]]) {
    const e = await connectWs(srv, { login: 'eve' });
    const err = new Promise((resolve) => { e.client.onStompError = (f) => resolve(f); });
    e.subscribe(ROOM, hdrs);
    const f = await Promise.race([err, later(3000)]);
    t.like(f && f.headers.message, want, `SUBSCRIBE ${JSON.stringify(hdrs)}: ERROR naming the header`);
    await e.close();
  }
  await writer.close();

  // ------------------------------------------------ restart: from SQLite
  t.is(await srv.stop(), 0, 'server stops cleanly');
  await srv.restart();
  const after = await connectWs(srv, { login: 'rex' });
  const since = BigInt(sent[sent.length - 40].position);
  const ar = receiptOf(after, 'after');
  after.subscribe(ROOM, { since: String(since), receipt: 'after' });
  await after.wait(() => after.received.some((m) => m.headers.event === 'resumed'), 10000, 'marker after restart');
  t.is((await ar).headers.recovered, 'true', 'after restart: receipt recovered:true');
  checkResume('after restart (from SQLite)', after, since, sent);
  t.is(chat(after.received).length, 39, 'after restart: the 39 messages after the position');

  // positions keep growing across the restart
  const w2 = await connectWs(srv, { login: 'wendy' });
  const r2 = await w2.send(ROOM, 'after restart');
  t.ok(BigInt(r2.headers.position) > BigInt(sent[sent.length - 1].position),
    `a new message after the restart gets a larger position (${r2.headers.position} > ${sent[sent.length - 1].position})`);
  await after.wait(() => after.received.some((m) => m.body === 'after restart'), 5000, 'live after restart');
  t.ok(true, 'the resumed subscriber gets the live message after the restart');
  const h2 = await connectWs(srv, { login: 'hana' });
  h2.subscribe(ROOM, { history: '3' });
  await h2.wait(() => h2.received.some((m) => m.headers.event === 'resumed'), 5000, 'history after restart');
  t.deep(chat(h2.received).map((m) => m.body), [sent[sent.length - 2].body, sent[sent.length - 1].body, 'after restart'],
    'history:3 after the restart spans old (SQLite) and new messages');
  await h2.close();
  await w2.close();
  await after.close();
  t.is(await srv.stop(), 0, 'clean stop');
});
