'use strict';
// A private Redis server for one test: Debian's redis-server on 127.0.0.1 at
// a free port (and a unix socket) with its data in a fresh temp dir, AOF on
// (appendfsync always), no RDB snapshots.
//
//   const r = await startRedis({ password: 'secret' });
//   r.port, r.socket, r.dir, r.url ('redis://:secret@127.0.0.1:PORT/0')
//   await r.cmd('XLEN', 'parley:feed')   one command over a fresh connection;
//                                        resolves to the reply (arrays, strings,
//                                        numbers, null); an error reply rejects
//   await r.down()     stop the server (SHUTDOWN via SIGTERM), keep the data
//   await r.up()       start it again on the same port, dir and data
//   r.log()            the server's log so far
//   await r.stop()     stop it and remove the temp dir (safe to call twice)
//
// Parallel-safe: nothing is shared but the binary.  Throws with the reason
// (and the server log) when the server cannot start.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');

function which(names) {
  const dirs = (process.env.PATH || '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/usr/bin']);
  for (const n of names) {
    for (const d of dirs) {
      const p = path.join(d, n);
      try { fs.accessSync(p, fs.constants.X_OK); return p; } catch (e) { /* next */ }
    }
  }
  return null;
}

const { freePort } = require('./ports');

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// RESP2: encode a command, parse one reply from a buffer.
function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// Returns { value, end } or null when buf does not hold a whole reply yet.
function parse(buf, off = 0) {
  if (off >= buf.length) return null;
  const nl = buf.indexOf('\r\n', off);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, nl);
  if (type === '+') return { value: line, end: nl + 2 };
  if (type === '-') { const e = new Error(line); e.redis = true; return { value: e, end: nl + 2 }; }
  if (type === ':') return { value: Number(line), end: nl + 2 };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: nl + 2 };
    if (buf.length < nl + 2 + n + 2) return null;
    return { value: buf.toString('utf8', nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: nl + 2 };
    const out = [];
    let p = nl + 2;
    for (let i = 0; i < n; i++) {
      const r = parse(buf, p);
      if (!r) return null;
      out.push(r.value);
      p = r.end;
    }
    return { value: out, end: p };
  }
  throw new Error('bad RESP reply: ' + JSON.stringify(buf.toString('utf8', off, Math.min(buf.length, off + 40))));
}

// Send commands on one connection; resolves to the replies (errors included
// as Error objects).
function rawCommands(port, password, cmds, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const all = password ? [['AUTH', password]].concat(cmds) : cmds;
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const replies = [];
    const t = setTimeout(() => { s.destroy(); reject(new Error('redis: no reply in time')); }, timeoutMs);
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.on('connect', () => s.write(Buffer.concat(all.map(encode))));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      while ((r = parse(buf)) !== null) {
        replies.push(r.value);
        buf = buf.subarray(r.end);
      }
      if (replies.length >= all.length) {
        clearTimeout(t);
        s.end();
        resolve(password ? replies.slice(1) : replies);
      }
    });
  });
}

async function startRedis(opts = {}) {
  const bin = which(['redis-server']);
  if (!bin) throw new Error('redis-server is not installed: run contrib/setup-debian.sh --test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-redis-'));
  const r = {
    dir,
    port: opts.port || await freePort(),
    socket: path.join(dir, 'redis.sock'),
    password: opts.password || '',
    proc: null, exited: null, stopped: false, stderr: '',
  };
  r.url = `redis://${r.password ? ':' + encodeURIComponent(r.password) + '@' : ''}127.0.0.1:${r.port}/0`;
  r.log = () => {
    let l = r.stderr;
    try { l += fs.readFileSync(path.join(dir, 'redis.log'), 'utf8'); } catch (e) { /* none yet */ }
    return l;
  };
  r.cmd = async (...args) => {
    const [v] = await rawCommands(r.port, r.password, [args]);
    if (v instanceof Error) throw v;
    return v;
  };
  r.up = async () => {
    const args = [
      '--port', String(r.port), '--bind', '127.0.0.1',
      '--unixsocket', r.socket, '--unixsocketperm', '700',
      '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
      '--logfile', path.join(dir, 'redis.log'), '--daemonize', 'no',
      '--protected-mode', 'no',
    ];
    if (r.password) args.push('--requirepass', r.password);
    r.exited = null;
    const p = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    r.proc = p;
    p.stderr.on('data', (d) => { r.stderr += d; });
    r.exitPromise = new Promise((res) => {
      p.on('exit', (code, sig) => { r.exited = { code, sig }; res(); });
      p.on('error', (e) => { r.stderr += `cannot run ${bin}: ${e.message}\n`; r.exited = { code: 127, sig: null }; res(); });
    });
    const deadline = Date.now() + 10000;
    for (;;) {
      if (r.exited) throw new Error(`redis-server exited during start-up (${JSON.stringify(r.exited)}):\n${r.log()}`);
      try {
        if (await r.cmd('PING') === 'PONG') return;
      } catch (e) { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING in time:\n${r.log()}`);
      await sleep(30);
    }
  };
  r.down = async () => {
    if (!r.proc || r.exited) return;
    r.proc.kill('SIGTERM');
    const t = setTimeout(() => { if (!r.exited) r.proc.kill('SIGKILL'); }, 10000);
    await r.exitPromise;
    clearTimeout(t);
  };
  r.stop = async () => {
    if (r.stopped) return;
    r.stopped = true;
    await r.down();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // a test that dies (timeout, exception) still stops its server
  process.on('exit', () => {
    try { if (r.proc && !r.exited) r.proc.kill('SIGKILL'); } catch (e) { /* gone */ }
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
  });
  try {
    // a port this function chose can be taken before redis binds it (a
    // parallel test picked the same one): choose again, up to 5 times
    for (let attempt = 1; ; attempt++) {
      try {
        await r.up();
        break;
      } catch (e) {
        if (opts.port || attempt >= 5 || !/Address already in use/.test(r.log())) throw e;
        r.port = await freePort();
        r.url = `redis://${r.password ? ':' + encodeURIComponent(r.password) + '@' : ''}127.0.0.1:${r.port}/0`;
        try { fs.rmSync(path.join(dir, 'redis.log')); } catch (e2) { /* none */ }
      }
    }
  } catch (e) {
    await r.stop().catch(() => {});
    throw e;
  }
  return r;
}

module.exports = { startRedis, rawCommands };
