#!/usr/bin/env node
'use strict';
// The sqlite plugin's schema version 2 keeps (room, id) unique through an
// index on (id, room) (version 1: on (room, id)), so that a batch's index
// entries sit together.  A version 1 database is migrated when parleyd
// opens it: its messages stay in history, editable and deletable by id, the
// same id may still be used in two rooms but not twice in one, and a
// database newer than the plugin is refused with both versions named.
// The databases are made and inspected with Python's sqlite3 module.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { startParley, history, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

// Run Python code with `db` open on file; what it prints, as JSON.
function py(file, code) {
  const out = execFileSync('python3', ['-c', `import sqlite3, sys, json\ndb = sqlite3.connect(sys.argv[1])\n${code}`, file], { encoding: 'utf8' });
  return JSON.parse(out);
}

// The schema as version 1 of the plugin created it.
const V1 = `
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE rooms (name TEXT PRIMARY KEY NOT NULL, creator TEXT,
  created_ms INTEGER NOT NULL DEFAULT 0, topic TEXT);
CREATE TABLE messages (room TEXT NOT NULL, position INTEGER NOT NULL,
  id TEXT NOT NULL, sender TEXT NOT NULL, ts_ms INTEGER NOT NULL,
  content_type TEXT, body BLOB NOT NULL, edited_ms INTEGER NOT NULL DEFAULT 0,
  deleted INTEGER NOT NULL DEFAULT 0, media_id TEXT,
  PRIMARY KEY (room, position));
CREATE UNIQUE INDEX messages_room_id ON messages (room, id);
INSERT INTO rooms (name, creator, created_ms) VALUES ('old', 'olduser', 1700000000000), ('other', 'olduser', 1700000000000);
`;

const SCHEMA = `
idx = {r[1]: [c[2] for c in db.execute("PRAGMA index_info('%s')" % r[1])]
       for r in db.execute("PRAGMA index_list('messages')") if r[1].startswith('messages_')}
print(json.dumps({"version": db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0], "indexes": idx}))
`;

function api(srv, method, p, body, login) {
  return httpRequest(method, `${srv.http}${p}`, body, basic(login));
}

t.run(async () => {
  // --- a version 1 database with history
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-migrate-'));
  const db = path.join(dir, 'parley.db');
  py(db, `db.executescript(${JSON.stringify(V1)})
for i in range(1, 4):
    db.execute("INSERT INTO messages (room, position, id, sender, ts_ms, content_type, body) VALUES ('old', ?, ?, 'olduser', 1700000000000, 'text/plain', ?)", (1000 + i, 'v1-%d' % i, ('old %d' % i).encode()))
db.execute("INSERT INTO messages (room, position, id, sender, ts_ms, content_type, body) VALUES ('other', 5, 'v1-1', 'olduser', 1700000000000, 'text/plain', ?)", (b'same id, other room',))
db.commit()
print(json.dumps(1))`);
  t.deep(py(db, SCHEMA), { version: 1, indexes: { messages_room_id: ['room', 'id'] } }, 'the version 1 database: index on (room, id)');

  const srv = await startParley({ dir });
  servers.push(srv);
  t.like(srv.log(), /parley\.db: migrating the schema from version 1 to 2/, 'the migration is logged with the file');
  let msgs = await history(srv, 'old', 'olduser');
  t.deep(msgs.map((m) => [String(m.position), m.id, m.body, m.sender]),
    [['1001', 'v1-1', 'old 1', 'olduser'], ['1002', 'v1-2', 'old 2', 'olduser'], ['1003', 'v1-3', 'old 3', 'olduser']],
    'the old messages are in history, in order');
  const other = await history(srv, 'other', 'olduser');
  t.ok(other.length === 1 && other[0].id === 'v1-1' && other[0].body === 'same id, other room', 'the same id in another room is its own message');

  let r = await api(srv, 'PATCH', '/api/v1/rooms/old/messages/v1-2', { body: 'old 2, edited' }, 'olduser');
  t.is(r.status, 200, 'an old message is edited by its id');
  r = await api(srv, 'DELETE', '/api/v1/rooms/old/messages/v1-3', undefined, 'olduser');
  t.is(r.status, 200, 'an old message is deleted by its id');
  r = await api(srv, 'PATCH', '/api/v1/rooms/old/messages/v1-9', { body: 'nope' }, 'olduser');
  t.is(r.status, 404, 'an id that is not there: 404');

  const c = await connectWs(srv, { login: 'newuser' });
  const rc = await c.send('old', 'new after the migration');
  t.ok(rc.headers.position, 'a new message is stored (receipt)');
  await c.close();
  msgs = await history(srv, 'old', 'olduser');
  t.is(msgs.length, 4, 'history: the three old messages and the new one');
  t.ok(msgs[1].body === 'old 2, edited' && msgs[1].edited > 0, 'the edit is in history');
  t.ok(msgs[2].deleted === true && msgs[2].body === '', 'the delete left a tombstone');
  t.ok(msgs[3].body === 'new after the migration' && BigInt(String(msgs[3].position)) > 1003n, 'the new message comes after the old ones');
  t.is(await srv.stop(), 0, 'clean stop');

  t.deep(py(db, SCHEMA), { version: 2, indexes: { messages_id_room: ['id', 'room'] } },
    'migrated: version 2, one unique index on (id, room), the old index gone');
  const dup = py(db, `
def ins(room, pos, id):
    try:
        db.execute("INSERT INTO messages (room, position, id, sender, ts_ms, body) VALUES (?, ?, ?, 'x', 0, X'')", (room, pos, id))
        return 'stored'
    except sqlite3.IntegrityError:
        return 'refused'
print(json.dumps([ins('old', 2000, 'v1-1'), ins('third', 1, 'v1-1')]))
db.rollback()`);
  t.deep(dup, ['refused', 'stored'], 'still unique per room: an id again in its room is refused, in a third room it is stored');

  await srv.restart();
  t.ok(!/migrating/.test(srv.log()), 'a restart on the migrated database migrates nothing');
  t.is((await history(srv, 'old', 'olduser')).length, 4, 'and history is the same');
  t.is(await srv.stop(), 0, 'clean stop');

  // --- a new database is made as version 2
  const fresh = await startParley();
  servers.push(fresh);
  const fc = await connectWs(fresh, { login: 'u' });
  await fc.send('lobby', 'hello');
  await fc.close();
  t.is(await fresh.stop(), 0, 'a new database: clean stop');
  t.deep(py(path.join(fresh.dir, 'parley.db'), SCHEMA), { version: 2, indexes: { messages_id_room: ['id', 'room'] } },
    'a new database is version 2 with the (id, room) index');

  // --- a database newer than the plugin is refused
  py(db, 'db.execute("INSERT INTO schema_version (version) VALUES (3)"); db.commit(); print(1)');
  let err = null;
  try {
    const s = await startParley({ dir });
    servers.push(s);
    await s.stop();
  } catch (e) { err = e; }
  t.ok(err !== null, 'parleyd does not start on a newer schema');
  t.like(err ? err.message : '', /parley\.db: schema version 3 is newer than this plugin's \(2\)/, 'the error names the file and both versions');
  fs.rmSync(dir, { recursive: true, force: true });
});
