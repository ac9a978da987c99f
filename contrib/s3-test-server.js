#!/usr/bin/env node
'use strict';
// A throw-away S3-compatible server for tests and demos: npm
// @20minutes/s3rver (checks SigV4 signatures; a wrong secret gets 403).
//
//   node contrib/s3-test-server.js --dir DIR [--address 127.0.0.1]
//       [--port 0] [--bucket NAME]... [--key ACCESS:SECRET]...
//       [--exit-on-stdin-close] [--verbose]
//
// Prints its endpoint (http://ADDRESS:PORT) as the first line of stdout,
// then serves until SIGTERM/SIGINT (or, with --exit-on-stdin-close, until
// its stdin closes: a test harness that dies cannot leave it behind).
// --verbose logs each request (method, path, status) on stdout, after the
// endpoint line.  Buckets named with --bucket exist from the start; --key
// adds an access key pair (the built-in pair S3RVER:S3RVER always works).  Requests without any
// signature are served too (s3rver's anonymous access), so tests that
// check credentials must sign with a wrong secret, not omit it.
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write(`s3-test-server: ${msg}\n`);
  process.stderr.write('usage: s3-test-server.js --dir DIR [--address A] [--port P] ' +
    '[--bucket NAME]... [--key ACCESS:SECRET]... [--exit-on-stdin-close] ' +
    '[--verbose]\n');
  process.exit(2);
}

const opts = { address: '127.0.0.1', port: 0, dir: null, buckets: [], keys: [], verbose: false, stdin: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
  if (a === '--dir') opts.dir = val();
  else if (a === '--address') opts.address = val();
  else if (a === '--port') opts.port = Number(val());
  else if (a === '--bucket') opts.buckets.push(val());
  else if (a === '--key') {
    const kv = val(), c = kv.indexOf(':');
    if (c <= 0) usage(`--key wants ACCESS:SECRET, got '${kv}'`);
    opts.keys.push([kv.slice(0, c), kv.slice(c + 1)]);
  } else if (a === '--verbose') opts.verbose = true;
  else if (a === '--exit-on-stdin-close') opts.stdin = true;
  else usage(`unknown argument '${a}'`);
}
if (!opts.dir) usage('--dir is required');
if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');

let S3rver, account;
try {
  S3rver = require('@20minutes/s3rver');
  // key pairs live in s3rver's account registry (no option for them)
  account = require(path.join(path.dirname(require.resolve('@20minutes/s3rver')), 'models', 'account'));
} catch (e) {
  process.stderr.write(`s3-test-server: cannot load @20minutes/s3rver (run npm ci): ${e.message}\n`);
  process.exit(1);
}
for (const [k, s] of opts.keys) account.DUMMY_ACCOUNT.createKeyPair(k, s);

const server = new S3rver({
  address: opts.address,
  port: opts.port,
  directory: path.resolve(opts.dir),
  silent: !opts.verbose,
  vhostBuckets: false,
  configureBuckets: opts.buckets.map((name) => ({ name })),
});

server.run().then((addr) => {
  const host = addr.family === 'IPv6' || addr.family === 6 ? `[${addr.address}]` : addr.address;
  process.stdout.write(`http://${host}:${addr.port}\n`);
}, (e) => {
  process.stderr.write(`s3-test-server: cannot start: ${e.message}\n`);
  process.exit(1);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (opts.stdin) {
  // a parent that dies closes our stdin: do not outlive it
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
