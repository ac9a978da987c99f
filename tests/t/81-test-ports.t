#!/usr/bin/env node
'use strict';
// The ports the tests and the benchmark scripts give their servers: below
// the kernel's ephemeral range, so the thousands of client connections a
// benchmark test opens cannot take one before the server binds it (CI once
// failed on exactly that), never the same one twice in a process, and a
// parleyd that still loses the race is started again on new ports.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const ports = require('../lib/ports');
const { runProgram } = require('../lib/parley');
const { generator } = require('../lib/bench');

t.run(async () => {
  const [lo] = ports.ephemeralRange();
  t.ok(lo > 11000, `the ephemeral range starts at ${lo}, leaving room below it`);

  const got = [];
  for (let i = 0; i < 50; i++) got.push(await ports.freePort());
  t.ok(got.every((p) => p >= 10000 && p < lo), `freePort: 50 ports, all in [10000, ${lo})`);
  t.is(new Set(got).size, got.length, 'freePort: no port handed out twice');

  // a port another process holds (as a client's connected socket would)
  const held = net.createServer();
  await new Promise((r) => held.listen(got[0], '127.0.0.1', r));

  // the benchmark scripts' `parley-bench port`
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-ports-'));
  const pb = await generator(tmp);
  const bp = [];
  for (let i = 0; i < 5; i++) {
    const r = await runProgram(pb, ['port']);
    bp.push(Number(r.stdout.trim()));
  }
  t.ok(bp.every((p) => p >= 10000 && p < lo), `parley-bench port: ${bp.join(', ')} below ${lo}`);

  // startParley re-picks when its first port is taken before parleyd binds:
  // hand it the held port first
  const orig = ports.freePort;
  let first = true;
  ports.freePort = async () => { if (first) { first = false; return got[0]; } return orig(); };
  delete require.cache[require.resolve('../lib/parley')];
  const { startParley, httpGet } = require('../lib/parley');
  const srv = await startParley();
  ports.freePort = orig;
  t.ok(srv.port !== got[0], `startParley moved off the taken port ${got[0]} to ${srv.port}`);
  const h = await httpGet(`${srv.http}/healthz`);
  t.is(h.status, 200, 'and the server answers there');
  t.is(await srv.stop(), 0, 'and stops cleanly');
  held.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
