'use strict';
// A private MongoDB-wire server for one test: contrib/mongo-test-server.js
// (CongoServer from npm @push.rocks/smartmongo, in memory) on 127.0.0.1 at a
// free port.
//
//   const mongo = await startMongo();
//   mongo.uri            mongodb://127.0.0.1:PORT
//   mongo.log()          its stderr so far
//   await mongo.stop()   SIGTERM, wait for the exit (safe to call twice)
//
// Throws with the reason when the server cannot start (for example when
// node_modules is missing: run contrib/setup-debian.sh --test).
const { spawn } = require('child_process');
const path = require('path');

const LAUNCHER = path.resolve(__dirname, '..', '..', 'contrib', 'mongo-test-server.js');

function startMongo({ startTimeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    // stdin is a pipe: if this process dies, the server sees EOF and stops.
    const p = spawn(process.execPath, [LAUNCHER, '--port', '0', '--exit-on-stdin-close'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', stderr = '', settled = false, exited = null;
    const exitPromise = new Promise((res) => p.on('exit', (code, sig) => { exited = { code, sig }; res(); }));
    const svc = {
      uri: null, proc: p,
      log: () => stderr,
      stop: async (timeoutMs = 10000) => {
        if (exited) return;
        p.kill('SIGTERM');
        const t = setTimeout(() => { if (!exited) p.kill('SIGKILL'); }, timeoutMs);
        await exitPromise;
        clearTimeout(t);
      },
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      p.kill('SIGKILL');
      reject(new Error(`the Mongo test server printed no URI within ${startTimeoutMs} ms: ${stderr}`));
    }, startTimeoutMs);
    p.stderr.on('data', (d) => { stderr += d; });
    p.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0 && !settled) {
        const line = out.slice(0, nl).trim();
        settled = true;
        clearTimeout(timer);
        if (!/^mongodb:\/\/[^\s]+$/.test(line)) {
          p.kill('SIGKILL');
          reject(new Error(`the Mongo test server printed ${JSON.stringify(line)}, not a URI: ${stderr}`));
          return;
        }
        svc.uri = line;
        resolve(svc);
      }
    });
    p.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`cannot run ${LAUNCHER}: ${e.message}`));
    });
    p.on('exit', (code, sig) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`the Mongo test server exited (${code === null ? sig : code}) before printing its URI: ${stderr}`));
    });
    process.on('exit', () => { if (!exited) p.kill('SIGKILL'); });
  });
}

module.exports = { startMongo };
