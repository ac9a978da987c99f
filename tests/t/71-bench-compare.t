#!/usr/bin/env node
'use strict';
// bench/compare.sh, the side-by-side runner, on a tiny load against a real
// parleyd and the reflector: repeats take turns by default (each round starts
// every target afresh), -g groups them, -x reaches every generator run,
// growth runs each size of -N, -C sets a key of Parley's config, and the
// table shows both targets with the ratio.  Speed is not checked here.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ROOT, PARLEYD, PLUGIN_DIR, runProgram } = require('../lib/parley');
const { csvRows: rows } = require('../lib/bench');

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-compare-'));
  const env = { PARLEYD, PARLEY_PLUGIN_DIR: PLUGIN_DIR, TMPDIR: tmp };
  const script = path.join(ROOT, 'bench', 'compare.sh');
  const common = ['-t', 'parley,reflector', '-n', '20', '-d', '1', '-w', '8', '-R', '', '-r', '2'];
  try {
    // A run during which the rest of the machine was busy (other tests run
    // alongside) is repeated right away, up to 3 tries: the order is
    // checked on the blocks of consecutive runs of one target.
    for (const [name, extra, order] of [
      ['turns', [], ['parley', 'reflector', 'parley', 'reflector']],
      ['grouped', ['-g'], ['parley', 'reflector']],
    ]) {
      const csv = path.join(tmp, `${name}.csv`);
      const r = await runProgram('sh', [script, ...common, ...extra, '-x', '-P 2', '-o', csv, 'fanout'], { env });
      if (!t.is(r.code, 0, `${name}: compare.sh exits 0`)) t.diag(r.stdout + r.stderr);
      const rs = fs.existsSync(csv) ? rows(csv) : [];
      const blocks = rs.map((x) => x.target).filter((x, i, a) => i === 0 || a[i - 1] !== x);
      t.deep(blocks, order, `${name}: runs in the order ${order.join(', ')}`);
      const per = (tg) => rs.filter((x) => x.target === tg).length;
      t.ok(per('parley') >= 2 && per('parley') <= 6 && per('reflector') >= 2 && per('reflector') <= 6,
        `${name}: 2 runs (up to 6 tries) per target (${per('parley')}, ${per('reflector')})`);
      t.ok(rs.length > 0 && rs.every((x) => x.label === 'max' && x.subs === '20'),
        `${name}: max runs of 20 subscribers recorded`);
      t.ok(rs.length > 0 && rs.every((x) => x.pubs === '2'), `${name}: -x "-P 2" reached every run (2 publishers)`);
      t.ok(rs.length > 0 && rs.every((x) => Number(x.expected) > 0 && x.received === x.expected &&
        x.missing === '0' && x.errors === '0'), `${name}: every run delivered all it expected`);
      // the table: one line per target, Parley's with a ratio
      t.like(r.stdout, /^fanout +max 20 +parley +\d +\d+ .* \d+\.\d\d \d+\/\d+/m, `${name}: table line for Parley with its ratio`);
      t.like(r.stdout, /^fanout +max 20 +reflector +\d +\d+ /m, `${name}: table line for the reflector`);
    }
    // growth: one max run per size in -N, the same window for each
    {
      const csv = path.join(tmp, 'growth.csv');
      const r = await runProgram('sh', [script, '-t', 'parley,reflector', '-N', '5,15', '-d', '1', '-w', '8', '-r', '1', '-o', csv, 'growth'], { env });
      if (!t.is(r.code, 0, 'growth: compare.sh exits 0')) t.diag(r.stdout + r.stderr);
      const rs = fs.existsSync(csv) ? rows(csv) : [];
      for (const tg of ['parley', 'reflector']) {
        const mine = rs.filter((x) => x.target === tg);
        t.deep([...new Set(mine.map((x) => x.subs))], ['5', '15'], `growth: ${tg} ran 5, then 15 subscribers`);
        t.ok(mine.length > 0 && mine.every((x) => x.scenario === 'fanout' && x.label === 'max' && x.window === '8' &&
          x.received === x.expected && x.missing === '0'), `growth: ${tg}'s runs are max fanout runs at window 8 with nothing missing`);
      }
      t.like(r.stdout, /^fanout +max 15 +parley +\d +\d+ .* \d+\.\d\d \d+\/\d+/m, 'growth: a table line per size, with the ratio');
    }
    // -C reaches parleyd's config: a value it refuses stops the run, with
    // parleyd's own message naming the key
    {
      const r = await runProgram('sh', [script, ...common, '-t', 'parley', '-C', 'server.gather_min=-5', 'fanout'], { env });
      t.ok(r.code !== 0 && /gather_min/.test(r.stderr) && /exited during start-up/.test(r.stderr),
        '-C server.gather_min=-5 reached parleyd, which refused it: ' + (r.stderr.split('\n').find((l) => /gather_min/.test(l)) || r.stderr.slice(0, 300)));
      const f = await runProgram('sh', [script, '-C', 'gather_min', 'fanout'], { env });
      t.ok(f.code === 2 && /-C takes section.key=value/.test(f.stderr), '-C without "=" is refused before anything runs');
    }
    // the table's median idle run is the median by RSS per connection:
    // three noisy idle runs of the reflector, the middle one in time with a
    // RSS that went down (a garbage collection can do that), still give a
    // memory ratio (by run order the middle run was picked: "-")
    {
      const header = fs.readFileSync(path.join(ROOT, 'bench', 'data', '2026-11-25-s12-fanout.csv'), 'utf8').split('\n')[0].split(',');
      const row = (vals) => header.map((h) => (h in vals ? vals[h] : (h === 'date' ? '2026-11-25T00:00:00' : '0'))).join(',');
      const base = { label: 'idle', scenario: 'idle', transport: 'ws', rooms: '1', subs: '50', generator_bound: 'no', server_rss_kib: '9000' };
      const csv = path.join(tmp, 'idle-median.csv');
      fs.writeFileSync(csv, [header.join(','),
        row({ ...base, target: 'parley', server_rss_per_conn_b: '5000', other_cpu_pct: '1' }),
        ...['40000', '-2000', '45000'].map((b) => row({ ...base, target: 'reflector', server_rss_per_conn_b: b, other_cpu_pct: '50' })),
      ].join('\n') + '\n');
      const r = await runProgram('sh', [script, '-T', '-o', csv], { env });
      t.like(r.stdout, /^idle +idle 50 +parley .* - +8\.0M 0\/0/m,
        'table -T: the median of noisy idle runs is by RSS per connection (the reflector\'s 40,000 B against 5,000 B: 8.0M)');
      t.like(r.stdout, /^idle +idle 50 +reflector .* NOISY/m, 'table -T: the reflector\'s idle line is marked NOISY');
    }
    const bad = await runProgram('sh', [script, '-q'], { env });
    t.ok(bad.code !== 0 && /-g/.test(bad.stderr) && /-x GEN_ARGS/.test(bad.stderr) && /growth \(a max fanout run per room/.test(bad.stderr),
      'an unknown option prints the usage, which names -g, -x and the growth scenario');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
