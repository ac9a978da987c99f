'use strict';
// A private Kafka-protocol cluster for one test: contrib/kafka-mock (the
// librdkafka mock cluster, 3 brokers on random 127.0.0.1 ports) with one
// topic created up front.  A fresh one per test: the mock slows down as its
// log grows.
//
//   const k = await startKafka({ topic: 'parley', partitions: 6 });
//   k.bootstrap ('127.0.0.1:PORT,...'), k.topic, k.partitions
//   await k.command('down 1')   fault injection: down|up <broker>, rtt <b> <ms>
//   await k.produce(room, id, sender, body)   one record in the plugin's
//                               layout, straight to the cluster; resolves to
//                               { partition, offset }
//   k.log()                     the launcher's stderr
//   await k.stop()              SIGTERM, wait (safe to call twice)
//
// Environment: PARLEY_BUILD (default build/) holds contrib/kafka-mock.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = process.env.PARLEY_BUILD ? path.resolve(process.env.PARLEY_BUILD) : path.join(ROOT, 'build');

async function startKafka(opts = {}) {
  const bin = path.join(BUILD, 'contrib', 'kafka-mock');
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: build with --with-kafka (make in ${BUILD})`);
  const topic = opts.topic || 'parley';
  const partitions = opts.partitions || 6;
  const p = spawn(bin, ['-b', String(opts.brokers || 3), '-t', `${topic}:${partitions}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const k = { topic, partitions, proc: p, stderr: '', exited: null, stopped: false, bootstrap: null };
  let out = '';
  const lines = [];
  const waiters = [];
  p.stderr.on('data', (d) => { k.stderr += d; });
  p.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const l = out.slice(0, i);
      out = out.slice(i + 1);
      if (waiters.length) waiters.shift()(l); else lines.push(l);
    }
  });
  k.exitPromise = new Promise((res) => {
    const gone = (code, sig) => {
      k.exited = { code, sig };
      for (const w of waiters.splice(0)) w(null);
      res();
    };
    p.on('exit', gone);
    p.on('error', (e) => { k.stderr += `cannot run ${bin}: ${e.message}\n`; gone(127, null); });
  });
  // a test that dies (timeout, exception) still stops the cluster
  process.on('exit', () => { try { if (!k.exited) p.kill('SIGKILL'); } catch (e) { /* gone */ } });
  function nextLine(ms) {
    if (lines.length) return Promise.resolve(lines.shift());
    if (k.exited) return Promise.resolve(null);
    return new Promise((res, rej) => {
      const t = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); rej(new Error('kafka-mock: no answer in time\n' + k.stderr)); }, ms);
      const w = (l) => { clearTimeout(t); res(l); };
      waiters.push(w);
    });
  }
  k.log = () => k.stderr;
  k.command = async (line) => {
    p.stdin.write(line + '\n');
    const l = await nextLine(15000);
    if (l === null) throw new Error('kafka-mock exited:\n' + k.stderr);
    if (!l.startsWith('ok')) throw new Error(`kafka-mock: ${line}: ${l}`);
    return l;
  };
  k.produce = async (room, id, sender, body) => {
    const l = await k.command(`produce ${topic} ${room} ${id} ${sender} ${body}`);
    const [, part, off] = l.split(' ');
    return { partition: Number(part), offset: Number(off) };
  };
  k.stop = async () => {
    if (k.stopped) return;
    k.stopped = true;
    if (!k.exited) {
      p.kill('SIGTERM');
      const t = setTimeout(() => { if (!k.exited) p.kill('SIGKILL'); }, 10000);
      await k.exitPromise;
      clearTimeout(t);
    }
  };
  const first = await nextLine(15000).catch((e) => { p.kill('SIGKILL'); throw e; });
  if (!first || !/^[\w.:-]+(,[\w.:-]+)*$/.test(first)) {
    await k.stop();
    throw new Error(`kafka-mock did not print its bootstrap servers (got ${JSON.stringify(first)}):\n${k.stderr}`);
  }
  k.bootstrap = first;
  return k;
}

module.exports = { startKafka };
