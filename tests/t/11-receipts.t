#!/usr/bin/env node
'use strict';
// Receipts: every client frame that asks for one gets a RECEIPT (SUBSCRIBE,
// UNSUBSCRIBE, SEND, BEGIN/COMMIT/ABORT, ACK/NACK, DISCONNECT), with
// @stomp/stompjs over WebSocket and stompit over TCP.  A SEND's receipt
// means the message is durable: kill -9 right after the receipt, restart,
// and the message is in REST history.
const net = require('net');
const stompit = require('stompit');
const t = require('../lib/tap');
const { startParley, sleep, httpRequest, basic } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });
// resolves to null after ms without keeping the process alive (for races)
const later = (ms) => new Promise((r) => setTimeout(() => r(null), ms).unref());

// ---- a raw STOMP-over-TCP client, to see exact frames and their order
class Raw {
  constructor(sock) {
    this.sock = sock; this.buf = Buffer.alloc(0); this.frames = []; this.events = []; this.waiters = [];
    this.closed = false;
    sock.on('error', (e) => { this.error = e; });
    sock.on('close', () => { this.closed = true; this.events.push('close'); this._wake(); });
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this._parse(); this._wake(); });
  }
  _wake() { for (const w of this.waiters.slice()) w(); }
  _parse() {
    for (;;) {
      while (this.buf.length && this.buf[0] === 10) this.buf = this.buf.slice(1);
      const he = this.buf.indexOf('\n\n');
      if (he === -1) return;
      const lines = this.buf.slice(0, he).toString().split('\n');
      const command = lines.shift();
      const headers = {};
      for (const l of lines) {
        const c = l.indexOf(':');
        const un = (s) => s.replace(/\\(.)/g, (m, x) => ({ n: '\n', c: ':', '\\': '\\', r: '\r' }[x] || m));
        if (!(un(l.slice(0, c)) in headers)) headers[un(l.slice(0, c))] = un(l.slice(c + 1));
      }
      const z = this.buf.indexOf(0, he + 2);
      if (z === -1) return;
      this.frames.push({ command, headers, body: this.buf.slice(he + 2, z).toString() });
      this.events.push(command);
      this.buf = this.buf.slice(z + 1);
    }
  }
  write(command, headers = {}, body = '') {
    let s = command + '\n';
    for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
    this.sock.write(s + '\n' + body + '\0');
  }
  wait(pred, ms = 5000, what = 'condition') {
    return new Promise((res, rej) => {
      let r;
      if ((r = pred())) return res(r);
      const check = () => { if ((r = pred())) { clearTimeout(tm); this.waiters.splice(this.waiters.indexOf(check), 1); res(r); } };
      const tm = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(check), 1); rej(new Error('timeout waiting for ' + what)); }, ms);
      this.waiters.push(check);
    });
  }
  frame(command, pred = () => true, ms = 5000) {
    return this.wait(() => this.frames.find((f) => f.command === command && pred(f)), ms, command);
  }
}
function rawConnect(port, headers) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      const r = new Raw(sock);
      r.write('CONNECT', Object.assign({ 'accept-version': '1.2', host: 'parley', login: 'rita' }, headers));
      r.frame('CONNECTED').then(() => resolve(r), reject);
    });
    sock.on('error', reject);
  });
}

function stompitConnect(srv, login) {
  return new Promise((resolve, reject) => {
    stompit.connect({ host: '127.0.0.1', port: srv.stompPort, connectHeaders: { host: 'parley', login, 'heart-beat': '0,0' } },
      (err, client) => (err ? reject(err) : resolve(client)));
  });
}
// stompit: send a frame asking for a receipt; resolves when it arrives
function withReceipt(client, fn, ms = 5000) {
  return new Promise((resolve, reject) => {
    const tm = setTimeout(() => reject(new Error('no RECEIPT')), ms);
    fn({ onReceipt: () => { clearTimeout(tm); resolve(true); } });
  });
}
function receiptOf(c, id, ms = 5000) {
  return new Promise((resolve, reject) => {
    const tm = setTimeout(() => reject(new Error(`no RECEIPT ${id}`)), ms);
    c.client.watchForReceipt(id, (f) => { clearTimeout(tm); resolve(f); });
  });
}

t.run(async () => {
  const srv = await startParley();
  servers.push(srv);

  // ---------------------------------------------- WebSocket, @stomp/stompjs
  const alice = await connectWs(srv, { login: 'alice' });
  const bob = await connectWs(srv, { login: 'bob' });

  let rc = receiptOf(bob, 'sub-1');
  bob.subscribe('receipts', { receipt: 'sub-1' });
  t.is((await rc).headers['receipt-id'], 'sub-1', 'SUBSCRIBE receipt (WebSocket)');

  const r1 = await alice.send('receipts', 'first');
  t.like(r1.headers.position, /^\d+$/, 'SEND receipt (WebSocket) carries the position');
  await bob.wait(() => bob.received.some((m) => m.body === 'first'), 5000, 'first message');
  t.ok(true, 'message delivered to the subscriber');

  // client-individual ack: ACK and NACK with receipts
  const acked = [];
  rc = receiptOf(bob, 'sub-2');
  bob.subscribe('acks', { id: 'acks', ack: 'client-individual', receipt: 'sub-2' }, (m) => acked.push(m));
  await rc;
  await alice.send('acks', 'ack me');
  await alice.send('acks', 'nack me');
  await bob.wait(() => ['ack me', 'nack me'].every((b) => acked.some((m) => m.body === b)), 5000, 'two ack-mode messages');
  const am = acked.find((m) => m.body === 'ack me');
  const nm = acked.find((m) => m.body === 'nack me');
  t.ok(am && am.headers.ack, 'client-individual MESSAGE carries an ack header');
  rc = receiptOf(bob, 'ack-1');
  am.ack({ receipt: 'ack-1' });
  t.is((await rc).headers['receipt-id'], 'ack-1', 'ACK receipt (WebSocket)');
  rc = receiptOf(bob, 'nack-1');
  nm.nack({ receipt: 'nack-1' });
  t.is((await rc).headers['receipt-id'], 'nack-1', 'NACK receipt (WebSocket)');

  rc = receiptOf(bob, 'unsub-1');
  bob.client.unsubscribe('acks', { receipt: 'unsub-1' });
  t.is((await rc).headers['receipt-id'], 'unsub-1', 'UNSUBSCRIBE receipt (WebSocket)');

  // DISCONNECT: stompjs asks for a receipt and reports it in onDisconnect
  const disc = new Promise((resolve) => { bob.client.onDisconnect = (f) => resolve(f); });
  await bob.close();
  const df = await Promise.race([disc, later(5000)]);
  t.ok(df && /^close-/.test(df.headers['receipt-id']), 'DISCONNECT receipt (WebSocket, stompjs deactivate)');
  await alice.close();

  // ---------------------------------------------- TCP, stompit
  const sc = await stompitConnect(srv, 'carol');
  const scErrors = [];
  sc.on('error', (e) => scErrors.push(e.message));
  const got = [];
  sc.subscribe({ destination: '/room/tx', id: 'tx-sub' }, (err, msg) => {
    if (err) return;
    msg.readString('utf-8', (e, body) => got.push(body));
  });
  await sleep(100);
  t.ok(await withReceipt(sc, (o) => sc.sendFrame('BEGIN', { transaction: 'tx1' }, o).end()), 'BEGIN receipt (TCP, stompit)');
  t.ok(await withReceipt(sc, (o) => { const f = sc.send({ destination: '/room/tx', transaction: 'tx1' }, o); f.end('in tx1'); }),
    'SEND-in-transaction receipt (TCP)');
  await sleep(300);
  t.ok(!got.includes('in tx1'), 'a transactional SEND is not delivered before COMMIT');
  t.ok(await withReceipt(sc, (o) => sc.sendFrame('COMMIT', { transaction: 'tx1' }, o).end()), 'COMMIT receipt (TCP)');
  await sleep(500);
  t.ok(got.includes('in tx1'), 'COMMIT delivers the message');
  t.ok(await withReceipt(sc, (o) => sc.sendFrame('BEGIN', { transaction: 'tx2' }, o).end()), 'second BEGIN receipt');
  sc.send({ destination: '/room/tx', transaction: 'tx2' }).end('in tx2');
  t.ok(await withReceipt(sc, (o) => sc.sendFrame('ABORT', { transaction: 'tx2' }, o).end()), 'ABORT receipt (TCP)');
  t.ok(await withReceipt(sc, (o) => sc.send({ destination: '/room/tx' }, o).end('after abort')), 'SEND receipt (TCP)');
  await sleep(300);
  t.ok(!got.includes('in tx2') && got.includes('after abort'), 'ABORT discarded the transaction');
  const unsubR = await withReceipt(sc, (o) => sc.sendFrame('UNSUBSCRIBE', { id: 'tx-sub' }, o).end());
  t.ok(unsubR, 'UNSUBSCRIBE receipt (TCP)');
  const dres = await new Promise((resolve) => sc.disconnect((err) => resolve(err || 'ok')));
  t.is(dres, 'ok', 'DISCONNECT receipt (TCP): stompit disconnects cleanly');
  t.is(scErrors.join('; '), '', 'stompit saw no protocol error (no unknown or repeated receipt)');

  // ---------------------------------------------- raw TCP: order and close
  const raw = await rawConnect(srv.stompPort, { receipt: 'conn-1' });
  await raw.frame('RECEIPT', (f) => f.headers['receipt-id'] === 'conn-1');
  t.ok(raw.events.indexOf('CONNECTED') < raw.events.indexOf('RECEIPT'), 'CONNECT receipt follows CONNECTED');
  raw.write('BEGIN', { transaction: 'rt', receipt: 'r-begin' });
  raw.write('SEND', { destination: '/room/order', transaction: 'rt', receipt: 'r-txsend' }, 'in rt');
  raw.write('COMMIT', { transaction: 'rt', receipt: 'r-commit' });
  raw.write('SUBSCRIBE', { destination: '/room/order', id: 's', receipt: 'r-sub' });
  raw.write('SEND', { destination: '/room/order', receipt: 'r-send' }, 'pipelined');
  raw.write('DISCONNECT', { receipt: 'r-disc' });
  await raw.wait(() => raw.closed, 5000, 'server closes after DISCONNECT');
  const ids = raw.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
  t.ok(ids.includes('r-sub') && ids.includes('r-send'), 'pipelined SUBSCRIBE and SEND both answered');
  for (const id of ['r-begin', 'r-txsend', 'r-commit', 'r-sub', 'r-send', 'r-disc'])
    t.is(ids.filter((x) => x === id).length, 1, `exactly one RECEIPT for ${id}`);
  t.is(ids[ids.length - 1], 'r-disc', 'DISCONNECT receipt comes last, after the pending SEND receipt');
  t.ok(raw.events.indexOf('close') > raw.events.lastIndexOf('RECEIPT'), 'the server closes the connection after the DISCONNECT receipt');
  t.ok(!raw.frames.some((f) => f.command === 'ERROR'), 'no ERROR on a clean DISCONNECT');
  t.ok(raw.frames.some((f) => f.command === 'MESSAGE' && f.body === 'pipelined'), 'the pipelined message was delivered before the close');
  await srv.stop();

  // ---------------------------------------------- receipt == durable
  // A long batch interval: a receipt sent before the commit would show up
  // as a lost message after kill -9.
  const dsrv = await startParley({ ini: { batch: { interval_ms: 1500, size: 100000 } } });
  servers.push(dsrv);
  const dave = await connectWs(dsrv, { login: 'dave' });
  const N = 20;
  const t0 = Date.now();
  const pend = [];
  for (let i = 0; i < N; i++) pend.push(dave.send('durable', `durable ${i}`).then((r) => ({ i, r, at: Date.now() })));
  const first = await Promise.race(pend);
  t.ok(first.at - t0 >= 500, `first SEND receipt waits for the storage commit (${first.at - t0} ms with a 1500 ms batch interval)`);
  const all = await Promise.all(pend);
  dsrv.kill();			// SIGKILL at once: nothing gets flushed after this
  await dsrv.exitPromise;
  t.is(dsrv.exited.sig, 'SIGKILL', 'server killed with SIGKILL right after the receipts');
  await dsrv.restart();
  const h = await httpRequest('GET', `${dsrv.http}/api/v1/rooms/durable/messages?limit=100`, undefined, basic('dave'));
  t.is(h.status, 200, 'history readable after restart');
  const bodies = (h.json && h.json.messages || []).map((m) => m.body);
  const missing = all.filter(({ i }) => !bodies.includes(`durable ${i}`)).map(({ i }) => i);
  t.ok(missing.length === 0, `every receipted message survived kill -9 (${N - missing.length}/${N}; missing ${JSON.stringify(missing)})`);
  const positions = Object.fromEntries((h.json && h.json.messages || []).map((m) => [m.body, m.position]));
  t.ok(all.every(({ i, r }) => positions[`durable ${i}`] === r.headers.position), 'stored positions match the positions in the receipts');
  t.is(await dsrv.stop(), 0, 'clean stop');
});
