#!/usr/bin/env node
'use strict';
// Storage conformance suite against the mysql plugin, on a private MariaDB
// started for this test.  The suite's TAP passes through as it is; the
// plugin connects once over TCP and once over the Unix socket.
const path = require('path');
const { spawn } = require('child_process');
const { startMariadb } = require('../lib/svc-mariadb');

const build = path.resolve(process.env.PARLEY_BUILD || 'build');
const suite = path.join(build, 'tests', 'unit', 'storage_conformance');
const plugin = path.join(build, 'plugins', '.libs', 'mysql.so');

function fail(why) {
  process.stdout.write(`not ok 1 - ${why.split('\n')[0]}\n`);
  for (const l of why.split('\n').slice(1)) process.stdout.write(`# ${l}\n`);
  process.stdout.write('1..1\n');
  process.exitCode = 1;
}

(async () => {
  let db;
  try {
    db = await startMariadb();
  } catch (e) {
    fail(`MariaDB starts for the test: ${e.message}`);
    return;
  }
  try {
    const kv = Object.entries(db.iniKeys()).map(([k, v]) => `${k}=${v}`);
    kv.push('pool_size=4', 'connect_timeout_ms=3000');
    const code = await new Promise((resolve) => {
      const p = spawn(suite, [plugin, ...kv], { stdio: ['ignore', 'inherit', 'inherit'] });
      p.on('error', (e) => { fail(`cannot run ${suite}: ${e.message}`); resolve(1); });
      p.on('exit', (c, sig) => resolve(c === null ? 128 : c));
    });
    process.exitCode = code;
  } finally {
    await db.stop();
  }
})().catch((e) => { fail(`unexpected: ${e.stack}`); });
