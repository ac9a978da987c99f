#!/usr/bin/env node
'use strict';
// Three parleyd instances on one Redis backplane behind a real nginx running
// contrib/nginx.conf (ports and paths adapted): clients connected directly
// and through nginx chat in one room and all see every message once, in the
// same order; a client leaves A, misses messages posted on B and resumes on
// C with its last position: exactly the missed ones, recovered=true, then
// live ones.  /metrics is not reachable through nginx.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { ROOT, freePort, httpGet, sleep, startParley, waitFor } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');
const { startRedis } = require('../lib/svc-redis');

const ROOM = 'plaza';

async function startNginx(ports) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-nginx-'));
  const port = await freePort();
  let conf = fs.readFileSync(path.join(ROOT, 'contrib', 'nginx.conf'), 'utf8');
  conf = conf
    .replace(/^pid .*;/m, `pid ${dir}/nginx.pid;`)
    .replace(/^error_log .*;/m, `error_log ${dir}/error.log warn;`)
    .replace(/access_log [^;]*;/, `access_log ${dir}/access.log;`)
    .replace(/worker_processes [^;]*;/, 'worker_processes 1;')
    .replace(/worker_connections [^;]*;/, 'worker_connections 1024;')
    .replace(/(upstream parley \{[^}]*?least_conn;)[^}]*?(keepalive)/s,
      (m, head, tail) => `${head}\n${ports.map((p) => `\t\tserver 127.0.0.1:${p} max_fails=3 fail_timeout=10s;`).join('\n')}\n\t\t${tail}`)
    .replace(/listen 80;/, `listen 127.0.0.1:${port};`);
  // temp paths nginx would otherwise put under /var/lib/nginx
  conf = conf.replace(/http \{/, `http {\n\tclient_body_temp_path ${dir}/body;\n\tproxy_temp_path ${dir}/proxy;\n\tfastcgi_temp_path ${dir}/fcgi;\n\tuwsgi_temp_path ${dir}/uwsgi;\n\tscgi_temp_path ${dir}/scgi;`);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => fs.existsSync(b));
  if (!bin) throw new Error('nginx is not installed (contrib/setup-debian.sh --test installs it)');
  execFileSync(bin, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'pipe' });
  const p = spawn(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => p.on('exit', r));
  process.on('exit', () => { try { p.kill('SIGKILL'); } catch (e) { /* gone */ } });
  await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/healthz`)).status === 200, 10000, `nginx on ${port}: ${err}`);
  return {
    port, dir, ws: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}`,
    async stop() { p.kill('SIGQUIT'); await Promise.race([exited, sleep(5000)]); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

t.run(async () => {
  const redis = await startRedis();
  const servers = [];
  let nginx;
  const clients = [];
  try {
    for (const id of ['a', 'b', 'c']) {
      servers.push(await startParley({ ini: {
        server: { instance_id: id },
        backplane: { plugin: 'redis' },
        redis: { url: redis.url },
        limits: { msg_rate: 0 },
      } }));
    }
    const [A, B, C] = servers;
    for (const s of servers) await waitFor(async () => (await httpGet(`${s.http}/readyz`)).status === 200, 15000, 'ready');
    nginx = await startNginx(servers.map((s) => s.port));
    t.ok(true, `nginx (contrib/nginx.conf) in front of 3 instances on :${nginx.port}`);
    t.is((await httpGet(`${nginx.http}/metrics`)).status, 404, '/metrics is not exposed through nginx');

    const direct = [await connectWs(A, { login: 'ann' }), await connectWs(B, { login: 'ben' })];
    const viaProxy = [await connectWs(nginx, { login: 'cat', url: nginx.ws }), await connectWs(nginx, { login: 'dan', url: nginx.ws })];
    clients.push(...direct, ...viaProxy);
    for (const c of clients) c.subscribe(ROOM);
    await sleep(300);
    const sends = [];
    for (let i = 0; i < 5; i++) for (const c of clients) sends.push(c.send(ROOM, `${c.client.connectHeaders.login} ${i}`));
    await Promise.all(sends);
    const chatOf = (c) => c.received.filter((m) => !m.headers.event);
    for (const c of clients) await c.wait(() => chatOf(c).length >= 20, 10000, 'all 20 messages');
    const orders = clients.map((c) => chatOf(c).map((m) => m.headers.position).join(','));
    t.ok(clients.every((c) => chatOf(c).length === 20), 'every client (direct and through nginx) got exactly 20 messages');
    t.ok(orders.every((o) => o === orders[0]), 'in the same order everywhere');
    t.ok(new Set(orders[0].split(',')).size === 20, 'no duplicate positions');

    // resume across instances: leave A, miss messages posted on B, come back on C
    const leaver = direct[0];
    const last = chatOf(leaver)[chatOf(leaver).length - 1].headers.position;
    await leaver.close();
    clients.splice(clients.indexOf(leaver), 1);
    const missed = [];
    for (let i = 0; i < 10; i++) missed.push((await direct[1].send(ROOM, `missed ${i}`)).headers.position);
    const back = await connectWs(C, { login: 'ann' });
    clients.push(back);
    back.subscribe(ROOM, { since: last });
    await back.wait(() => back.received.some((m) => m.headers.event === 'resumed'), 10000, 'resumed marker');
    const idx = back.received.findIndex((m) => m.headers.event === 'resumed');
    const replayed = back.received.slice(0, idx).filter((m) => !m.headers.event);
    t.deep(replayed.map((m) => m.headers.position), missed, 'resumed on C: exactly the 10 messages missed (posted on B), in order');
    t.is(back.received[idx].headers.recovered, 'true', 'recovered=true');
    t.is(back.received[idx].headers.position, missed[missed.length - 1], 'the marker carries the last replayed position');
    const live = await viaProxy[0].send(ROOM, 'live after resume');
    await back.wait(() => back.received.some((m) => m.body === 'live after resume'), 5000, 'live message');
    const after = back.received.slice(idx + 1).filter((m) => !m.headers.event);
    t.deep(after.map((m) => m.headers.position), [live.headers.position], 'then live, no duplicate at the seam');
  } finally {
    for (const c of clients) { try { await c.close(); } catch (e) { /* closed */ } }
    if (nginx) await nginx.stop();
    for (const s of servers) t.is(await s.stop(), 0, `instance on :${s.port} exits 0`);
    await redis.stop();
  }
});
