'use strict';
// Start and stop real parleyd processes for tests.
//
//   const srv = await startParley({ ini: { backplane: { plugin: 'local' } } });
//   srv.port, srv.stompPort, srv.http (base URL), srv.ws (ws://.../ws)
//   srv.dir (private temp dir, also the config's dir), srv.log() (stderr so far)
//   await srv.stop()      SIGTERM, resolves to the exit code
//   srv.kill()            SIGKILL
//   await srv.restart()   stop, then start again with the same config and dir
//
// Environment (set by tests/run-all.sh): PARLEYD (binary), PARLEY_PLUGIN_DIR.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');

const ROOT = path.resolve(__dirname, '..', '..');
const PARLEYD = process.env.PARLEYD ? path.resolve(process.env.PARLEYD) : path.join(ROOT, 'build', 'parleyd');
const PLUGIN_DIR = process.env.PARLEY_PLUGIN_DIR ? path.resolve(process.env.PARLEY_PLUGIN_DIR) : path.join(ROOT, 'build', 'plugins', '.libs');

const { freePort } = require('./ports');

function iniText(sections) {
  let t = '';
  for (const [sec, kv] of Object.entries(sections)) {
    t += `[${sec}]\n`;
    for (const [k, v] of Object.entries(kv)) t += `${k} = ${v}\n`;
  }
  return t;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  });
}

// method, url, body (object => JSON), headers
function httpRequest(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    const h = Object.assign({}, headers);
    if (data !== undefined) h['content-length'] = Buffer.byteLength(data);
    const req = http.request(url, { method, headers: h }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(raw.toString()); } catch (e) { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: raw.toString(), raw, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error('timeout')));
    if (data !== undefined) req.write(data);
    req.end();
  });
}

function basic(login, pass = '') {
  return { authorization: 'Basic ' + Buffer.from(`${login}:${pass}`).toString('base64') };
}

async function startParley(opts = {}) {
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'parley-test-'));
  const port = opts.port || await freePort();
  const stompPort = opts.stompPort === undefined ? await freePort() : opts.stompPort;
  const sections = {
    server: {
      listen: `127.0.0.1:${port}`,
      stomp_listen: stompPort ? `127.0.0.1:${stompPort}` : '',
      plugin_dir: PLUGIN_DIR,
      log_level: 'info',
    },
    // every client of a test comes from 127.0.0.1, and tests read the
    // lines their bad inputs cause: no per-address cap unless a test sets
    // one (87 tests the cap)
    limits: { log_lines_per_minute: 0 },
    sqlite: { path: 'parley.db' },
    fs: { dir: 'media' },
  };
  for (const [sec, kv] of Object.entries(opts.ini || {})) sections[sec] = Object.assign(sections[sec] || {}, kv);
  const cfgFile = path.join(dir, 'parley.ini');
  fs.writeFileSync(cfgFile, iniText(sections));
  // ports this function chose itself (not the caller) may be re-chosen if
  // another process took one before parleyd bound it
  const ownPorts = !opts.port && opts.stompPort === undefined
    && !(opts.ini && opts.ini.server && (opts.ini.server.listen || opts.ini.server.stomp_listen));
  const srv = {
    dir, port, stompPort, cfgFile,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    proc: null, stderr: '', exited: null,
    log() { return this.stderr; },
  };
  async function launch() {
    srv.stderr = '';
    srv.exited = null;
    const p = spawn(opts.binary || PARLEYD, ['-c', cfgFile], { cwd: dir, stdio: ['ignore', 'inherit', 'pipe'], env: Object.assign({}, process.env, opts.env || {}) });
    srv.proc = p;
    p.stderr.on('data', (d) => {
      srv.stderr += d;
      if (process.env.PARLEY_TEST_VERBOSE) process.stderr.write(d);
    });
    srv.exitPromise = new Promise((resolve) => {
      p.on('exit', (code, sig) => { srv.exited = { code, sig }; resolve(code === null ? 128 : code); });
      // a missing or unrunnable binary: fail the start, not the process
      p.on('error', (e) => { srv.stderr += `cannot run ${opts.binary || PARLEYD}: ${e.message}\n`; srv.exited = { code: 127, sig: null }; resolve(127); });
    });
    const deadline = Date.now() + (opts.startTimeoutMs || 15000);
    for (;;) {
      if (srv.exited) throw new Error(`parleyd exited (${JSON.stringify(srv.exited)}) during start-up:\n${srv.stderr}`);
      try {
        const r = await httpGet(`${srv.http}/healthz`);
        if (r.status === 200) break;
      } catch (e) { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`parleyd did not answer /healthz in time:\n${srv.stderr}`);
      await sleep(50);
    }
  }
  srv.stop = async (timeoutMs = 15000) => {
    if (!srv.proc || srv.exited) return srv.exited ? srv.exited.code : 0;
    srv.proc.kill('SIGTERM');
    const t = setTimeout(() => srv.proc.kill('SIGKILL'), timeoutMs);
    const code = await srv.exitPromise;
    clearTimeout(t);
    return code;
  };
  srv.kill = () => { if (srv.proc && !srv.exited) srv.proc.kill('SIGKILL'); return srv.exitPromise; };
  srv.restart = async () => { await srv.stop(); await launch(); };
  // remove the private dir when the test process ends (unless given one)
  if (!opts.dir && !process.env.PARLEY_TEST_KEEP) {
    process.on('exit', () => {
      try { if (srv.proc && !srv.exited) srv.proc.kill('SIGKILL'); } catch (e) { /* gone */ }
      try { fs.rmSync(dir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
    });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      if (!(ownPorts && attempt < 5 && srv.exited && /cannot listen on .*Address already in use/.test(srv.stderr))) throw e;
      // lost the race for a port: pick new ones and say so
      if (process.env.PARLEY_TEST_VERBOSE) process.stderr.write(`# startParley: ${srv.stderr.match(/cannot listen on [^\n]*/)[0]}; new ports\n`);
      srv.port = await freePort();
      srv.stompPort = await freePort();
      srv.http = `http://127.0.0.1:${srv.port}`;
      srv.ws = `ws://127.0.0.1:${srv.port}/ws`;
      sections.server.listen = `127.0.0.1:${srv.port}`;
      sections.server.stomp_listen = `127.0.0.1:${srv.stompPort}`;
      fs.writeFileSync(cfgFile, iniText(sections));
    }
  }
  return srv;
}

// Run a program to completion: { code, stdout, stderr } (code 127 if it
// cannot be started).  env is added to the test's own environment.
function runProgram(cmd, args, { cwd, env } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: Object.assign({}, process.env, env || {}) });
    let stdout = '', stderr = '';
    p.on('error', (e) => resolve({ code: 127, stdout, stderr: stderr + `cannot run ${cmd}: ${e.message}\n` }));
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// Run parleyd to completion with arguments (e.g. ['-t', '-c', file]).
function runParleyd(args, { cwd, env, binary } = {}) {
  return runProgram(binary || PARLEYD, args, { cwd, env });
}

// Poll pred() (may be async; a throw counts as false) every 50 ms until it
// returns something truthy, which is returned; throws after ms.
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    let v = false;
    try { v = await pred(); } catch (e) { v = false; }
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

// One sample of srv's /metrics: name as printed, labels included
// ('parley_x_total{reason="y"}'); its value, or NaN when it is not there.
async function metric(srv, name) {
  const r = await httpGet(`${srv.http}/metrics`);
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\d+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : NaN;
}

// Does srv answer /readyz with 200?
async function ready(srv) {
  try { return (await httpGet(`${srv.http}/readyz`)).status === 200; } catch (e) { return false; }
}

// Every stored chat message of room on srv, oldest first, through REST.
async function history(srv, room, login = 'tester') {
  const out = [];
  let after = '0';
  for (;;) {
    const r = await httpRequest('GET', `${srv.http}/api/v1/rooms/${room}/messages?after=${after}&limit=100`, undefined, basic(login));
    if (r.status !== 200) throw new Error(`history ${srv.http}: ${r.status} ${r.body}`);
    out.push(...r.json.messages);
    if (!r.json.has_more || r.json.messages.length === 0) return out;
    after = r.json.messages[r.json.messages.length - 1].position;
  }
}

// null when every item of list is there once, else "what: item twice".
function once(list, what) {
  const seen = new Set();
  for (const x of list) {
    if (seen.has(x)) return `${what}: ${x} twice`;
    seen.add(x);
  }
  return null;
}

module.exports = { waitFor, ready, history, once, metric, startParley, runParleyd, runProgram, freePort, sleep, httpGet, httpRequest, basic, iniText, PARLEYD, PLUGIN_DIR, ROOT };
