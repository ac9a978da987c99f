#!/usr/bin/env node
'use strict';
// Out of file descriptors: parleyd under an open-file limit of 64 gets 100
// connections.  It must not spin on accept(2) or flood its log: it stops
// accepting for a moment at a time, logs once (with a count), counts it in
// /metrics, and serves the waiting connections once descriptors free up.
const fs = require('fs');
const net = require('net');
const path = require('path');
const t = require('../lib/tap');
const { startParley, sleep, httpGet, PARLEYD } = require('../lib/parley');

const servers = [];
const socks = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;	// utime + stime, in ticks of 1/100 s
}

function stompConnect(port, login) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('error', () => resolve({ s, ok: false }));
    s.on('data', (d) => { buf += d; if (buf.includes('CONNECTED')) resolve({ s, ok: true }); });
    s.on('connect', () => s.write(`CONNECT\naccept-version:1.2\nhost:parley\nlogin:${login}\n\n\0`));
    setTimeout(() => resolve({ s, ok: buf.includes('CONNECTED') }), 15000).unref();
  });
}

t.run(async () => {
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'parley-emfile-'));
  const wrapper = path.join(dir, 'parleyd-64');
  fs.writeFileSync(wrapper, `#!/bin/sh\nulimit -n 64 || exit 111\nexec "${path.resolve(PARLEYD)}" "$@"\n`, { mode: 0o755 });
  const srv = await startParley({ binary: wrapper, ini: { limits: { ip_max_connections: 0, ip_connect_rate: 0 } } });
  servers.push(srv);
  t.like(srv.log(), /open-file limit 64\b/, 'the log says the open-file limit (64)');

  // 100 raw TCP connections to the STOMP port: more than 64 descriptors
  for (let i = 0; i < 100; i++) {
    const s = net.connect(srv.stompPort, '127.0.0.1');
    s.on('error', () => {});
    socks.push(s);
  }
  await sleep(1000);
  const cpu0 = cpuSeconds(srv.proc.pid);
  await sleep(2000);
  const burnt = cpuSeconds(srv.proc.pid) - cpu0;
  t.ok(burnt < 0.5, `no busy loop while out of descriptors: ${burnt.toFixed(2)} s of CPU in 2 s`);
  const lines = srv.log().split('\n').filter((l) => /accept: Too many open files/.test(l));
  t.ok(lines.length >= 1 && lines.length <= 2, `the failure is logged once, not per attempt (${lines.length} line${lines.length === 1 ? '' : 's'})`);
  t.like(lines[0] || '', /not accepting for 100 ms.*open-file limit/, 'the line says what the server does and what to change');
  const m = await httpGet(`${srv.http}/metrics`).catch(() => null);
  // /metrics itself needs a descriptor: free some first if it failed
  if (m === null) { for (const s of socks.splice(0, 40)) s.destroy(); await sleep(300); }
  const m2 = m || await httpGet(`${srv.http}/metrics`);
  const acc = /parley_errors_total\{kind="accept"\} (\d+)/.exec(m2.body);
  t.ok(acc && Number(acc[1]) > 0, `counted in parley_errors_total{kind="accept"} (${acc && acc[1]})`);

  // free descriptors: a new client is served
  for (const s of socks.splice(0)) s.destroy();
  await sleep(500);
  const c = await stompConnect(srv.stompPort, 'after');
  t.ok(c.ok, 'after clients leave, a new client gets CONNECTED');
  c.s.destroy();
  t.is(await srv.stop(), 0, 'clean stop');
  fs.rmSync(dir, { recursive: true, force: true });
});
