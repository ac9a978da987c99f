'use strict';
// A private S3-compatible server for one test: contrib/s3-test-server.js
// (npm @20minutes/s3rver, which checks SigV4 signatures) on 127.0.0.1 at a
// free port, storing under a fresh temp dir.
//
//   const s3 = await startS3({ buckets: ['media'], keys: [['AK', 'SECRET']] });
//   s3.endpoint        http://127.0.0.1:PORT
//   s3.dir             where the objects are (s3rver's file layout)
//   s3.objects(bucket) keys stored in bucket (from s3.dir)
//   s3.log()           its log so far (s3rver's info lines: objects and
//                      parts stored, errors)
//   await s3.down()    stop it, keep the data (an outage)
//   await s3.up()      start it again on the same port and data
//   await s3.stop()    SIGTERM, wait for the exit, remove the dir (safe twice)
//
// Throws with the reason when the server cannot start (for example when
// node_modules is missing: run contrib/setup-debian.sh --test).
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const LAUNCHER = path.resolve(__dirname, '..', '..', 'contrib', 's3-test-server.js');

function listKeys(dir) {
  // s3rver keeps KEY._S3rver_object (plus metadata) per object
  const out = [];
  (function walk(d, rel) {
    let ents = [];
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch (e) { return; }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else if (e.name.endsWith('._S3rver_object')) out.push(r.slice(0, -'._S3rver_object'.length));
    }
  })(dir, '');
  return out.sort();
}

function launch(dir, port, buckets, keys, startTimeoutMs) {
  const args = [LAUNCHER, '--dir', dir, '--port', String(port), '--exit-on-stdin-close', '--verbose'];
  for (const b of buckets) args.push('--bucket', b);
  for (const [k, s] of keys) args.push('--key', `${k}:${s}`);
  return new Promise((resolve, reject) => {
    // stdin is a pipe: if this process dies, the server sees EOF and stops.
    const p = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const inst = { proc: p, endpoint: null, out: '', exited: null };
    inst.exitPromise = new Promise((res) => p.on('exit', (code, sig) => { inst.exited = { code, sig }; res(); }));
    let first = '', settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      p.kill('SIGKILL');
      reject(new Error(`the S3 test server printed no endpoint within ${startTimeoutMs} ms: ${inst.out}`));
    }, startTimeoutMs);
    p.stderr.on('data', (d) => { inst.out += d; });
    p.stdout.on('data', (d) => {
      if (settled) { inst.out += d; return; }
      first += d;
      const nl = first.indexOf('\n');
      if (nl < 0) return;
      const line = first.slice(0, nl).trim();
      inst.out += first.slice(nl + 1);
      settled = true;
      clearTimeout(timer);
      if (!/^http:\/\/[^\s]+$/.test(line)) {
        p.kill('SIGKILL');
        reject(new Error(`the S3 test server printed ${JSON.stringify(line)}, not an endpoint: ${inst.out}`));
        return;
      }
      inst.endpoint = line;
      resolve(inst);
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
      reject(new Error(`the S3 test server exited (${code === null ? sig : code}) before printing its endpoint: ${inst.out}`));
    });
    process.on('exit', () => { if (!inst.exited) p.kill('SIGKILL'); });
  });
}

async function stopInst(inst, timeoutMs = 10000) {
  if (!inst || inst.exited) return;
  inst.proc.kill('SIGTERM');
  const t = setTimeout(() => { if (!inst.exited) inst.proc.kill('SIGKILL'); }, timeoutMs);
  await inst.exitPromise;
  clearTimeout(t);
}

async function startS3({ buckets = ['parley'], keys = [], startTimeoutMs = 20000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-s3-'));
  let inst, logs = '';
  try {
    inst = await launch(dir, 0, buckets, keys, startTimeoutMs);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const port = Number(new URL(inst.endpoint).port);
  const svc = {
    endpoint: inst.endpoint, dir, port,
    // eslint-disable-next-line no-control-regex
    log: () => (logs + (inst ? inst.out : '')).replace(/\x1b\[[0-9;]*m/g, ''),
    objects: (bucket) => listKeys(path.join(dir, bucket)),
    // stop the server, keep its data; up() starts it again on the same port
    down: async () => { logs += inst.out; await stopInst(inst); },
    up: async () => { inst = await launch(dir, port, [], keys, startTimeoutMs); },
    stop: async () => {
      await stopInst(inst);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return svc;
}

module.exports = { startS3 };
