#!/usr/bin/env node
'use strict';
// The session fuzzer (contrib/fuzz-session.py) against the ASan/UBSan build:
// random but plausible STOMP over TCP and WebSocket (subscriptions,
// transactions, acks, edits, resume, broken frames and framing) and HTTP
// (REST calls, media uploads raw and multipart, malformed requests), from
// fixed seeds, so a run can be replayed.  parleyd must keep answering /healthz, route a message between
// two new clients at the end, print no sanitizer report and exit 0 on
// SIGTERM with no leak.  Then one more seed on the redis backplane and
// MariaDB storage, whose plugins see the same traffic.  PARLEY_FUZZ_SECONDS
// sets each seed's time (default 8); PARLEY_FUZZ_SEEDS the seeds (default
// 1,2,3).
const { execFile } = require('child_process');
const path = require('path');
const t = require('../lib/tap');
const { startParley, ROOT } = require('../lib/parley');
const { startRedis } = require('../lib/svc-redis');
const { withMariadb } = require('../lib/svc-mariadb');
const { ASAN_BIN, ASAN_PLUGINS, SAN_ENV, sanReport, asanMissing } = require('../lib/asan');

const FUZZ = path.join(ROOT, 'contrib', 'fuzz-session.py');
const SECONDS = Number(process.env.PARLEY_FUZZ_SECONDS || 8);
const SEEDS = (process.env.PARLEY_FUZZ_SEEDS || '1,2,3').split(',').map(Number);

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

function fuzz(srv, seed, ws) {
  return new Promise((resolve) => {
    execFile('python3', [FUZZ, '--stomp', `127.0.0.1:${srv.stompPort}`, '--http', `127.0.0.1:${srv.port}`,
      '--seed', String(seed), '--seconds', String(SECONDS), '--ws', String(ws)],
    { timeout: (SECONDS + 60) * 1000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code === undefined ? -1 : err.code) : 0, out: stdout + stderr });
    });
  });
}

// log_lines_per_minute 0: the checks below read every error line
const LIMITS_OFF = { ip_max_connections: 0, ip_connect_rate: 0, msg_rate: 0, byte_rate: 0, log_lines_per_minute: 0 };

t.run(() => withMariadb(t, async (db) => {
  if (asanMissing()) {
    t.ok(false, asanMissing());
    return;
  }
  // the fuzzer opens connections as fast as it can: no per-address limits;
  // the requests and uploads it leaves hanging end after 1 s (408)
  const srv = await startParley({ binary: ASAN_BIN, env: SAN_ENV, startTimeoutMs: 30000,
    ini: { server: { plugin_dir: ASAN_PLUGINS, http_timeout_ms: 1000 },
      limits: LIMITS_OFF } });
  servers.push(srv);
  let i = 0;
  for (const seed of SEEDS) {
    const ws = [0.5, 0, 1][i++ % 3];	// mixed, TCP only, WebSocket only
    const r = await fuzz(srv, seed, ws);
    const m = /fuzz-session: (\d+) steps, (\d+) messages seen, (\d+) media stored/.exec(r.out);
    t.ok(r.code === 0 && m, `seed ${seed}, ${ws * 100}% WebSocket, ${SECONDS} s: parleyd kept serving` +
      (m ? ` (${m[1]} steps, ${m[2]} messages delivered to the fuzzer, ${m[3]} uploads stored)` : ''));
    if (r.code !== 0) t.diag(r.out.slice(-2000));
    // the fuzzer must reach past CONNECT: messages routed to its clients
    t.ok(m && Number(m[2]) > 100, `seed ${seed}: the traffic went deep enough to route messages`);
    const rep = sanReport(srv.log());
    t.is(rep, '', `seed ${seed}: no sanitizer report`);
    if (rep || srv.exited) break;
  }
  // every kind of error the protocol names came up at least once
  const log = srv.log();
  for (const re of [/WebSocket: unmasked client frame/, /STOMP error: frame too large/, /no such transaction/,
    /bad HTTP request/, /undefined escape sequence/, /media upload refused \(400\): malformed multipart/,
    /STOMP error: media-id refused/, /HTTP request not complete after 1000 ms of silence: 408/])
    t.like(log, re, `the fuzzer reached: ${re.source}`);
  const code = await srv.stop(30000);
  t.is(code, 0, `SIGTERM: exit 0 (got ${code}; 23 is a sanitizer report)`);
  t.is(sanReport(srv.log()), '', 'no sanitizer report at exit (leaks included)');

  // ---------------------------------------------- redis backplane, MariaDB storage
  const redis = await startRedis({});
  try {
    const srv2 = await startParley({ binary: ASAN_BIN, env: SAN_ENV, startTimeoutMs: 30000,
      ini: { server: { plugin_dir: ASAN_PLUGINS, instance_id: 'fuzz' },
        backplane: { plugin: 'redis' }, redis: { url: redis.url },
        storage: { plugin: 'mysql' }, mysql: { socket: db.socket, user: db.user, password: db.password, database: db.database },
        limits: LIMITS_OFF } });
    servers.push(srv2);
    const seed = SEEDS[0] + 100;
    const r = await fuzz(srv2, seed, 0.5);
    const m = /fuzz-session: (\d+) steps, (\d+) messages seen/.exec(r.out);
    t.ok(r.code === 0 && m && Number(m[2]) > 100, `redis + mysql, seed ${seed}: parleyd kept serving and routed messages` +
      (m ? ` (${m[1]} steps, ${m[2]} messages)` : ''));
    if (r.code !== 0) t.diag(r.out.slice(-2000));
    const code2 = await srv2.stop(30000);
    t.is(code2, 0, `redis + mysql: SIGTERM, exit 0 (got ${code2})`);
    const rep = sanReport(srv2.log());
    t.is(rep, '', 'redis + mysql: no sanitizer report (leaks included)');
    if (rep) t.diag(rep);
  } finally {
    await redis.stop();
  }
}));
