#!/usr/bin/env node
'use strict';
// Positions that collide lose messages in storage; the server must say so.
// Two instances with the "local" backplane on one sqlite database (a
// misconfiguration: local positions are per process) publish bursts to one
// room at the same time, so both hand out the same millisecond-based
// positions.  Storage keeps the first message at each position; every one it
// skips is counted in parley_storage_position_conflicts_total and logged, so
// what is stored plus what is counted is exactly what was sent.
const t = require('../lib/tap');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { startParley, httpGet, history } = require('../lib/parley');

// One STOMP/TCP client sending n messages back to back once CONNECTED;
// resolves when the RECEIPT of the last one (durable in storage) arrived.
function burst(port, tag, n) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${tag}: no receipt in 20 s`)); }, 20000);
    s.on('error', reject);
    let sending = false;
    s.on('data', (d) => {
      buf += d;
      if (!sending && buf.startsWith('CONNECTED')) {
        sending = true;
        let out = '';
        for (let i = 0; i < n; i++)
          out += `SEND\ndestination:/room/clash\n${i === n - 1 ? `receipt:${tag}-last\n` : ''}\n${tag} ${i}\0`;
        s.write(out);
      }
      if (buf.includes(`receipt-id:${tag}-last`)) {
        clearTimeout(timer);
        s.end('DISCONNECT\n\n\0');
        resolve(buf);
      } else if (buf.includes('ERROR')) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`${tag}: ${buf}`));
      }
    });
    s.on('connect', () => s.write('CONNECT\naccept-version:1.2\nlogin:alice\nheart-beat:0,0\n\n\0'));
  });
}

async function conflicts(srv) {
  const r = await httpGet(`${srv.http}/metrics`);
  const m = /^parley_storage_position_conflicts_total(?:\{[^}]*\})? (\d+)/m.exec(r.body);
  return m ? Number(m[1]) : 0;
}

t.run(async () => {
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-conflicts-'));
  const ini = { sqlite: { path: path.join(shared, 'shared.db') }, limits: { msg_rate: 0, byte_rate: 0 } };
  const a = await startParley({ ini });
  const b = await startParley({ ini });
  try {
    let sent = 0, rounds = 0, c = 0;
    // bursts overlap in time; a few rounds make a collision certain
    while (rounds < 20 && c === 0) {
      rounds++;
      await Promise.all([burst(a.stompPort, `a${rounds}`, 300), burst(b.stompPort, `b${rounds}`, 300)]);
      sent += 600;
      c = (await conflicts(a)) + (await conflicts(b));
    }
    t.ok(c > 0, `concurrent bursts collided: ${c} position conflict(s) counted after ${rounds} round(s)`);
    const line = /error \[sqlite\] \d+ message\(s\) not stored: their positions hold other messages \(room 'clash' position \d+ holds '[^']+', not '[^']+'\)/;
    if (!t.ok(line.test(a.log()) || line.test(b.log()), 'an instance logged an ERROR naming the room, the position and both ids')) t.diag(a.log() + b.log());
    const stored = (await history(a, 'clash', 'alice')).length;
    t.ok(stored < sent, `history lost messages (${stored} of ${sent} stored)`);
    t.is(stored + c, sent, 'stored + counted conflicts == sent: every lost message is counted, nothing else');
    t.is((await httpGet(`${a.http}/readyz`)).status, 200, 'the instance stays ready (storage works for the rest)');
  } finally {
    await a.stop();
    await b.stop();
    fs.rmSync(shared, { recursive: true, force: true });
  }
});
