#!/usr/bin/env node
'use strict';
// Chat over plain STOMP TCP with npm `stompit`: two clients in a room,
// version negotiation (1.0/1.1/1.2, CONNECT and STOMP), transactions
// (COMMIT delivers in order, ABORT discards), ack modes client and
// client-individual (ack header, ACK/NACK accepted, unknown or repeated ack
// id -> ERROR), content-length bodies with NUL bytes round-trip (also to a
// WebSocket client), header escaping round-trips (a subscription id with
// ':' '\n' and '\\').
const net = require('net');
const stompit = require('stompit');
const t = require('../lib/tap');
const { startParley, sleep } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });
const later = (ms) => new Promise((r) => setTimeout(() => r(null), ms).unref());

function connect(srv, login, headers = {}) {
  return new Promise((resolve, reject) => {
    stompit.connect({ host: '127.0.0.1', port: srv.stompPort, connectHeaders: Object.assign({ host: 'parley', login, 'heart-beat': '0,0' }, headers) },
      (err, client) => {
        if (err) return reject(err);
        client.errors = [];
        client.on('error', (e) => client.errors.push(e));
        // stompit 1.x's own ERROR handler destroys the frame instead of the
        // client when the ERROR has a text/plain body (an unhandled 'error'
        // event); do what it means to do
        client.setCommandHandler('ERROR', function onError(frame) {
          const chunks = [];
          frame.on('error', () => {});
          frame.on('data', (d) => chunks.push(d));
          frame.on('end', () => {
            const err = this.createApplicationError(frame.headers.message || 'ERROR frame');
            err.headers = frame.headers;
            err.longMessage = Buffer.concat(chunks).toString();
            this.destroy(err);
          });
        });
        resolve(client);
      });
  });
}
// subscribe; collects { headers, body (Buffer) } in order
function collect(client, headers) {
  const msgs = [];
  const sub = client.subscribe(headers, (err, msg) => {
    if (err) return;
    const chunks = [];
    msg.on('error', () => {});
    msg.on('data', (d) => chunks.push(d));
    msg.on('end', () => msgs.push({ headers: msg.headers, body: Buffer.concat(chunks), msg }));
  });
  return { msgs, sub, chat: () => msgs.filter((m) => m.headers.event === undefined) };
}
function receipt(fn, ms = 5000) {
  return new Promise((resolve, reject) => {
    const tm = setTimeout(() => reject(new Error('no RECEIPT')), ms);
    fn({ onReceipt: () => { clearTimeout(tm); resolve(true); } });
  });
}
async function until(pred, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timeout waiting for ' + what);
    await sleep(10);
  }
}
const errored = (c, ms = 3000) => Promise.race([new Promise((r) => c.once('error', r)), later(ms)]);

// raw CONNECT/STOMP for version negotiation: returns the CONNECTED or ERROR headers
function rawConnect(port, text) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d;
      const z = buf.indexOf('\0');
      if (z === -1) return;
      const lines = buf.slice(0, z).split('\n\n')[0].split('\n');
      const f = { command: lines.shift(), headers: {} };
      for (const l of lines) { const i = l.indexOf(':'); f.headers[l.slice(0, i)] = l.slice(i + 1); }
      f.sock = sock;
      resolve(f);
    });
    sock.on('connect', () => sock.write(text));
  });
}

t.run(async () => {
  const srv = await startParley();
  servers.push(srv);

  // ------------------------------------------------------------ chat
  const alice = await connect(srv, 'alice');
  const bob = await connect(srv, 'bob');
  t.is(alice.headers.version, '1.2', 'stompit negotiates STOMP 1.2');
  const bs = collect(bob, { destination: '/room/tcp', id: 'b1' });
  const as = collect(alice, { destination: '/room/tcp', id: 'a1' });
  await sleep(100);
  await receipt((o) => alice.send({ destination: '/room/tcp', 'content-type': 'text/plain', sender: 'mallory' }, o).end('hello bob'));
  await receipt((o) => bob.send({ destination: '/room/tcp' }, o).end('hi alice'));
  await until(() => bs.chat().length >= 2 && as.chat().length >= 2, 5000, 'both messages');
  const m = bs.chat()[0];
  t.is(m.body.toString(), 'hello bob', 'bob receives alice\'s message');
  t.is(m.headers.sender, 'alice', 'sender is the authenticated login');
  t.is(m.headers.destination, '/room/tcp', 'destination');
  t.is(m.headers.subscription, 'b1', 'subscription is bob\'s id');
  t.is(m.headers['content-type'], 'text/plain', 'content-type kept');
  t.ok(/^\d+$/.test(m.headers.position) && m.headers['message-id'], 'position and message-id');
  t.deep(as.chat().map((x) => x.body.toString()), ['hello bob', 'hi alice'], 'alice sees both, in order');
  t.ok(bs.msgs.some((x) => x.headers.event === 'join' && x.headers.sender === 'alice') ||
       as.msgs.some((x) => x.headers.event === 'join' && x.headers.sender === 'bob'), 'join events over TCP');

  // ------------------------------------------------------------ versions
  for (const [accept, want] of [['1.0', '1.0'], ['1.1', '1.1'], ['1.2', '1.2'], ['1.0,1.1', '1.1'], ['1.1,1.0', '1.1'],
    ['1.0,1.1,1.2', '1.2'], ['1.2, 1.1', '1.2'], ['1.1,9.9', '1.1']]) {
    const f = await rawConnect(srv.stompPort, `CONNECT\naccept-version:${accept}\nhost:parley\nlogin:v\n\n\0`);
    t.is(f.command === 'CONNECTED' && f.headers.version, want, `accept-version:${accept} -> version ${want}`);
    f.sock.destroy();
  }
  let f = await rawConnect(srv.stompPort, 'CONNECT\nlogin:v\n\n\0');
  t.ok(f.command === 'CONNECTED' && (f.headers.version === undefined || f.headers.version === '1.0'), 'no accept-version: STOMP 1.0');
  f.sock.destroy();
  f = await rawConnect(srv.stompPort, 'STOMP\naccept-version:1.2\nhost:parley\nlogin:v\n\n\0');
  t.is(f.command === 'CONNECTED' && f.headers.version, '1.2', 'the STOMP command connects like CONNECT');
  f.sock.destroy();
  f = await rawConnect(srv.stompPort, 'CONNECT\naccept-version:2.0\nhost:parley\n\n\0');
  t.is(f.command, 'ERROR', 'accept-version:2.0 -> ERROR');
  t.is(f.headers.version, '1.0,1.1,1.2', 'listing the supported versions');
  f.sock.destroy();

  // STOMP 1.0 with stompit: SUBSCRIBE without id, MESSAGE/ACK by message-id
  const old = await connect(srv, 'oldtimer', { 'accept-version': '1.0' });
  t.ok(!old.headers.version || old.headers.version === '1.0', 'stompit with accept-version 1.0 gets 1.0');
  const olds = [];
  old.setImplicitSubscription('/room/v10', 'client', (err, msg) => {
    if (err) return;
    msg.readString('utf-8', (e, body) => olds.push({ headers: msg.headers, body, msg }));
  });
  await receipt((o) => old.sendFrame('SUBSCRIBE', { destination: '/room/v10', ack: 'client' }, o).end());
  await receipt((o) => alice.send({ destination: '/room/v10' }, o).end('to the old client'));
  await until(() => olds.some((x) => x.body === 'to the old client'), 5000, '1.0 message');
  const om = olds.find((x) => x.body === 'to the old client');
  t.is(om.headers.subscription, '/room/v10', '1.0: SUBSCRIBE without id works, subscription = destination');
  t.ok(await receipt((o) => old.sendFrame('ACK', { 'message-id': om.headers['message-id'] }, o).end()), '1.0: ACK by message-id accepted');
  t.ok(await receipt((o) => old.sendFrame('UNSUBSCRIBE', { destination: '/room/v10' }, o).end()), '1.0: UNSUBSCRIBE by destination');
  t.is(old.errors.length, 0, '1.0: no errors');
  old.disconnect();

  // 1.1: escaping without \r; heart-beat header present
  const v11 = await connect(srv, 'eleven', { 'accept-version': '1.1' });
  t.is(v11.headers.version, '1.1', 'stompit with accept-version 1.1 gets 1.1');
  const s11 = collect(v11, { destination: '/room/v11', id: 'x:y\nz' });
  await sleep(100);
  await receipt((o) => alice.send({ destination: '/room/v11' }, o).end('eleven'));
  await until(() => s11.chat().length >= 1, 5000, '1.1 message');
  t.is(s11.chat()[0].headers.subscription, 'x:y\nz', '1.1: escaped subscription id round-trips');
  v11.disconnect();

  // ------------------------------------------------------------ transactions
  const tx = alice.begin('t-1');
  tx.send({ destination: '/room/tcp' }).end('tx one');
  tx.send({ destination: '/room/tcp' }).end('tx two');
  await sleep(300);
  t.ok(!bs.chat().some((x) => /^tx /.test(x.body.toString())), 'transactional SENDs are held until COMMIT');
  await receipt((o) => tx.commit(o));
  await until(() => bs.chat().filter((x) => /^tx /.test(x.body.toString())).length >= 2, 5000, 'committed messages');
  t.deep(bs.chat().filter((x) => /^tx /.test(x.body.toString())).map((x) => x.body.toString()), ['tx one', 'tx two'], 'COMMIT delivers them, in order');
  const tx2 = alice.begin('t-2');
  tx2.send({ destination: '/room/tcp' }).end('aborted');
  await receipt((o) => tx2.abort(o));
  await receipt((o) => alice.send({ destination: '/room/tcp' }, o).end('after abort'));
  await until(() => bs.chat().some((x) => x.body.toString() === 'after abort'), 5000, 'after abort');
  t.ok(!bs.chat().some((x) => x.body.toString() === 'aborted'), 'ABORT discards the transaction');
  // a transaction id can be reused after it ended
  const tx3 = alice.begin('t-1');
  tx3.send({ destination: '/room/tcp' }).end('reused id');
  await receipt((o) => tx3.commit(o));
  await until(() => bs.chat().some((x) => x.body.toString() === 'reused id'), 5000, 'reused id');
  t.ok(true, 'a finished transaction id can be begun again');

  // ------------------------------------------------------------ ack modes
  const carol = await connect(srv, 'carol');
  const ci = collect(carol, { destination: '/room/acks', id: 'ci', ack: 'client-individual' });
  await sleep(100);
  for (const b of ['a1', 'a2', 'a3']) await receipt((o) => alice.send({ destination: '/room/acks' }, o).end(b));
  await until(() => ci.chat().length >= 3, 5000, 'ack messages');
  t.ok(ci.chat().every((x) => x.headers.ack), 'client-individual: every MESSAGE has an ack header');
  t.ok(new Set(ci.chat().map((x) => x.headers.ack)).size === 3, 'ack ids are distinct');
  t.ok(await receipt((o) => carol.ack(ci.chat()[1].msg, {}, o)), 'client-individual: ACK of the 2nd accepted');
  t.ok(await receipt((o) => carol.nack(ci.chat()[0].msg, {}, o)), 'client-individual: NACK of the 1st accepted');
  t.ok(await receipt((o) => carol.ack(ci.chat()[2].msg, {}, o)), 'client-individual: ACK of the 3rd accepted');
  let e = errored(carol);
  carol.sendFrame('ACK', { id: ci.chat()[1].headers.ack }).end();
  e = await e;
  t.like(e && e.message, /unknown or already acknowledged/, 'client-individual: ACK of an already acknowledged message -> ERROR');

  const dave = await connect(srv, 'dave');
  const cl = collect(dave, { destination: '/room/acks2', id: 'cl', ack: 'client' });
  await sleep(100);
  for (const b of ['c1', 'c2', 'c3', 'c4']) await receipt((o) => alice.send({ destination: '/room/acks2' }, o).end(b));
  await until(() => cl.chat().length >= 4, 5000, 'client-mode messages');
  t.ok(cl.chat().every((x) => x.headers.ack), 'client: every MESSAGE has an ack header');
  t.ok(await receipt((o) => dave.ack(cl.chat()[2].msg, {}, o)), 'client: ACK of the 3rd accepted (acknowledges 1-3)');
  t.ok(await receipt((o) => dave.ack(cl.chat()[3].msg, {}, o)), 'client: ACK of the 4th accepted');
  e = errored(dave);
  dave.sendFrame('ACK', { id: cl.chat()[0].headers.ack }).end();
  e = await e;
  t.like(e && e.message, /unknown or already acknowledged/, 'client: ACK of the 1st (covered by the cumulative ACK) -> ERROR');

  const erin = await connect(srv, 'erin');
  e = errored(erin);
  erin.sendFrame('ACK', { id: 'no-such-message', receipt: 'ack-x' }).end();
  e = await e;
  t.like(e && e.message, /unknown or already acknowledged/, 'ACK of an unknown id -> ERROR naming the problem');
  t.is(e && e.headers && e.headers['receipt-id'], 'ack-x', 'the ERROR carries the receipt-id the ACK asked for');
  const auto = await connect(srv, 'frank');
  const au = collect(auto, { destination: '/room/acks', id: 'au' });
  await sleep(100);
  await receipt((o) => alice.send({ destination: '/room/acks' }, o).end('auto'));
  await until(() => au.chat().length >= 1, 5000, 'auto message');
  t.is(au.chat()[0].headers.ack, undefined, 'auto mode: no ack header');
  auto.disconnect();

  // ------------------------------------------------------------ NUL bodies
  const ws = await connectWs(srv, { login: 'wsreader' });
  const wsGot = [];
  ws.subscribe('bin', {}, (msg) => { if (!msg.headers.event) wsGot.push(msg); });
  const bin = collect(bob, { destination: '/room/bin', id: 'bin' });
  await sleep(150);
  const payload = Buffer.from([0x00, 0x01, 0x00, 0x41, 0x42, 0x00, 0xff, 0x0a, 0x0a, 0x00]);
  await receipt((o) => alice.send({ destination: '/room/bin', 'content-type': 'application/octet-stream', 'content-length': payload.length }, o).end(payload));
  await until(() => bin.chat().length >= 1, 5000, 'binary message');
  t.ok(bin.chat()[0].body.equals(payload), `a body with NUL bytes round-trips over TCP (${bin.chat()[0].body.toString('hex')})`);
  t.is(String(bin.chat()[0].headers['content-length']), String(payload.length), 'MESSAGE carries content-length');
  await until(() => wsGot.length >= 1, 5000, 'binary message over WebSocket');
  t.ok(Buffer.from(wsGot[0].binaryBody).equals(payload), 'and reaches a WebSocket client intact');
  const text = 'nul\0inside';
  await receipt((o) => alice.send({ destination: '/room/bin', 'content-length': Buffer.byteLength(text) }, o).end(text));
  await until(() => bin.chat().length >= 2, 5000, 'text with NUL');
  t.is(bin.chat()[1].body.toString(), text, 'a text body with an embedded NUL round-trips');
  const empty = await receipt((o) => alice.send({ destination: '/room/bin', 'content-length': 0 }, o).end());
  await until(() => bin.chat().length >= 3, 5000, 'empty body');
  t.ok(empty && bin.chat()[2].body.length === 0, 'an empty body with content-length:0');
  await ws.close();

  // ------------------------------------------------------------ escaping
  const weird = 'id:with\ncolon\\and\nnewlines';
  const es = collect(bob, { destination: '/room/esc', id: weird });
  await receipt((o) => bob.sendFrame('UNSUBSCRIBE', { id: 'b1' }, o).end());	// keep bob's other subs quiet
  await sleep(100);
  await receipt((o) => alice.send({ destination: '/room/esc' }, o).end('escaped'));
  await until(() => es.chat().length >= 1, 5000, 'escaped subscription');
  t.is(es.chat()[0].headers.subscription, weird, 'subscription id with \':\', \'\\n\' and \'\\\\\' round-trips through escaping');
  t.ok(await receipt((o) => bob.sendFrame('UNSUBSCRIBE', { id: weird }, o).end()), 'UNSUBSCRIBE with the escaped id finds it');

  t.is(alice.errors.length + bob.errors.length, 0, 'no client saw an error');
  for (const c of [alice, bob, carol]) c.destroy();
  t.is(await srv.stop(), 0, 'clean stop');
});
