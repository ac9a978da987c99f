'use strict';
// A private MariaDB server for one test: Debian's mariadb-server on a fresh
// data directory under a temp dir, listening on 127.0.0.1 at a free port and
// on a socket in that dir, with a database and a password user for Parley.
//
//   const db = await startMariadb();
//   db.host, db.port, db.socket, db.user, db.password, db.database, db.dir
//   db.iniKeys()        the [mysql] section for parleyd / storage_conformance
//   await db.down()     stop the server (SIGTERM), keep the data
//   await db.down({ signal: 'SIGKILL' })   crash it instead
//   await db.up()       start it again on the same port and data
//   await db.query(sql) run SQL as root through the mariadb client; stdout
//   db.log()            the server's error log so far
//   await db.stop()     stop it and remove the temp dir (safe to call twice)
//
//   await withMariadb(t, async (db) => { ... })   for a TAP test: a server
//                       that cannot start is a failed assertion (with the
//                       reason); the server is stopped when fn ends
//
// Works as root (mariadbd then runs with --user=root) and in parallel with
// other tests: nothing is shared but the binaries.  Throws with the reason
// (and the server log) when the server cannot be set up or started.
const { spawn, execFile } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function which(names) {
  const dirs = (process.env.PATH || '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin']);
  for (const n of names) {
    for (const d of dirs) {
      const p = path.join(d, n);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch (e) { /* next */ }
    }
  }
  return null;
}

const { freePort } = require('./ports');

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function run(file, args, { input, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const p = execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, err });
    });
    if (input !== undefined) p.stdin.end(input);
  });
}

// SQL string literal (for the set-up statements only).
function lit(s) { return "'" + String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'"; }

async function startMariadb(opts = {}) {
  const mariadbd = which(['mariadbd', 'mysqld']);
  const installDb = which(['mariadb-install-db', 'mysql_install_db']);
  const client = which(['mariadb', 'mysql']);
  if (!mariadbd || !installDb || !client)
    throw new Error('MariaDB is not installed (mariadbd, mariadb-install-db, mariadb): run contrib/setup-debian.sh --test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-mariadb-'));
  const datadir = path.join(dir, 'data');
  const socket = path.join(dir, 'mariadb.sock');
  const errlog = path.join(dir, 'mariadb.err');
  // A private tmpdir: a starting server removes other servers' temporary
  // tables from a shared one.
  const tmpdir = path.join(dir, 'tmp');
  fs.mkdirSync(tmpdir);
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const userArgs = asRoot ? ['--user=root'] : [];
  const db = {
    host: '127.0.0.1', port: opts.port || await freePort(), socket, dir,
    user: 'parley', password: 'pw-' + Math.random().toString(36).slice(2, 10) + "'x\"",
    database: opts.database || 'parley',
    proc: null, exited: null, stopped: false,
  };
  db.log = () => { try { return fs.readFileSync(errlog, 'utf8'); } catch (e) { return ''; } };

  const inst = await run(installDb, ['--no-defaults', `--datadir=${datadir}`,
    '--auth-root-authentication-method=normal', '--skip-test-db',
    '--skip-name-resolve', `--tmpdir=${tmpdir}`, ...userArgs]);
  if (inst.code !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (${inst.code}): ${inst.stderr || inst.stdout}`);
  }

  db.query = async (sql) => {
    const r = await run(client, ['--no-defaults', `--socket=${socket}`, '-uroot',
      '--batch', '--skip-column-names', '--default-character-set=utf8mb4'], { input: sql, timeoutMs: 60000 });
    if (r.code !== 0) throw new Error(`mariadb: ${sql.slice(0, 200)}: ${r.stderr}`);
    return r.stdout;
  };

  async function ping() {
    const r = await run(client, ['--no-defaults', `--socket=${socket}`, '-uroot',
      '--connect-timeout=2', '-e', 'SELECT 1'], { timeoutMs: 10000 });
    return r.code === 0;
  }

  db.up = async () => {
    if (db.proc && !db.exited) return;
    db.exited = null;
    const p = spawn(mariadbd, ['--no-defaults', `--datadir=${datadir}`,
      `--socket=${socket}`, `--port=${db.port}`, '--bind-address=127.0.0.1',
      `--tmpdir=${tmpdir}`,
      `--pid-file=${path.join(dir, 'mariadbd.pid')}`, `--log-error=${errlog}`,
      '--skip-name-resolve', '--skip-log-bin', '--innodb-buffer-pool-size=64M',
      '--innodb-log-file-size=32M', '--innodb-flush-log-at-trx-commit=1',
      '--max-connections=200', '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_bin', ...userArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    db.proc = p;
    let stderr = '';
    p.stderr.on('data', (d) => { stderr += d; });
    db.exitPromise = new Promise((resolve) => p.on('exit', (code, sig) => { db.exited = { code, sig }; resolve(); }));
    const deadline = Date.now() + (opts.startTimeoutMs || 60000);
    for (;;) {
      if (db.exited) throw new Error(`mariadbd exited during start-up (${JSON.stringify(db.exited)}): ${stderr}\n${db.log()}`);
      if (await ping()) return;
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`mariadbd did not accept connections within ${opts.startTimeoutMs || 60000} ms:\n${db.log()}`);
      }
      await sleep(100);
    }
  };

  db.down = async ({ signal = 'SIGTERM', timeoutMs = 60000 } = {}) => {
    if (!db.proc || db.exited) return;
    db.proc.kill(signal);
    const t = setTimeout(() => { if (!db.exited) db.proc.kill('SIGKILL'); }, timeoutMs);
    await db.exitPromise;
    clearTimeout(t);
  };

  db.stop = async () => {
    if (db.stopped) return;
    db.stopped = true;
    try { await db.down(); } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  };

  db.iniKeys = () => ({
    host: db.host, port: String(db.port), user: db.user, password: db.password,
    database: db.database,
  });

  // Never leave a server or its files behind, even when the test process
  // ends early (process.exit, an uncaught error, SIGTERM/SIGINT/SIGHUP).
  process.on('exit', () => {
    if (db.proc && !db.exited) db.proc.kill('SIGKILL');
    if (!db.stopped) {
      try { fs.rmSync(dir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
    }
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    if (process.listenerCount(sig) === 0) process.once(sig, () => process.exit(128 + os.constants.signals[sig]));
  }

  try {
    // a port this function chose can be taken before mariadbd binds it (a
    // parallel test picked the same one): choose again, up to 5 times
    for (let attempt = 1; ; attempt++) {
      try {
        await db.up();
        break;
      } catch (e) {
        if (opts.port || attempt >= 5 || !/Address already in use/.test(e.message)) throw e;
        db.port = await freePort();
        try { fs.rmSync(errlog); } catch (e2) { /* none */ }
      }
    }
    await db.query(`CREATE DATABASE \`${db.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n` +
      `CREATE USER ${lit(db.user)}@'127.0.0.1' IDENTIFIED BY ${lit(db.password)};\n` +
      `CREATE USER ${lit(db.user)}@'localhost' IDENTIFIED BY ${lit(db.password)};\n` +
      `GRANT ALL ON \`${db.database}\`.* TO ${lit(db.user)}@'127.0.0.1';\n` +
      `GRANT ALL ON \`${db.database}\`.* TO ${lit(db.user)}@'localhost';\n`);
  } catch (e) {
    await db.stop().catch(() => {});
    throw e;
  }
  return db;
}

async function withMariadb(t, fn) {
  let db;
  try {
    db = await startMariadb();
  } catch (e) {
    t.ok(false, `MariaDB starts for the test: ${e.message}`);
    return;
  }
  try {
    await fn(db);
  } finally {
    await db.stop();
  }
}

module.exports = { startMariadb, withMariadb };
