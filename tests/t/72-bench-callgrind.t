#!/usr/bin/env node
'use strict';
// bench/callgrind.sh, instructions per message under valgrind, on a tiny
// load against the reflector and a real parleyd: it runs each twice, takes
// the difference, and lists where the instructions went.  What a user
// reads: a per-message and per-delivery count that adds up, function
// names of the server it ran (Parley's sources, the reflector's), the
// cycle estimate with -s, and a usage line for a bad option.  Speed is
// not checked here.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ROOT, PARLEYD, PLUGIN_DIR, runProgram } = require('../lib/parley');

// "  N instructions per message, M per delivery (K deliveries per message)"
function summary(out) {
  const m = /^ {2}(\d+) (instructions|estimated cycles) per message, ([\d.]+) per delivery \(([\d.]+) deliveries per message\)$/m.exec(out);
  return m ? { perMsg: Number(m[1]), what: m[2], perDel: Number(m[3]), fan: Number(m[4]) } : null;
}

// the ranked lines: "  Ir/msg share  name"
function ranked(out) {
  return out.split('\n').map((l) => /^ +(\d+) +([\d.]+)% +(\S.*)$/.exec(l)).filter(Boolean)
    .map((m) => ({ cost: Number(m[1]), share: Number(m[2]), name: m[3] }));
}

t.run(async () => {
  const which = await runProgram('sh', ['-c', 'command -v valgrind']);
  if (which.code !== 0) {
    t.ok(false, 'valgrind is installed (contrib/setup-debian.sh --test installs it)');
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-callgrind-'));
  const env = { PARLEYD, PARLEY_PLUGIN_DIR: PLUGIN_DIR, TMPDIR: tmp };
  const script = path.join(ROOT, 'bench', 'callgrind.sh');
  const load = ['fanout', '-n', '20', '-w', '8'];
  try {
    for (const [target, own] of [['reflector', /reflect\.c:|proto\.c:/], ['parley', /(stomp|session|conn|broker|msg|util|ws)\.c:/]]) {
      const keep = path.join(tmp, `keep-${target}`);
      const r = await runProgram('sh', [script, '-t', target, '-d', '1,2', '-n', '15', '-k', keep, ...load], { env });
      if (!t.is(r.code, 0, `${target}: callgrind.sh exits 0`)) t.diag(r.stdout + r.stderr);
      const head = /^(\w+), fanout -n 20 -w 8: (\d+) and (\d+) messages \((\d+) and (\d+) deliveries\) in 1 and 2 s$/m.exec(r.stdout);
      t.ok(head && head[1] === target && Number(head[3]) > Number(head[2]) && Number(head[5]) === 20 * Number(head[3]),
        `${target}: both runs reported, the long one with more messages, 20 deliveries each`);
      const s = summary(r.stdout);
      t.ok(s && s.what === 'instructions' && s.perMsg > 500 && s.fan === 20 &&
        Math.abs(s.perDel * s.fan - s.perMsg) <= s.fan, `${target}: instructions per message and per delivery agree (${s ? s.perMsg : 'none'})`);
      const fns = ranked(r.stdout);
      t.ok(fns.length === 15 && fns.every((f, i) => i === 0 || f.cost <= fns[i - 1].cost),
        `${target}: 15 functions, costliest first`);
      t.ok(fns.some((f) => own.test(f.name)), `${target}: its own code among them (${own})`);
      const share = fns.reduce((a, f) => a + f.share, 0);
      t.ok(share > 30 && share <= 100.5, `${target}: shares of the total (${share.toFixed(1)}% in the top 15)`);
      t.ok(fs.existsSync(path.join(keep, 'long.out')) && fs.existsSync(path.join(keep, 'short.out')),
        `${target}: -k keeps both callgrind files`);
      if (target === 'reflector') {
        const c = await runProgram('sh', [script, '-t', target, '-s', '-d', '1,2', '-n', '5', ...load], { env });
        const cs = summary(c.stdout);
        t.ok(c.code === 0 && cs && cs.what === 'estimated cycles' && cs.perMsg >= s.perMsg * 0.8,
          `-s: estimated cycles per message (${cs ? cs.perMsg : 'none'}), not below the instructions by much`);
      }
    }
    const bad = await runProgram('sh', [script, '-q'], { env });
    t.ok(bad.code === 2 && /-d SHORT,LONG/.test(bad.stderr), 'an unknown option prints the usage');
    const order = await runProgram('sh', [script, '-d', '5,5'], { env });
    t.ok(order.code === 2 && /SHORT < LONG/.test(order.stderr), '-d with SHORT not below LONG is refused');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, { timeoutMs: 300000 });
