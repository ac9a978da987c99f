#!/usr/bin/env node
'use strict';
// The "jwt" auth plugin through a real parleyd: the token matrix (valid,
// expired, not yet valid, wrong signature, wrong issuer/audience, alg none,
// HS/RS confusion, malformed base64, ...) over STOMP CONNECT (token as
// passcode) and over the WebSocket URL (?access_token=), REST with
// Authorization: Bearer, HS256 with a secret, ES256 with a public key,
// the users+jwt chain, key rotation on SIGHUP, live sessions ending when
// their token expires, and bad configurations.
// Tokens are signed here with node:crypto (tests/lib/jwt.js).
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('../lib/tap');
const jwt = require('../lib/jwt');
const { startParley, sleep, httpGet } = require('../lib/parley');
const { Client, WebSocket, connectWs } = require('../lib/stomp');
const { stompWs } = require('../lib/stomp-raw');
const { execFileSync } = require('child_process');

const ISS = 'https://idp.test/realm';
const AUD = 'parley';
const SECRET = 'k'.repeat(8) + '-0123456789abcdef0123456789abcdef';

// One STOMP CONNECT over WebSocket: { connected, headers, error, closed }.
function tryWs(url, connectHeaders) {
  return new Promise((resolve) => {
    const res = { connected: false, error: null, closed: false };
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
      connectHeaders,
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    const timer = setTimeout(() => { client.deactivate(); resolve(res); }, 10000);
    client.onConnect = (f) => { res.connected = true; res.headers = f.headers; clearTimeout(timer); client.deactivate().then(() => resolve(res)); };
    client.onStompError = (f) => { res.error = f.headers; };
    client.onWebSocketClose = () => { res.closed = true; clearTimeout(timer); client.deactivate(); resolve(res); };
    client.activate();
  });
}

// The token as the STOMP passcode (no login), and as ?access_token= on the
// WebSocket URL (empty CONNECT credentials).
const viaPasscode = (srv, tok, login = '') => tryWs(srv.ws, { login, passcode: tok });
const viaQuery = (srv, tok) => tryWs(`${srv.ws}?access_token=${encodeURIComponent(tok)}`, { login: '', passcode: '' });

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(25);
  }
}

// Expect acceptance or rejection over both transports; on rejection the
// server log must give `reason` (a RegExp) for both attempts.
async function matrix(srv, name, tok, accept, reason, sub = 'alice') {
  for (const [how, fn] of [['STOMP CONNECT passcode', viaPasscode], ['WebSocket ?access_token', viaQuery]]) {
    const mark = srv.log().length;
    const r = await fn(srv, tok);
    if (accept) {
      t.ok(r.connected && r.headers['user-name'] === sub, `${name}: accepted over ${how}`) ||
        t.diag(srv.log().slice(mark));
      continue;
    }
    t.ok(!r.connected && r.error && r.error.message === 'authentication failed' && r.closed,
      `${name}: refused over ${how} (ERROR, closed)`);
    let seen = false;
    await waitFor(() => (seen = reason.test(srv.log().slice(mark))), 3000, 'log reason').catch(() => {});
    t.ok(seen, `${name} (${how}): the log says ${reason}`) || t.diag(srv.log().slice(mark));
  }
}

async function startFails(ini, dir) {
  try {
    const srv = await startParley({ ini, dir, startTimeoutMs: 10000 });
    await srv.stop();
    return { code: 0, stderr: srv.log() };
  } catch (e) {
    const m = /exited \((.*?)\) during start-up:\n([\s\S]*)$/.exec(e.message);
    return m ? { code: JSON.parse(m[1]).code, stderr: m[2] } : { code: 0, stderr: e.message };
  }
}

t.run(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-jwt-'));
  try {
    const rsa = jwt.rsaKeys();
    const rsaOther = jwt.rsaKeys();
    const ec = jwt.ecKeys('P-256');
    const ecOther = jwt.ecKeys('P-256');
    fs.writeFileSync(path.join(dir, 'rsa.pem'), rsa.publicPem);
    fs.writeFileSync(path.join(dir, 'ec.pem'), ec.publicPem);
    const now = jwt.now();
    const base = { sub: 'alice', iss: ISS, aud: AUD, iat: now, exp: now + 600 };
    const claims = (more) => Object.assign({}, base, more);
    const RS = (c, more = {}) => jwt.sign(c, Object.assign({ alg: 'RS256', key: rsa.privateKey }, more));
    const servers = [];
    const tokens = [];

    try {
      // ---------------------------------------------------- RS256 server
      const rsDir = fs.mkdtempSync(path.join(dir, 'rs-'));
      fs.copyFileSync(path.join(dir, 'rsa.pem'), path.join(rsDir, 'rsa.pem'));
      const srv = await startParley({
        dir: rsDir,
        ini: { auth: { plugins: 'jwt', allow_open: 'false' }, jwt: { public_key: 'rsa.pem', issuer: ISS, audience: AUD } },
      });
      servers.push(srv);
      t.like(srv.log(), /\[jwt\] accepting RS256,RS384,RS512 tokens from https:\/\/idp\.test\/realm for parley/, 'an RSA public key allows RS256/384/512 by default');

      const valid = RS(claims({ roles: ['staff', 'mod'], rooms: { lobby: ['read', 'write'], '*': 'read' } }));
      tokens.push(valid);
      await matrix(srv, 'valid RS256 token', valid, true);
      await matrix(srv, 'aud as an array containing the audience', RS(claims({ aud: ['other', AUD] })), true);
      await matrix(srv, 'header without typ, with a kid (ignored)', RS(claims(), { header: { typ: undefined, kid: 'k1' } }), true);
      await matrix(srv, 'roles as a string, rooms in the grant syntax', RS(claims({ roles: 'staff mod', rooms: 'lobby:read+write,*:read' })), true);
      await matrix(srv, 'expired 10 s ago (within the 30 s leeway)', RS(claims({ exp: now - 10 })), true);
      await matrix(srv, 'expired 120 s ago', RS(claims({ exp: now - 120 })), false, /token for 'alice' expired 1\d\d s ago/);
      await matrix(srv, 'not yet valid (nbf in 120 s)', RS(claims({ nbf: now + 120 })), false, /not valid for another 1\d\d s \(nbf\)/);
      await matrix(srv, 'issued in the future (iat in 600 s)', RS(claims({ iat: now + 600 })), false, /issued \d+ s in the future/);
      await matrix(srv, 'no exp', RS({ sub: 'alice', iss: ISS, aud: AUD }), false, /has no exp claim/);
      await matrix(srv, 'exp as a string', RS(claims({ exp: String(now + 600) })), false, /exp, nbf or iat is not a number/);
      await matrix(srv, 'wrong signature (another RSA key)', RS(claims(), { key: rsaOther.privateKey }), false, /bad RS256 signature/);
      const [h, p, s] = valid.split('.');
      const forged = jwt.b64url(JSON.stringify(claims({ sub: 'root' })));
      await matrix(srv, 'payload changed after signing', `${h}.${forged}.${s}`, false, /bad RS256 signature/);
      await matrix(srv, 'wrong issuer', RS(claims({ iss: 'https://evil.test' })), false, /token for 'alice': wrong issuer/);
      await matrix(srv, 'no issuer', RS({ sub: 'alice', aud: AUD, exp: now + 600 }), false, /token for 'alice': no issuer/);
      await matrix(srv, 'wrong audience', RS(claims({ aud: 'another-service' })), false, /token for 'alice': wrong audience/);
      await matrix(srv, 'alg none', jwt.sign(claims(), { alg: 'none' }), false, /unsigned token \(alg none\) refused/);
      await matrix(srv, 'alg "nOnE" with a signature copied from a valid token',
        `${jwt.b64url(JSON.stringify({ alg: 'nOnE', typ: 'JWT' }))}.${p}.${s}`, false, /alg none\) refused/);
      // HS/RS confusion: an HS256 token whose HMAC key is the server's RSA
      // public key file, byte for byte, as a naive verifier would use it
      const confused = jwt.sign(claims(), { alg: 'HS256', key: fs.readFileSync(path.join(rsDir, 'rsa.pem')) });
      await matrix(srv, 'HS256 signed with the RSA public key PEM (algorithm confusion)', confused, false, /token algorithm HS256 not allowed/);
      await matrix(srv, 'RS256 signature but alg claimed HS256 in the header',
        `${jwt.b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${p}.${s}`, false, /token algorithm HS256 not allowed/);
      await matrix(srv, 'malformed base64 in the payload', `${h}.${p.slice(0, 10)}*${p.slice(11)}.${s}`, false, /malformed base64url in the token's payload/);
      await matrix(srv, 'malformed base64 in the signature', `${h}.${p}.${s.slice(0, -3)}%%%`, false, /malformed base64url in the token's signature/);
      await matrix(srv, 'impossible base64 length in the header', `${h}A.${p}.${s}`, false, /malformed base64url in the token's header/);
      await matrix(srv, 'header that is not JSON', `${jwt.b64url('{"alg":"RS256",')}.${p}.${s}`, false, /token header: /);
      await matrix(srv, 'duplicate alg in the header',
        `${jwt.b64url('{"alg":"none","alg":"RS256"}')}.${p}.${s}`, false, /token header: duplicate member name/);
      await matrix(srv, 'crit header', RS(claims(), { header: { crit: ['exp'] } }), false, /crit/);
      await matrix(srv, 'no sub', RS({ iss: ISS, aud: AUD, exp: now + 600 }), false, /sub claim missing or not a login/);
      await matrix(srv, 'sub with a space', RS(claims({ sub: 'al ice' })), false, /sub claim missing or not a login/);
      await matrix(srv, 'bad permission in the rooms claim', RS(claims({ rooms: { lobby: ['read', 'fly'] } })), false, /claim rooms: bad permission/);
      await matrix(srv, 'roles claim not an array or string', RS(claims({ roles: { a: 1 } })), false, /claim roles: not an array of strings or a string/);
      await matrix(srv, 'Keycloak-style nested roles', RS(claims({ roles: undefined, realm_access: { roles: ['x'] } })), true);

      // a login next to the token must be the token's sub
      let r = await viaPasscode(srv, valid, 'alice');
      t.ok(r.connected && r.headers['user-name'] === 'alice', 'STOMP login equal to sub plus the token: accepted');
      const mark = srv.log().length;
      r = await viaPasscode(srv, valid, 'bob');
      t.ok(!r.connected && r.error, 'STOMP login different from sub: refused');
      await waitFor(() => /STOMP login differs from the token's sub 'alice'/.test(srv.log().slice(mark)), 3000, 'reason').catch(() => {});
      t.like(srv.log().slice(mark), /STOMP login differs from the token's sub 'alice'/, 'the log says the login differs from sub');
      r = await tryWs(srv.ws, { login: '', passcode: 'not.a-token' });
      t.ok(!r.connected && r.error, 'a passcode that is not a token: refused (deferred by jwt, denied by the chain)');

      // REST with Authorization: Bearer
      let res = await httpGet(`${srv.http}/api/v1/rooms`, { authorization: `Bearer ${valid}` });
      t.is(res.status, 200, 'REST GET /api/v1/rooms with a valid Bearer token: 200');
      res = await httpGet(`${srv.http}/api/v1/rooms`, { authorization: `Bearer ${RS(claims({ exp: now - 120 }))}` });
      t.is(res.status, 401, 'REST with an expired Bearer token: 401');
      let body = null;
      try { body = JSON.parse(res.body); } catch (e) { /* not JSON */ }
      t.ok(body && body.status === 401 && typeof body.error === 'string', 'the 401 has a JSON body');
      res = await httpGet(`${srv.http}/api/v1/rooms`, { authorization: `Bearer ${confused}` });
      t.is(res.status, 401, 'REST with the HS/RS confusion token: 401');
      res = await httpGet(`${srv.http}/api/v1/rooms`);
      t.is(res.status, 401, 'REST without a token: 401');

      // the token never reaches the log
      const sigs = tokens.map((x) => x.split('.')[2]);
      t.ok(!sigs.some((x) => srv.log().includes(x)) && !srv.log().includes(p), 'no token (or part of one) appears in the log');

      // key rotation on SIGHUP
      fs.writeFileSync(path.join(rsDir, 'rsa.pem'), rsaOther.publicPem);
      let m2 = srv.log().length;
      process.kill(srv.proc.pid, 'SIGHUP');
      await waitFor(() => /\[jwt\] reloaded/.test(srv.log().slice(m2)), 5000, 'jwt reload');
      r = await viaQuery(srv, RS(claims(), { key: rsaOther.privateKey }));
      t.ok(r.connected, 'SIGHUP after replacing public_key: tokens of the new key are accepted');
      r = await viaQuery(srv, valid);
      t.ok(!r.connected && r.error, 'and tokens of the old key are refused');
      fs.writeFileSync(path.join(rsDir, 'rsa.pem'), 'garbage\n');
      m2 = srv.log().length;
      process.kill(srv.proc.pid, 'SIGHUP');
      await waitFor(() => /\[jwt\] reload failed/.test(srv.log().slice(m2)), 5000, 'jwt reload failure');
      t.like(srv.log().slice(m2), /public_key = '.*rsa\.pem': expected a -----BEGIN PUBLIC KEY----- block/, 'a broken key file on SIGHUP is named');
      r = await viaQuery(srv, RS(claims(), { key: rsaOther.privateKey }));
      t.ok(r.connected, 'and the previous key stays in use');

      // ---------------------------------------------------- HS256 server
      const hs = await startParley({
        dir: fs.mkdtempSync(path.join(dir, 'hs-')),
        ini: {
          auth: { plugins: 'jwt', allow_open: 'false' },
          jwt: { secret: SECRET, issuer: ISS },
          // everyone may read, not write; nobody may use "vault"
          permissions: { default: 'read' },
          rooms: { vault: '*:' },
        },
      });
      servers.push(hs);
      t.like(hs.log(), /\[jwt\] accepting HS256 tokens/, 'a 41-byte secret allows HS256 only (HS384 needs 48 bytes)');
      const HS = (c, key = SECRET) => jwt.sign(c, { alg: 'HS256', key });
      await matrix(hs, 'valid HS256 token', HS(claims({ sub: 'bob', aud: 'anything' })), true, null, 'bob');
      await matrix(hs, 'HS256 with the wrong secret', HS(claims({ sub: 'bob' }), SECRET + 'x'), false, /bad HS256 signature/);
      await matrix(hs, 'HS256 expired', HS(claims({ sub: 'bob', exp: now - 100 })), false, /expired/);
      await matrix(hs, 'RS256 token on an HS256 server', RS(claims()), false, /token algorithm RS256 not allowed/);
      await matrix(hs, 'HS512 token on an HS256-only server', jwt.sign(claims(), { alg: 'HS512', key: SECRET }), false, /token algorithm HS512 not allowed/);
      res = await httpGet(`${hs.http}/api/v1/rooms`, { authorization: `Bearer ${HS(claims({ sub: 'bob' }))}` });
      t.is(res.status, 200, 'HS256 server: REST with a valid Bearer token: 200');

      // the roles and rooms claims reach the core's permission checks
      {
        const errOf = async (c, act) => {
          act();
          await c.wait(() => c.errors.length > 0, 5000, 'an ERROR frame');
          return c.errors[0].headers.message;
        };
        let c = await connectWs(hs, { login: '', passcode: '', url: `${hs.ws}?access_token=${HS(claims({ sub: 'bob', rooms: { 'team-*': ['read', 'write'] } }))}` });
        let rc = await c.send('team-a', 'hello team');
        t.like(rc.headers.position, /^\d+$/, 'rooms claim {"team-*": ["read","write"]}: SEND to team-a allowed');
        t.is(await errOf(c, () => c.client.publish({ destination: '/room/lobby', body: 'x' })), 'permission denied: write on room lobby',
          'no grant for lobby ([permissions] default = read): SEND refused with an ERROR naming room and permission');
        await c.close();
        c = await connectWs(hs, { login: '', passcode: HS(claims({ sub: 'bob', rooms: 'lobby:write' })) });
        rc = await c.send('lobby', 'now I may');
        t.like(rc.headers.position, /^\d+$/, 'rooms claim as a grant string "lobby:write": SEND allowed');
        t.is(await errOf(c, () => c.subscribe('vault')), 'permission denied: read on room vault', 'and the closed room stays closed');
        await c.close();
        c = await connectWs(hs, { login: '', passcode: HS(claims({ sub: 'root', roles: ['staff', 'admin'] })) });
        c.subscribe('vault');
        rc = await c.send('vault', 'admin only');
        t.like(rc.headers.position, /^\d+$/, 'roles claim with admin: the closed room is open to it');
        await c.close();
        res = await httpGet(`${hs.http}/api/v1/rooms/vault/messages`, { authorization: `Bearer ${HS(claims({ sub: 'bob' }))}` });
        t.is(res.status, 403, 'REST with a valid token but no grant for the closed room: 403');
      }

      // ---------------------------------------------------- ES256 server
      const es = await startParley({
        dir: fs.mkdtempSync(path.join(dir, 'es-')),
        ini: { auth: { plugins: 'jwt', allow_open: 'false' }, jwt: { public_key: path.join(dir, 'ec.pem'), audience: AUD } },
      });
      servers.push(es);
      t.like(es.log(), /\[jwt\] accepting ES256 tokens/, 'a P-256 public key allows ES256 only');
      const ES = (c, key = ec.privateKey) => jwt.sign(c, { alg: 'ES256', key });
      await matrix(es, 'valid ES256 token', ES(claims({ sub: 'carol' })), true, null, 'carol');
      await matrix(es, 'ES256 signed by another EC key', ES(claims({ sub: 'carol' }), ecOther.privateKey), false, /bad ES256 signature/);
      await matrix(es, 'HS256 signed with the EC public key PEM', jwt.sign(claims(), { alg: 'HS256', key: ec.publicPem }), false, /token algorithm HS256 not allowed/);
      await matrix(es, 'ES256 token for another audience', ES(claims({ aud: ['x', 'y'] })), false, /wrong audience/);
      res = await httpGet(`${es.http}/api/v1/rooms`, { authorization: `Bearer ${ES(claims({ sub: 'carol' }))}` });
      t.is(res.status, 200, 'ES256 server: REST with a valid Bearer token: 200');

      // ---------------------------------------------------- users + jwt chain
      let hashLine;
      try {
        hashLine = 'dora:' + execFileSync('mkpasswd', ['-m', 'yescrypt', '--stdin'], { input: 'dora pw\n' }).toString().trim();
      } catch (e) {
        hashLine = null;
      }
      if (!hashLine) {
        t.ok(false, 'mkpasswd (Debian package whois) is installed');
      } else {
        const chDir = fs.mkdtempSync(path.join(dir, 'chain-'));
        fs.writeFileSync(path.join(chDir, 'users.txt'), hashLine + '\n', { mode: 0o600 });
        const ch = await startParley({
          dir: chDir,
          ini: {
            auth: { plugins: 'users, jwt', allow_open: 'false' },
            users: { file: 'users.txt' },
            jwt: { secret: SECRET },
          },
        });
        servers.push(ch);
        const tok = HS(claims({ sub: 'erin' }));
        r = await tryWs(ch.ws, { login: 'dora', passcode: 'dora pw' });
        t.ok(r.connected && r.headers['user-name'] === 'dora', 'chain users,jwt: a password user logs in');
        r = await tryWs(ch.ws, { login: '', passcode: tok });
        t.ok(r.connected && r.headers['user-name'] === 'erin', 'chain users,jwt: a token in the passcode (no login) passes users and is accepted by jwt');
        r = await tryWs(ch.ws, { login: 'erin', passcode: tok });
        t.ok(r.connected && r.headers['user-name'] === 'erin', 'chain users,jwt: login unknown to users plus a token: deferred to jwt, accepted');
        r = await tryWs(`${ch.ws}?access_token=${tok}`, { login: 'erin', passcode: '' });
        t.ok(r.connected && r.headers['user-name'] === 'erin', 'chain users,jwt: access_token with a login and no password: accepted by jwt');
        r = await tryWs(ch.ws, { login: 'dora', passcode: 'wrong' });
        t.ok(!r.connected && r.error, 'chain users,jwt: a wrong password is still refused');
        r = await tryWs(ch.ws, { login: '', passcode: HS(claims({ sub: 'erin', exp: now - 100 })) });
        t.ok(!r.connected && r.error, 'chain users,jwt: an expired token is refused');
        res = await httpGet(`${ch.http}/api/v1/rooms`, { authorization: 'Basic ' + Buffer.from('dora:dora pw').toString('base64') });
        t.is(res.status, 200, 'chain users,jwt: REST Basic: 200');
        res = await httpGet(`${ch.http}/api/v1/rooms`, { authorization: `Bearer ${tok}` });
        t.is(res.status, 200, 'chain users,jwt: REST Bearer: 200');
      }

      // ---------------------------------------------------- live sessions
      // a session lives as long as its token would be accepted (exp +
      // leeway): then ERROR "credentials expired" and the close; a
      // session with a later exp, and one without exp, go on
      {
        const ex = await startParley({
          dir: fs.mkdtempSync(path.join(dir, 'exp-')),
          ini: { auth: { plugins: 'jwt', allow_open: 'false' }, jwt: { secret: SECRET, leeway: 1, require_exp: 'false' } },
        });
        servers.push(ex);
        const t0 = jwt.now();
        const ends = (t0 + 3 + 1) * 1000;	// exp + leeway, in ms
        const short = await stompWs(ex.ws, '', HS({ sub: 'shorty', exp: t0 + 3 }));
        const long = await stompWs(ex.ws, '', HS({ sub: 'longa', exp: t0 + 600 }));
        const never = await stompWs(`${ex.ws}?access_token=${HS({ sub: 'nox' })}`, '');
        let closedAt = 0;
        short.ws.on('close', () => { closedAt = Date.now(); });
        for (const c of [short, long, never]) {
          await waitFor(() => c.frames.some((f) => f.command === 'CONNECTED'), 5000, 'CONNECTED');
          c.write('SUBSCRIBE', { destination: '/room/clock', id: 's', receipt: 'sub' });
          await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT'), 5000, 'SUBSCRIBE receipt');
        }
        short.write('SEND', { destination: '/room/clock', receipt: 'm1' }, 'before');
        await waitFor(() => short.frames.some((f) => f.headers['receipt-id'] === 'm1'), 5000, 'SEND receipt');
        t.ok(Date.now() < ends, 'a token with exp 3 s ahead (leeway 1 s): the session works meanwhile');
        await waitFor(() => closedAt > 0, 10000, 'the expired session to close').catch(() => {});
        const err = short.frames.find((f) => f.command === 'ERROR');
        t.is(err && err.headers.message, 'credentials expired', 'at exp + leeway: ERROR "credentials expired"');
        t.ok(closedAt >= ends - 50 && closedAt < ends + 2000,
          `... and the connection closes then (${closedAt - ends} ms after exp + leeway), not before`);
        t.like(ex.log(), /credentials of shorty expired: closing/, 'the log says whose credentials expired');
        for (const [c, who] of [[long, 'exp 600 s ahead'], [never, 'no exp (require_exp = false)']]) {
          c.write('SEND', { destination: '/room/clock', receipt: 'm2' }, 'after');
          await waitFor(() => c.frames.some((f) => f.headers['receipt-id'] === 'm2'), 5000, 'SEND receipt').catch(() => {});
          t.ok(c.frames.some((f) => f.headers['receipt-id'] === 'm2') && !c.frames.some((f) => f.command === 'ERROR'),
            `a session with ${who} goes on`);
          c.ws.terminate();
        }
      }
    } finally {
      for (const s of servers) {
        const code = await s.stop();
        if (code !== 0) t.diag(`parleyd exited ${code}:\n${s.log().slice(-2000)}`);
      }
    }

    // ---------------------------------------------------- bad configurations
    const auth = { plugins: 'jwt', allow_open: 'false' };
    const cases = [
      [{ secret: 'short' }, /secret: 5 bytes; an HMAC secret needs at least 32/, 'a 5-byte secret'],
      [{}, /no key: set secret or secret_file/, 'no key at all'],
      [{ secret: SECRET, secret_file: 'x' }, /secret and secret_file are both set/, 'secret and secret_file'],
      [{ public_key: 'missing.pem' }, /public_key = '.*missing\.pem': No such file or directory/, 'a missing public_key file'],
      [{ public_key: 'priv.pem' }, /this is a private key; give the public one/, 'a private key as public_key'],
      [{ public_key: path.join(dir, 'rsa.pem'), algorithms: 'RS256,none' }, /algorithms = 'RS256,none': 'none' is not accepted/, 'algorithms with none'],
      [{ public_key: path.join(dir, 'rsa.pem'), algorithms: 'HS256' }, /algorithms = 'HS256': HS256 needs a secret/, 'HS256 allowed with only an RSA key'],
      [{ public_key: path.join(dir, 'ec.pem'), algorithms: 'RS256' }, /algorithms = 'RS256': RS256 needs public_key with an RSA key/, 'RS256 allowed with an EC key'],
      [{ secret: SECRET, leeway: '-5' }, /\[jwt\] leeway/, 'a negative leeway'],
      [{ public_key: 'small.pem' }, /RSA key of 1024 bits; at least 2048/, 'a 1024-bit RSA key'],
    ];
    const cfgDir = fs.mkdtempSync(path.join(dir, 'cfg-'));
    fs.writeFileSync(path.join(cfgDir, 'priv.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.writeFileSync(path.join(cfgDir, 'small.pem'), jwt.rsaKeys(1024).publicPem);
    for (const [ini, re, what] of cases) {
      const res = await startFails({ auth, jwt: ini }, cfgDir);
      t.ok(res.code !== 0 && re.test(res.stderr), `bad [jwt] config (${what}): exits non-zero saying so`) ||
        t.diag(`exit ${res.code}:\n${res.stderr.slice(-1500)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
