#!/usr/bin/env node
'use strict';
// REST (JSON): rooms list/create/get/delete (creator only), messages paging
// with before/after/limit and stable cursors, POST a message (it reaches
// STOMP subscribers), bad requests -> 4xx with a JSON error, /healthz,
// /readyz, /metrics (Prometheus text whose counters move when we chat).
const t = require('../lib/tap');
const { startParley, sleep, httpGet, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const HISTORY_MAX = 500;

t.run(async () => {
  const srv = await startParley({ ini: { server: { max_http_body: '1k', history_max: HISTORY_MAX }, limits: { msg_rate: 0, byte_rate: 0 } } });
  servers.push(srv);
  const api = (method, path, body, who = 'alice', headers = {}) =>
    httpRequest(method, `${srv.http}/api/v1${path}`, body, Object.assign(who ? basic(who) : {}, headers));
  const isJsonError = (r, status, name) => {
    t.is(r.status, status, `${name}: ${status}`);
    t.ok(r.json && r.json.status === status && typeof r.json.error === 'string' && r.json.error.length > 0 &&
      /^application\/json/.test(r.headers['content-type'] || ''), `${name}: JSON error body (${r.body.slice(0, 120)})`);
  };

  // ------------------------------------------------------------ auth
  let r = await api('GET', '/rooms', undefined, null);
  t.is(r.status, 401, 'no credentials: 401');
  t.like(r.headers['www-authenticate'] || '', /Basic/, 'with WWW-Authenticate: Basic');
  isJsonError(await api('GET', '/rooms', undefined, null, { authorization: 'Basic %%%' }), 400, 'malformed Basic credentials');

  // ------------------------------------------------------------ rooms
  r = await api('POST', '/rooms', { name: 'project-x', topic: 'the plan' });
  t.is(r.status, 201, 'POST /rooms: 201 Created');
  t.is(r.json && r.json.name, 'project-x', 'answer has the name');
  t.is(r.json && r.json.creator, 'alice', 'creator is the authenticated user');
  t.is(r.json && r.json.topic, 'the plan', 'topic kept');
  t.ok(r.json && typeof r.json.created === 'number' && Math.abs(r.json.created - Date.now()) < 60000, 'created is a time in ms');
  r = await api('POST', '/rooms', { name: 'project-x' }, 'bob');
  t.is(r.status, 409, 'creating it again: 409');
  t.is(r.json && r.json.creator, 'alice', 'and the existing room is unchanged (creator alice)');
  for (const [name, body] of [['invalid name', { name: '.hidden' }], ['name with a space', { name: 'a b' }],
    ['empty name', { name: '' }], ['name over 128 bytes', { name: 'r'.repeat(129) }], ['no name', { topic: 'x' }],
    ['name not a string', { name: 42 }], ['not JSON', 'name=project']]) {
    isJsonError(await api('POST', '/rooms', body), 400, `POST /rooms with ${name}`);
  }
  isJsonError(await api('POST', '/rooms', { name: 'big', topic: 'x'.repeat(2000) }), 413, 'body over max_http_body (1k)');

  r = await api('GET', '/rooms');
  t.is(r.status, 200, 'GET /rooms: 200');
  t.ok(r.json && Array.isArray(r.json.rooms) && r.json.rooms.some((x) => x.name === 'project-x'), 'the list has the room');
  r = await api('GET', '/rooms/project-x', undefined, 'bob');
  t.is(r.status, 200, 'GET /rooms/project-x: 200 (any user)');
  t.is(r.json && r.json.topic, 'the plan', 'with its topic');
  isJsonError(await api('GET', '/rooms/no-such-room'), 404, 'GET an unknown room');
  isJsonError(await api('GET', '/rooms/.bad'), 400, 'GET a bad room name');
  isJsonError(await api('PUT', '/rooms'), 405, 'PUT /rooms');
  isJsonError(await api('PATCH', '/rooms/project-x'), 405, 'PATCH /rooms/project-x');
  isJsonError(await api('GET', '/nothing-here'), 404, 'unknown endpoint');
  isJsonError(await api('GET', '/rooms/project-x/else'), 404, 'unknown sub-resource');

  // ------------------------------------------------------------ messages
  const carol = await connectWs(srv, { login: 'carol' });
  const live = [];
  carol.subscribe('project-x', {}, (m) => { if (!m.headers.event) live.push(m); });
  await sleep(150);
  const posted = [];
  for (let i = 0; i < 25; i++) {
    r = await api('POST', '/rooms/project-x/messages', { body: `rest ${i} héllo ✓`, content_type: 'text/plain' });
    if (r.status !== 201) break;
    posted.push({ body: `rest ${i} héllo ✓`, position: r.json.position, id: r.json.id });
  }
  t.is(posted.length, 25, 'POST /rooms/project-x/messages: 201 x 25');
  t.ok(posted.every((p) => /^\d+$/.test(p.position) && p.id), 'each answer has the position (a decimal string) and the id');
  for (let i = 0; i < 5; i++) {
    const sr = await carol.send('project-x', `stomp ${i}`);
    posted.push({ body: `stomp ${i}`, position: sr.headers.position });
  }
  await carol.wait(() => live.length >= 30, 5000, '30 live messages');
  t.deep(live.slice(0, 25).map((m) => m.body), posted.slice(0, 25).map((p) => p.body), 'REST-posted messages reach the STOMP subscriber, in order');
  t.ok(live.slice(0, 25).every((m) => m.headers.sender === 'alice' && m.headers['content-type'] === 'text/plain'), 'with sender alice and the content type');
  t.deep(live.slice(0, 25).map((m) => m.headers.position), posted.slice(0, 25).map((p) => p.position), 'positions match the POST answers');
  const all = posted.map((p) => p.position);

  // newest first page, then backwards with before=
  r = await api('GET', '/rooms/project-x/messages?limit=10');
  t.is(r.status, 200, 'GET messages: 200');
  const p1 = r.json;
  t.deep(p1.messages.map((m) => m.position), all.slice(20), 'limit=10: the newest 10, oldest first');
  t.is(p1.has_more, true, 'has_more');
  t.is(p1.first_position, all[20], 'first_position is the cursor for the previous page');
  const m0 = p1.messages[0];
  t.ok(m0.sender === 'alice' && m0.body === 'rest 20 héllo ✓' && m0.room === 'project-x' && typeof m0.timestamp === 'number' && m0.id,
    'a message has id, room, position, sender, timestamp and body');
  // new messages arrive while paging: older pages must not shift
  for (let i = 0; i < 3; i++) {
    r = await api('POST', '/rooms/project-x/messages', { body: `late ${i}` });
    all.push(r.json.position);
  }
  r = await api('GET', `/rooms/project-x/messages?before=${p1.first_position}&limit=10`);
  t.deep(r.json.messages.map((m) => m.position), all.slice(10, 20), 'before=<first_position>: the 10 before, unaffected by new posts');
  t.is(r.json.has_more, true, 'has_more');
  r = await api('GET', `/rooms/project-x/messages?before=${r.json.first_position}&limit=10`);
  t.deep(r.json.messages.map((m) => m.position), all.slice(0, 10), 'and the 10 before those');
  t.is(r.json.has_more, false, 'has_more false at the start');
  r = await api('GET', `/rooms/project-x/messages?before=${all[0]}&limit=10`);
  t.deep(r.json.messages, [], 'before the first message: empty page');

  // forwards with after=
  const fwd = [];
  let cursor = '0', pages = 0;
  for (;;) {
    r = await api('GET', `/rooms/project-x/messages?after=${cursor}&limit=7`);
    if (r.status !== 200 || ++pages > 20) break;
    fwd.push(...r.json.messages.map((m) => m.position));
    if (!r.json.has_more) break;
    cursor = r.json.last_position;
  }
  t.deep(fwd, all, `after= paging (limit 7) walks all ${all.length} messages in order, once each (${pages} pages)`);
  r = await api('GET', `/rooms/project-x/messages?after=${all[all.length - 1]}`);
  t.ok(r.json && r.json.messages.length === 0 && r.json.has_more === false, 'after the newest: empty page');
  r = await api('GET', `/rooms/project-x/messages?limit=${HISTORY_MAX}`);
  t.is(r.json && r.json.messages.length, all.length, `limit=${HISTORY_MAX} (the maximum) returns everything`);
  r = await api('GET', '/rooms/project-x/messages');
  t.ok(r.status === 200 && r.json.messages.length > 0 && r.json.messages.length <= HISTORY_MAX, `no limit: a bounded default page (${r.json && r.json.messages.length})`);

  for (const [q, name] of [['limit=0', 'limit=0'], [`limit=${HISTORY_MAX + 1}`, 'limit over history_max'], ['limit=ten', 'limit not a number'],
    ['before=abc', 'before not a number'], ['after=-1', 'negative after'], [`before=${all[5]}&after=${all[1]}`, 'before and after together']]) {
    isJsonError(await api('GET', `/rooms/project-x/messages?${q}`), 400, `GET messages?${q} (${name})`);
  }
  for (const [body, name] of [['nope', 'not JSON'], [{ text: 'x' }, 'no body field'], [{ body: 5 }, 'body not a string']]) {
    isJsonError(await api('POST', '/rooms/project-x/messages', body), 400, `POST message with ${name}`);
  }
  isJsonError(await api('POST', '/rooms/bad%20name/messages', { body: 'x' }), 400, 'POST message to a bad room name');

  // ------------------------------------------------------------ delete
  isJsonError(await api('DELETE', '/rooms/project-x', undefined, 'bob'), 403, 'DELETE by someone else');
  r = await api('GET', '/rooms/project-x', undefined, 'bob');
  t.is(r.status, 200, 'the room is still there');
  r = await api('DELETE', '/rooms/project-x');
  t.is(r.status, 204, 'DELETE by the creator: 204');
  isJsonError(await api('GET', '/rooms/project-x'), 404, 'GET after DELETE');
  r = await api('GET', '/rooms');
  t.ok(r.json && !r.json.rooms.some((x) => x.name === 'project-x'), 'gone from the list');
  isJsonError(await api('DELETE', '/rooms/project-x'), 404, 'DELETE again');
  r = await api('GET', '/rooms/project-x/messages');
  t.ok(r.status === 404 || (r.json && r.json.messages.length === 0), 'its history is gone');

  // ------------------------------------------------------------ health, metrics
  r = await httpGet(`${srv.http}/healthz`);
  t.ok(r.status === 200 && JSON.parse(r.body).status === 'ok', '/healthz: 200 {"status":"ok"}');
  r = await httpGet(`${srv.http}/readyz`);
  t.ok(r.status === 200 && JSON.parse(r.body).status === 'ready', '/readyz: 200 ready');

  const scrape = async () => {
    const m = await httpGet(`${srv.http}/metrics`);
    const v = {};
    for (const l of m.body.split('\n')) {
      const x = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(l);
      if (x) v[x[1]] = Number(x[2]);
    }
    return { m, v };
  };
  const { m, v: before } = await scrape();
  t.like(m.headers['content-type'], /^text\/plain; version=0\.0\.4/, '/metrics: Prometheus text content type');
  const lines = m.body.split('\n').filter((l) => l && !l.startsWith('#'));
  const bad = lines.filter((l) => !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (-?[0-9.]+(e[+-]?\d+)?|NaN|[+-]Inf)$/.test(l));
  t.deep(bad, [], 'every sample line is valid exposition format');
  const typed = new Set(m.body.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
  t.ok(lines.every((l) => typed.has(l.split(/[{ ]/)[0])), 'every metric has a # TYPE line');
  for (const name of ['parley_connections', 'parley_frames_in_total', 'parley_frames_out_total', 'parley_messages_published_total',
    'parley_deliveries_total', 'parley_rooms', 'parley_storage_backlog']) {
    t.ok(Number.isFinite(before[name]), `/metrics has ${name} (${before[name]})`);
  }
  t.ok(Object.keys(before).some((k) => k.startsWith('parley_errors_total{kind=')), '/metrics has errors by kind');
  t.ok(before.parley_connections >= 1, 'connections gauge counts the open WebSocket');

  const dan = await connectWs(srv, { login: 'dan' });
  dan.subscribe('metrics-room');
  await sleep(100);
  for (let i = 0; i < 7; i++) await dan.send('metrics-room', `count ${i}`);
  await dan.wait(() => dan.received.filter((x) => !x.headers.event).length >= 7, 5000, 'metrics messages');
  const { v: after } = await scrape();
  t.ok(after.parley_messages_published_total - before.parley_messages_published_total >= 7, `messages_published_total moved by >= 7 (${before.parley_messages_published_total} -> ${after.parley_messages_published_total})`);
  t.ok(after.parley_frames_in_total - before.parley_frames_in_total >= 8, `frames_in_total moved (${before.parley_frames_in_total} -> ${after.parley_frames_in_total})`);
  t.ok(after.parley_deliveries_total - before.parley_deliveries_total >= 7, `deliveries_total moved (${before.parley_deliveries_total} -> ${after.parley_deliveries_total})`);
  t.ok(after.parley_connections === before.parley_connections + 1, `connections gauge +1 (${before.parley_connections} -> ${after.parley_connections})`);
  t.ok(after['parley_room_messages_total{room="metrics-room"}'] >= 7, 'per-room message count for the new room');
  isJsonError(await api('GET', '/rooms/nope'), 404, 'one more 404');
  const { v: after2 } = await scrape();
  t.ok(after2['parley_errors_total{kind="http"}'] > after['parley_errors_total{kind="http"}'], 'HTTP errors are counted');
  await dan.close();
  await carol.close();
  t.is(await srv.stop(), 0, 'clean stop');
});
