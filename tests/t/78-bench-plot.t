#!/usr/bin/env node
'use strict';
// bench/plot turns the benchmark's CSV into PNG charts with gnuplot: on the
// fifth round's data (fanout at fixed rates and at max, idle runs) all
// three charts, on the eighth round's growth data only the
// deliveries-vs-subscribers chart (the others are skipped and say so), and
// a missing CSV or no argument is an error with a message, not a chart.
const t = require('../lib/tap');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ROOT, runProgram } = require('../lib/parley');

const PLOT = path.join(ROOT, 'bench', 'plot');
const DATA = path.join(ROOT, 'bench', 'data');

// A PNG file of some substance: the signature, an IHDR of a plausible size.
function png(file) {
  if (!fs.existsSync(file)) return `${path.basename(file)} missing`;
  const b = fs.readFileSync(file);
  if (b.length < 8 || b.toString('latin1', 1, 4) !== 'PNG') return `${path.basename(file)} is not a PNG`;
  const w = b.readUInt32BE(16), h = b.readUInt32BE(20);
  if (w < 400 || h < 300) return `${path.basename(file)} is ${w}x${h}`;
  if (b.length < 5000) return `${path.basename(file)} has only ${b.length} bytes`;
  return 'ok';
}

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-plot-'));
  try {
    const all = path.join(tmp, 'all');
    let r = await runProgram('sh', [PLOT, path.join(DATA, '2026-11-24-s5.csv'), all], { env: { TMPDIR: tmp } });
    if (!t.is(r.code, 0, 'fifth round: bench/plot exits 0')) t.diag(r.stdout + r.stderr);
    for (const f of ['latency-vs-load.png', 'deliveries-vs-subs.png', 'rss-vs-conns.png']) {
      t.is(png(path.join(all, f)), 'ok', `fifth round: ${f} is a chart`);
      t.like(r.stderr, new RegExp(`plot: wrote .*${f}`), `fifth round: ${f} reported`);
    }

    const growth = path.join(tmp, 'growth');
    r = await runProgram('sh', [PLOT, path.join(DATA, '2026-11-24-s8-growth128.csv'), growth], { env: { TMPDIR: tmp } });
    t.is(r.code, 0, 'growth data: exits 0');
    t.is(png(path.join(growth, 'deliveries-vs-subs.png')), 'ok', 'growth data: deliveries-vs-subs.png is a chart');
    t.ok(!fs.existsSync(path.join(growth, 'latency-vs-load.png')) && !fs.existsSync(path.join(growth, 'rss-vs-conns.png')),
      'growth data: no latency or RSS chart without such runs');
    t.like(r.stderr, /no data for latency-vs-load\.png, skipped/, 'growth data: the skipped chart is named');

    r = await runProgram('sh', [PLOT, path.join(tmp, 'nope.csv')], { env: { TMPDIR: tmp } });
    t.ok(r.code !== 0 && /plot: cannot read .*nope\.csv/.test(r.stderr), 'a missing CSV: non-zero exit, the file named');
    r = await runProgram('sh', [PLOT], { env: { TMPDIR: tmp } });
    t.ok(r.code === 2 && /usage: .*RESULTS\.csv/.test(r.stderr), 'no argument: usage, exit 2');
    t.deep(fs.readdirSync(tmp).filter((f) => f.startsWith('parley-plot.')), [], 'no temporary directory left behind');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
