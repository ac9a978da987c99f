#!/usr/bin/env node
'use strict';
// A MongoDB-wire-compatible in-memory server for tests and demos: CongoServer
// from the npm package @push.rocks/smartmongo (installed by
// contrib/setup-debian.sh --test).  Not a MongoDB: it keeps everything in
// memory and does not enforce unique indexes other than _id.
//
//   node contrib/mongo-test-server.js [--host 127.0.0.1] [--port 0]
//       [--exit-on-stdin-close]
//
// Port 0 (the default) picks a free port.  The first line on stdout is the
// connection URI (mongodb://host:port); the server runs until SIGTERM or
// SIGINT, then stops and exits 0.  Start-up errors exit 1 with the reason on
// stderr.  With --exit-on-stdin-close it also stops when its standard input
// reaches end of file (a test harness that dies closes the pipe).

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: mongo-test-server.js [--host ADDR] [--port N] ' +
    '[--exit-on-stdin-close]\n');
  process.exit(code);
}

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 0, stdinWatch: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') usage(0);
    if (a === '--exit-on-stdin-close') {
      o.stdinWatch = true;
      continue;
    }
    if ((a === '--host' || a === '--port') && i + 1 < argv.length) {
      o[a.slice(2)] = argv[++i];
    } else {
      process.stderr.write(`mongo-test-server: unknown argument ${a}\n`);
      usage(2);
    }
  }
  o.port = Number(o.port);
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    process.stderr.write(`mongo-test-server: bad port ${o.port}\n`);
    process.exit(2);
  }
  return o;
}

// Two CongoServer 2.2.0 bugs that make it unlike MongoDB for what Parley
// does, fixed here so tests exercise the plugin rather than the server:
// - an update deep-copies the document as plain objects, so BSON values
//   without a JS equivalent (binary, int64 above 2^53) come back as
//   embedded documents after any $set: keep such values as they are;
// - sorting compares int64 values above 2^53 (kept as bson Long) as
//   strings: compare integers as integers and strings by their bytes, as
//   MongoDB's default collation does.
function shim(congodb) {
  const { UpdateEngine, QueryEngine } = congodb;
  const keep = new Set(['Binary', 'Long', 'Decimal128', 'Double', 'Int32', 'MinKey', 'MaxKey', 'BSONRegExp', 'Code']);
  if (UpdateEngine && typeof UpdateEngine.deepClone === 'function') {
    const deepClone = UpdateEngine.deepClone;
    UpdateEngine.deepClone = function (obj) {
      if (obj !== null && typeof obj === 'object' && keep.has(obj._bsontype)) return obj;
      return deepClone.call(this, obj);
    };
  }
  if (QueryEngine && typeof QueryEngine.compareValues === 'function') {
    const compareValues = QueryEngine.compareValues;
    const int = (v) => {
      if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
      if (v !== null && typeof v === 'object' && v._bsontype === 'Long') return BigInt(v.toString());
      return undefined;
    };
    QueryEngine.compareValues = function (a, b) {
      const x = int(a), y = int(b);
      if (x !== undefined && y !== undefined) return x < y ? -1 : x > y ? 1 : 0;
      if (typeof a === 'string' && typeof b === 'string') {
        const p = Buffer.from(a), q = Buffer.from(b);
        return Buffer.compare(p, q);
      }
      return compareValues.call(this, a, b);
    };
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // The package is an ES module; its CongoServer lives in the congodb
  // namespace of the main entry.
  const { congodb } = await import('@push.rocks/smartmongo');
  shim(congodb);
  const server = new congodb.CongoServer({ host: opts.host, port: opts.port,
    storage: 'memory' });
  await server.start();
  // With port 0 the server object still reports 0: ask the socket.
  // eslint-disable-next-line dot-notation
  const addr = server['server'] && server['server'].address();
  const port = addr && typeof addr === 'object' ? addr.port : server.port;
  process.stdout.write(`mongodb://${opts.host}:${port}\n`);

  let stopping = false;
  const stop = async (sig) => {
    if (stopping) return;
    stopping = true;
    try {
      await server.stop();
    } catch (e) {
      process.stderr.write(`mongo-test-server: stop after ${sig}: ${e && e.message}\n`);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.stdinWatch) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
}

main().catch((e) => {
  process.stderr.write(`mongo-test-server: cannot start: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
