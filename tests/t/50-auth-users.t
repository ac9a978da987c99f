#!/usr/bin/env node
'use strict';
// The "users" auth plugin through a real parleyd: a users file with
// yescrypt, bcrypt and sha512crypt hashes made by mkpasswd; right and wrong
// passwords and unknown users over STOMP/WebSocket, STOMP/TCP and REST;
// SIGHUP adds and removes users while a session keeps chatting; malformed
// files stop the start-up (and a reload) naming FILE:LINE.
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { mkpasswd, mkpasswdMissing } = require('../lib/mkpasswd');
const t = require('../lib/tap');
const { startParley, sleep, httpGet, basic } = require('../lib/parley');
const { connectWs, Client, WebSocket } = require('../lib/stomp');


// One STOMP CONNECT over WebSocket; resolves to what happened:
// { connected, headers, error (ERROR frame headers), closed }.
function tryWs(srv, connectHeaders, { url } = {}) {
  return new Promise((resolve) => {
    const res = { connected: false, error: null, closed: false, client: null };
    const client = new Client({
      webSocketFactory: () => new WebSocket(url || srv.ws, ['v12.stomp']),
      connectHeaders,
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    res.client = client;
    const timer = setTimeout(() => { client.deactivate(); resolve(res); }, 10000);
    client.onConnect = (f) => { res.connected = true; res.headers = f.headers; clearTimeout(timer); resolve(res); };
    client.onStompError = (f) => { res.error = f.headers; };
    client.onWebSocketClose = () => { res.closed = true; clearTimeout(timer); client.deactivate(); resolve(res); };
    client.activate();
  });
}

// One STOMP CONNECT over plain TCP with a raw socket: { command, headers,
// closed } where closed says the server closed the connection afterwards.
function tryTcp(port, headers) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), frame = null;
    const timer = setTimeout(() => { s.destroy(); resolve(Object.assign(frame || {}, { closed: false })); }, 10000);
    s.on('error', (e) => { if (!frame) { clearTimeout(timer); reject(e); } });
    s.on('connect', () => {
      let f = 'CONNECT\naccept-version:1.2\nhost:localhost\n';
      for (const [k, v] of Object.entries(headers)) f += `${k}:${v}\n`;
      s.write(f + '\n\0');
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const nul = buf.indexOf(0);
      if (frame || nul < 0) return;
      const lines = buf.slice(0, nul).toString().replace(/^\n+/, '').split('\n');
      frame = { command: lines.shift(), headers: {} };
      for (const l of lines) {
        if (l === '') break;
        const i = l.indexOf(':');
        frame.headers[l.slice(0, i)] = l.slice(i + 1);
      }
      if (frame.command === 'CONNECTED') {
        clearTimeout(timer);
        s.end('DISCONNECT\n\n\0');
        s.destroy();
        resolve(Object.assign(frame, { closed: false }));
      }
    });
    s.on('close', () => { clearTimeout(timer); resolve(Object.assign(frame || {}, { closed: true })); });
  });
}

// The log lines written since mark (a length of srv.log()).
function since(srv, mark) { return srv.log().slice(mark); }

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

// Start parleyd expecting it to fail; resolves to { code, stderr }.
async function startFails(dir, ini) {
  try {
    const srv = await startParley({ dir, ini, startTimeoutMs: 10000 });
    await srv.stop();
    return { code: 0, stderr: srv.log() };
  } catch (e) {
    const m = /exited \((.*?)\) during start-up:\n([\s\S]*)$/.exec(e.message);
    return m ? { code: JSON.parse(m[1]).code, stderr: m[2] } : { code: 0, stderr: e.message };
  }
}

const AUTH = { auth: { plugins: 'users', allow_open: 'false' }, users: { file: 'users.txt' } };
// everyone may read (not write) by default; nobody may use "vault"
const PERMS = { permissions: { default: 'read' }, rooms: { vault: '*:' } };

// Run act() on connection c and resolve to the message of the ERROR it gets.
async function stompError(c, act) {
  act();
  await c.wait(() => c.errors.length > 0, 5000, 'an ERROR frame');
  return c.errors[0].headers.message;
}

t.run(async () => {
  if (mkpasswdMissing(t)) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-users-'));
  try {
    const file = path.join(dir, 'users.txt');
    const H = {
      alice: mkpasswd('yescrypt', 'alice pw'),
      bob: mkpasswd('bcrypt', 'bob-pw'),
      carol: mkpasswd('sha-512', 'c:a\\r#ol'),
      dave: mkpasswd('yescrypt', 'dave pw'),
    };
    t.like(H.alice, /^\$y\$/, 'mkpasswd made a yescrypt hash');
    t.like(H.bob, /^\$2b\$/, 'mkpasswd made a bcrypt hash');
    t.like(H.carol, /^\$6\$/, 'mkpasswd made a sha512crypt hash');
    fs.writeFileSync(file, [
      '# test users',
      '',
      `alice:${H.alice}:admin,staff:*:read+write+moderate`,
      `bob:${H.bob}::lobby:read+write,ops-*:write`,
      `  carol:${H.carol}   `,
      'locked:!' + H.dave,
      '',
    ].join('\n'), { mode: 0o600 });

    const srv = await startParley({ dir, ini: Object.assign({}, AUTH, PERMS) });
    let alice = null, bob = null;
    try {
      t.like(srv.log(), /\[users\] 4 users from .*users\.txt/, 'start-up log counts the users and names the file');

      // ---------------------------------------------------- STOMP over WebSocket
      let t0 = Date.now();
      let r = await tryWs(srv, { login: 'alice', passcode: 'alice pw' });
      const msYes = Date.now() - t0;
      t.ok(r.connected, 'yescrypt user with the right password: CONNECTED');
      t.is(r.headers && r.headers['user-name'], 'alice', 'CONNECTED names the login');
      await r.client.deactivate();
      t0 = Date.now();
      r = await tryWs(srv, { login: 'bob', passcode: 'bob-pw' });
      const msBcrypt = Date.now() - t0;
      t.ok(r.connected, 'bcrypt user with the right password: CONNECTED');
      await r.client.deactivate();
      t0 = Date.now();
      r = await tryWs(srv, { login: 'carol', passcode: 'c:a\\r#ol' });
      const msSha = Date.now() - t0;
      t.ok(r.connected, 'sha512crypt user (line with white space around it, password with : \\ #): CONNECTED');
      await r.client.deactivate();
      t.diag(`CONNECT round trip incl. hash check: yescrypt ${msYes} ms, bcrypt ${msBcrypt} ms, sha512crypt ${msSha} ms`);

      let mark = srv.log().length;
      r = await tryWs(srv, { login: 'alice', passcode: 'wrong' });
      t.ok(!r.connected && r.error && r.error.message === 'authentication failed', 'wrong password: STOMP ERROR "authentication failed"');
      t.ok(r.closed, 'wrong password: the connection is closed');
      await waitFor(() => /authentication failed for 'alice': wrong password/.test(since(srv, mark)), 3000, 'log line').catch(() => {});
      t.like(since(srv, mark), /authentication failed for 'alice': wrong password/, 'the log says why');

      r = await tryWs(srv, { login: 'alice', passcode: 'Alice pw' });
      t.ok(!r.connected && r.error, 'password compare is case-sensitive');
      r = await tryWs(srv, { login: 'ALICE', passcode: 'alice pw' });
      t.ok(!r.connected && r.error, 'login compare is case-sensitive');
      mark = srv.log().length;
      r = await tryWs(srv, { login: 'mallory', passcode: 'alice pw' });
      t.ok(!r.connected && r.error && r.error.message === 'authentication failed' && r.closed, 'unknown user: ERROR and closed');
      await waitFor(() => /unknown user/.test(since(srv, mark)), 3000, 'log line').catch(() => {});
      t.like(since(srv, mark), /authentication failed for 'mallory': unknown user/, 'the log says unknown user');
      r = await tryWs(srv, { login: 'locked', passcode: 'dave pw' });
      t.ok(!r.connected && r.error, 'a locked account (hash prefixed with !) is refused even with its password');
      r = await tryWs(srv, {});
      t.ok(!r.connected && r.error && r.closed, 'no login at all: ERROR (every plugin deferred)');
      r = await tryWs(srv, { login: 'alice', passcode: '' });
      t.ok(!r.connected && r.error, 'empty password: ERROR');

      // ---------------------------------------------------- STOMP over TCP
      let f = await tryTcp(srv.stompPort, { login: 'bob', passcode: 'bob-pw' });
      t.is(f.command, 'CONNECTED', 'STOMP/TCP: right password: CONNECTED');
      f = await tryTcp(srv.stompPort, { login: 'bob', passcode: 'bob-PW' });
      t.ok(f.command === 'ERROR' && f.headers.message === 'authentication failed', 'STOMP/TCP: wrong password: ERROR "authentication failed"');
      t.ok(f.closed, 'STOMP/TCP: the server closes the connection after the ERROR');
      f = await tryTcp(srv.stompPort, { login: 'nobody', passcode: 'x' });
      t.ok(f.command === 'ERROR' && f.closed, 'STOMP/TCP: unknown user: ERROR and closed');

      // ---------------------------------------------------- REST
      let h = await httpGet(`${srv.http}/api/v1/rooms`, basic('carol', 'c:a\\r#ol'));
      t.is(h.status, 200, 'REST Basic with the right password: 200');
      h = await httpGet(`${srv.http}/api/v1/rooms`, basic('carol', 'nope'));
      t.is(h.status, 401, 'REST Basic with a wrong password: 401');
      h = await httpGet(`${srv.http}/api/v1/rooms`);
      t.is(h.status, 401, 'REST without credentials: 401');

      // ---------------------------------------------------- roles and grants reach the core
      {
        const b = await connectWs(srv, { login: 'bob', passcode: 'bob-pw' });
        let rc0 = await b.send('lobby', 'bob writes in lobby');
        t.like(rc0.headers.position, /^\d+$/, 'grant lobby:read+write from the users file: bob may SEND to lobby');
        rc0 = await b.send('ops-east', 'and in ops-east');
        t.like(rc0.headers.position, /^\d+$/, 'prefix grant ops-*:write: bob may SEND to ops-east');
        t.is(await stompError(b, () => b.client.publish({ destination: '/room/hall', body: 'x' })),
          'permission denied: write on room hall', 'no grant for hall ([permissions] default = read): bob\'s SEND gets an ERROR');
        await b.close();
        const c = await connectWs(srv, { login: 'carol', passcode: 'c:a\\r#ol' });
        t.is(await stompError(c, () => c.subscribe('vault')), 'permission denied: read on room vault',
          'carol (no roles, no grants) cannot SUBSCRIBE to the closed room');
        await c.close();
        const a = await connectWs(srv, { login: 'alice', passcode: 'alice pw' });
        a.subscribe('vault');
        rc0 = await a.send('vault', 'admin only');
        t.like(rc0.headers.position, /^\d+$/, 'role admin from the users file: alice may use the closed room');
        await a.close();
        h = await httpGet(`${srv.http}/api/v1/rooms/vault/messages`, basic('carol', 'c:a\\r#ol'));
        t.is(h.status, 403, 'REST history of the closed room without a grant: 403');
      }

      // ---------------------------------------------------- SIGHUP reload
      alice = await connectWs(srv, { login: 'alice', passcode: 'alice pw' });
      bob = await connectWs(srv, { login: 'bob', passcode: 'bob-pw' });
      alice.subscribe('lobby');
      bob.subscribe('lobby');
      await sleep(200);
      await alice.send('lobby', 'before reload');
      await bob.wait(() => bob.received.some((m) => m.body === 'before reload'), 5000, 'bob gets the first message');
      // dave in, bob out
      fs.writeFileSync(file, [
        `alice:${H.alice}:admin,staff:*:read+write+moderate`,
        `carol:${H.carol}`,
        `dave:${H.dave}::*:read+write`,
      ].join('\n') + '\n');
      mark = srv.log().length;
      process.kill(srv.proc.pid, 'SIGHUP');
      await waitFor(() => /\[users\] 3 users from/.test(since(srv, mark)), 5000, 'reload log line');
      t.ok(true, 'SIGHUP: the plugin reloads the file (3 users)');
      r = await tryWs(srv, { login: 'dave', passcode: 'dave pw' });
      t.ok(r.connected, 'after SIGHUP: the added user logs in');
      await r.client.deactivate();
      r = await tryWs(srv, { login: 'bob', passcode: 'bob-pw' });
      t.ok(!r.connected && r.error, 'after SIGHUP: the removed user is refused');
      await bob.wait(() => bob.closed, 5000, 'bob\'s session to end').catch(() => {});
      t.ok(bob.closed && bob.errors.some((e) => e.headers.message === 'credentials revoked'),
        'the removed user\'s open session ends: ERROR "credentials revoked", closed');
      t.like(since(srv, mark), /bob was removed or locked in \[users\]: closing/, 'the log names the login and the plugin');
      t.ok(!alice.closed && alice.client.connected, 'a session of a user still in the file stays connected across the reload');
      const dave = await connectWs(srv, { login: 'dave', passcode: 'dave pw' });
      dave.subscribe('lobby');
      await sleep(200);
      const rc = await alice.send('lobby', 'after reload');
      t.like(rc.headers.position, /^\d+$/, 'that session keeps chatting: SEND gets its RECEIPT');
      await dave.wait(() => dave.received.some((m) => m.body === 'after reload' && m.headers.sender === 'alice'), 5000, 'dave gets it');
      t.ok(true, 'a user added by the reload receives it');
      await dave.close();

      // a broken file on reload: errors named, old table kept
      fs.writeFileSync(file, [
        `alice:${H.alice}`,
        'eve:plaintext-password',
        `dave:${H.dave}:bad role`,
      ].join('\n') + '\n');
      mark = srv.log().length;
      process.kill(srv.proc.pid, 'SIGHUP');
      await waitFor(() => /reload failed/.test(since(srv, mark)), 5000, 'reload failure log line');
      const lg = since(srv, mark);
      t.like(lg, /users\.txt:2: not a crypt\(3\) hash/, 'reload of a broken file: FILE:LINE for the bad hash');
      t.like(lg, /users\.txt:3: a role name is printable ASCII without space/, 'reload of a broken file: FILE:LINE for the bad roles');
      t.like(lg, /reload failed: keeping the old data/, 'the core says the old data stays');
      r = await tryWs(srv, { login: 'dave', passcode: 'dave pw' });
      t.ok(r.connected, 'after a failed reload the old table is still in use');
      await r.client.deactivate();
      t.ok(!alice.closed && alice.client.connected, 'a failed reload ends no session');
      // locking a user (hash prefixed with !) ends its open sessions too
      fs.writeFileSync(file, [
        `alice:!${H.alice}:admin,staff:*:read+write+moderate`,
        `carol:${H.carol}`,
        `dave:${H.dave}::*:read+write`,
      ].join('\n') + '\n');
      mark = srv.log().length;
      process.kill(srv.proc.pid, 'SIGHUP');
      await alice.wait(() => alice.closed, 5000, 'alice\'s session to end').catch(() => {});
      t.ok(alice.closed && alice.errors.some((e) => e.headers.message === 'credentials revoked'),
        'a user locked by a reload: its open session ends with ERROR "credentials revoked"');
      t.ok(!srv.log().includes('alice pw') && !srv.log().includes('dave pw') && !srv.log().includes('bob-pw'), 'no password appears in the log');
      await alice.close();
      await bob.close();
      alice = bob = null;
    } finally {
      if (alice) await alice.close().catch(() => {});
      if (bob) await bob.close().catch(() => {});
      t.is(await srv.stop(), 0, 'parleyd exits 0 on SIGTERM');
    }

    // ---------------------------------------------------- malformed files stop the start
    const bad = [
      ['alice', 'expected login:hash\\[:roles\\[:grants\\]\\]'],
      [`bob:${H.bob}:staff:lobby:write+fly`, 'unknown permission'],
      [`carol:${H.carol}::lobby:read,lobby:write`, 'a room is granted twice'],
      [`dave:$6$onlysalt`, 'incomplete crypt\\(3\\) hash'],
      [`d ave:${H.dave}`, 'the login is 1..128 printable ASCII'],
      [`x:${H.dave}::.hidden:read`, 'a grant\'s room is'],
    ];
    fs.writeFileSync(file, ['# bad', ...bad.map((b) => b[0]), `alice:${H.alice}`, `alice:${H.alice}`].join('\n') + '\n');
    let res = await startFails(dir, AUTH);
    t.ok(res.code !== 0, `a malformed users file: parleyd exits non-zero at start (${res.code})`);
    bad.forEach((b, i) => t.like(res.stderr, new RegExp(`users\\.txt:${i + 2}: ${b[1]}`), `start-up error names users.txt:${i + 2} (${b[1].replace(/\\/g, '')})`));
    t.like(res.stderr, new RegExp(`users\\.txt:${bad.length + 3}: duplicate login 'alice' \\(first on line ${bad.length + 2}\\)`), 'a duplicate login is named with both lines');
    fs.unlinkSync(file);
    res = await startFails(dir, AUTH);
    t.ok(res.code !== 0 && /users\.txt: No such file or directory/.test(res.stderr), 'a missing users file: exits non-zero naming the file');
    res = await startFails(dir, { auth: { plugins: 'users', allow_open: 'false' } });
    t.ok(res.code !== 0 && /\[users\] file is required/.test(res.stderr), 'no [users] file key: exits non-zero saying the key is required');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
