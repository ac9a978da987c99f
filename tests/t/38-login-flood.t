#!/usr/bin/env node
'use strict';
// A flood of logins does not hold back storage.  Password hashes are slow
// on purpose (here sha512crypt with 1,000,000 rounds, about 0.2 s each),
// and checking them runs on the worker threads that also commit messages
// to storage.  Client jobs (logins, REST and media requests) wait behind
// the server's own jobs and use at most workers - 1 threads, so while 48
// logins queue for seconds, a connected client's SEND is still committed
// and answered with its RECEIPT at once -- and the logins all succeed.
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('../lib/tap');
const { startParley } = require('../lib/parley');
const { stompTcp } = require('../lib/stomp-raw');
const { mkpasswd, mkpasswdMissing } = require('../lib/mkpasswd');

const FLOOD = 48;
const ROUNDS = 1000000;


t.run(async () => {
  if (mkpasswdMissing(t)) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-flood-'));
  let srv;
  try {
    const t0 = Date.now();
    const hash = mkpasswd('sha-512', 'pw', { rounds: ROUNDS });
    const hashMs = Date.now() - t0;
    const lines = ['writer:' + hash];
    for (let i = 0; i < FLOOD; i++) lines.push(`u${i}:${hash}`);
    fs.writeFileSync(path.join(dir, 'users.txt'), lines.join('\n') + '\n');
    srv = await startParley({
      dir,
      ini: {
        // the last logins wait for 47 hashes: on a loaded machine (the
        // suite runs tests side by side) that is past the default 10 s
        // for CONNECT, which is not what this test is about
        server: { workers: 4, connect_timeout_ms: 60000 },
        auth: { plugins: 'users', allow_open: 'false' },
        users: { file: 'users.txt' },
        limits: { msg_rate: 0, ip_connect_rate: 0 },
      },
    });
    const w = await stompTcp(srv.stompPort, 'writer', { passcode: 'pw', ms: 20000 });
    w.write('SUBSCRIBE', { destination: '/room/r', id: 's', receipt: 'sub' });
    await w.wait(() => w.frames.some((f) => f.headers['receipt-id'] === 'sub'), 5000, 'SUBSCRIBE receipt');

    // the flood: every login's hash check queued at once
    const floodStart = Date.now();
    const done = [];
    const logins = [];
    for (let i = 0; i < FLOOD; i++)
      logins.push(stompTcp(srv.stompPort, `u${i}`, { passcode: 'pw', ms: 60000 }).then((c) => { done.push(Date.now()); return c; }));
    await new Promise((r) => setTimeout(r, 150));

    // a SEND needs a worker for its storage commit before its RECEIPT
    const sent = Date.now();
    w.write('SEND', { destination: '/room/r', receipt: 'm' }, 'during the flood');
    await w.wait(() => w.frames.some((f) => f.headers['receipt-id'] === 'm'), 30000, 'SEND receipt').catch(() => {});
    const receiptMs = Date.now() - sent;
    const loggedInBefore = done.length;
    const clients = await Promise.all(logins.map((p) => p.catch(() => null)));
    const floodMs = Math.max(...done) - floodStart;
    t.diag(`one hash here: ${hashMs} ms; ${FLOOD} logins took ${floodMs} ms; the RECEIPT came ${receiptMs} ms after its SEND, with ${loggedInBefore} of them logged in`);
    t.is(clients.filter((c) => c && c.connected).length, FLOOD, `all ${FLOOD} logins with slow hashes succeed`);
    t.ok(floodMs > 1000, `the logins queue for over a second (${floodMs} ms): the flood is real`);
    t.ok(receiptMs < floodMs / 3 && loggedInBefore < FLOOD / 2,
      `a SEND during the flood is stored and answered in ${receiptMs} ms, with ${loggedInBefore} of ${FLOOD} logins done: storage does not wait behind them`);
    const msg = w.frames.find((f) => f.command === 'MESSAGE' && f.body.toString() === 'during the flood');
    t.ok(msg !== undefined, 'and the message reached the subscriber');
    for (const c of clients) if (c) c.sock.destroy();
    w.sock.destroy();
    t.is(await srv.stop(), 0, 'clean stop');
  } finally {
    if (srv && !srv.exited) srv.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
