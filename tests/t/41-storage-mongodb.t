#!/usr/bin/env node
'use strict';
// Storage conformance suite against the mongodb plugin, on a private
// MongoDB-wire server (contrib/mongo-test-server.js) started for this test.
// The suite's TAP passes through as it is.
const path = require('path');
const { spawn } = require('child_process');
const { startMongo } = require('../lib/svc-mongo');

const build = path.resolve(process.env.PARLEY_BUILD || 'build');
const suite = path.join(build, 'tests', 'unit', 'storage_conformance');
const plugin = path.join(build, 'plugins', '.libs', 'mongodb.so');

function fail(why) {
  process.stdout.write(`not ok 1 - ${why.split('\n')[0]}\n`);
  for (const l of why.split('\n').slice(1)) process.stdout.write(`# ${l}\n`);
  process.stdout.write('1..1\n');
  process.exitCode = 1;
}

(async () => {
  let mongo;
  try {
    mongo = await startMongo();
  } catch (e) {
    fail(`the Mongo test server starts: ${e.message}`);
    return;
  }
  try {
    const kv = [`uri=${mongo.uri}`, 'database=parley_conformance', 'write_concern=1', 'pool_size=4'];
    const code = await new Promise((resolve) => {
      const p = spawn(suite, [plugin, ...kv], { stdio: ['ignore', 'inherit', 'inherit'] });
      p.on('error', (e) => { fail(`cannot run ${suite}: ${e.message}`); resolve(1); });
      p.on('exit', (c) => resolve(c === null ? 128 : c));
    });
    process.exitCode = code;
  } finally {
    await mongo.stop();
  }
})().catch((e) => { fail(`unexpected: ${e.stack}`); });
