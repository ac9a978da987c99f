#!/usr/bin/env node
'use strict';
// The side-by-side the README documents, with all three targets on a tiny
// load: bench/compare.sh starts a private RabbitMQ (Debian's 3.10 with
// Web-STOMP, bench/run-rabbitmq.sh), Parley and the reflector in turn, runs
// a max and a fixed-rate fanout (20 msg/s, far below what any of them
// reaches, so none skips it) and an idle run against each, prints the
// ratios against RabbitMQ and the reflector, and stops every server it
// started.  Speed is not checked here: only that each target got every
// message and that the table carries each kind of ratio.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ROOT, PARLEYD, PLUGIN_DIR, runProgram } = require('../lib/parley');
const { csvRows } = require('../lib/bench');

const TARGETS = ['parley', 'rabbitmq', 'reflector'];

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-rabbit-'));
  fs.chmodSync(tmp, 0o755);	// RabbitMQ runs as its own user, under here
  const env = { PARLEYD, PARLEY_PLUGIN_DIR: PLUGIN_DIR, TMPDIR: tmp };
  try {
    const have = await runProgram('sh', ['-c', 'test -x /usr/lib/rabbitmq/bin/rabbitmq-server && command -v epmd']);
    if (!t.ok(have.code === 0, 'rabbitmq-server is installed (contrib/setup-debian.sh --test installs it)')) return;

    const csv = path.join(tmp, 'all.csv');
    const r = await runProgram('sh', [path.join(ROOT, 'bench', 'compare.sh'), '-t', TARGETS.join(','),
      '-n', '20', '-d', '1', '-w', '8', '-R', '20', '-I', '50', '-r', '1', '-o', csv, 'fanout', 'idle'], { env });
    if (!t.is(r.code, 0, 'compare.sh against Parley, RabbitMQ and the reflector exits 0')) t.diag(r.stdout.slice(-4000) + r.stderr);
    const rows = fs.existsSync(csv) ? csvRows(csv) : [];

    for (const tg of TARGETS) {
      const mine = rows.filter((x) => x.target === tg);
      // a run while other tests kept the machine busy is tried again (up
      // to 3 times): consecutive rows of one measurement count once
      const kinds = mine.map((x) => `${x.scenario} ${x.label}`).filter((k, i, a) => i === 0 || a[i - 1] !== k);
      if (!t.deep(kinds, ['fanout max', 'fanout 20msg/s', 'idle idle'],
        `${tg}: a max fanout, a 20 msg/s fanout and an idle run`)) t.diag(r.stdout.slice(-6000) + r.stderr);
      const fan = mine.filter((x) => x.scenario === 'fanout');
      t.ok(fan.length >= 2 && fan.every((x) => Number(x.expected) > 0 && x.received === x.expected &&
        x.missing === '0' && x.gaps === '0' && x.errors === '0' && x.conn_errors === '0'),
        `${tg}: every fanout run delivered all it expected (${fan.map((x) => `${x.received}/${x.expected}`).join(', ')})`);
      const idle = mine.filter((x) => x.scenario === 'idle').pop();
      t.ok(idle && Number(idle.server_rss_per_conn_b) > 0 && idle.conn_errors === '0',
        `${tg}: the idle run measured the server's RSS per connection (${idle && idle.server_rss_per_conn_b} B)`);
    }

    // RabbitMQ was really the server: its generator block names it, and the
    // Erlang VM's RSS is far above the two C servers' (tens of MB, not a few)
    t.like(r.stdout, /parley-bench fanout against rabbitmq/, 'the generator ran against the rabbitmq target');
    const rss = (tg) => Number((rows.filter((x) => x.target === tg && x.scenario === 'idle').pop() || {}).server_rss_kib);
    t.ok(rss('rabbitmq') > 4 * rss('parley'), `RabbitMQ's RSS (${rss('rabbitmq')} KiB) is its own, not Parley's (${rss('parley')} KiB)`);

    // the table: Parley's lines carry both ratios, of each kind
    t.like(r.stdout, /^fanout +max 20 +parley +\d +\d+ .* \d+\.\d\d +\d+\.\d\d \d+\/\d+/m, 'table: Parley\'s max line with ×RabbitMQ and ×reflector');
    t.like(r.stdout, /^fanout +20msg\/s 20 +parley .* \d+\.\dL +\d+\.\dL \d+\/\d+/m, 'table: Parley\'s fixed-rate line with both latency ratios (L)');
    if (!t.like(r.stdout, /^idle +idle 50 +parley .* \d+\.\dM +\d+\.\dM \d+\/\d+/m, 'table: Parley\'s idle line with both memory ratios (M)'))
      t.diag(rows.filter((x) => x.scenario === 'idle').map((x) => `${x.target}: rss ${x.server_rss_kib} KiB, per connection ${x.server_rss_per_conn_b} B, other CPU ${x.other_cpu_pct}%`).join('\n') + '\n' + r.stdout.slice(-3000));
    t.like(r.stdout, /^fanout +max 20 +rabbitmq +\d +\d+ /m, 'table: a line for RabbitMQ');

    // every server compare.sh started is gone
    const pids = [...r.stdout.matchAll(/server pid (\d+):/g)].map((m) => Number(m[1]));
    t.ok(pids.length >= 9 && pids.every((p) => !alive(p)), `the ${pids.length} server processes it measured are all stopped`);
    const left = await runProgram('pgrep', ['-f', `rabbitmq.*${tmp}|epmd.*-port`]);
    t.ok(left.stdout.trim() === '' || !left.stdout.split('\n').some((l) => l && alive(Number(l))),
      'no RabbitMQ node or private epmd is left running');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
