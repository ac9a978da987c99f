'use strict';
// The load generator for tests that run it, and its CSV.
//
//   const pb = await generator(tmp)   path of parley-bench: the tree's build
//                                     (PARLEY_BUILD/bench) if it made one,
//                                     else built from bench/Makefile in tmp
//   csvRows(file)                     every row as an object by column name
//   lastRow(file)                     the last one
const fs = require('fs');
const path = require('path');
const { ROOT, runProgram } = require('./parley');

const BUILD = process.env.PARLEY_BUILD ? path.resolve(process.env.PARLEY_BUILD) : path.join(ROOT, 'build');

async function generator(tmp) {
  const built = path.join(BUILD, 'bench', 'parley-bench');
  if (fs.existsSync(built)) return built;
  const dir = path.join(tmp, 'bench');
  fs.mkdirSync(dir, { recursive: true });
  const r = await runProgram('make', ['-s', '-C', path.join(ROOT, 'bench'), `B=${dir}`]);
  if (r.code !== 0) throw new Error(`building bench/parley-bench failed:\n${r.stdout}${r.stderr}`);
  return path.join(dir, 'parley-bench');
}

function csvRows(file) {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  return lines.slice(1).map((l) => {
    const v = l.split(','), o = {};
    head.forEach((h, i) => { o[h] = v[i]; });
    return o;
  });
}

function lastRow(file) {
  const rows = csvRows(file);
  return rows.length > 0 ? rows[rows.length - 1] : {};
}

module.exports = { generator, csvRows, lastRow };
