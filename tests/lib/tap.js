'use strict';
// Minimal TAP producer for prove: ok/is/like/fail/skip/diag, plan at the end.
// A test that throws or never calls done() fails (exit code non-zero).
let n = 0, failed = 0, finished = false;
function out(s) { process.stdout.write(s + '\n'); }
function ok(cond, name) {
  n++;
  if (!cond) failed++;
  out(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
  return !!cond;
}
function is(got, want, name) {
  const r = ok(got === want, name);
  if (!r) diag(`got: ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
  return r;
}
function like(got, re, name) {
  const r = ok(re.test(String(got)), name);
  if (!r) diag(`got: ${JSON.stringify(String(got)).slice(0, 500)}\nwant match: ${re}`);
  return r;
}
function deep(got, want, name) {
  const a = JSON.stringify(got), b = JSON.stringify(want);
  const r = ok(a === b, name);
  if (!r) diag(`got: ${a.slice(0, 800)}\nwant: ${b.slice(0, 800)}`);
  return r;
}
function skip(name, reason) { n++; out(`ok ${n} - ${name} # SKIP ${reason}`); }
function diag(s) { for (const l of String(s).split('\n')) out('# ' + l); }
function done() {
  finished = true;
  out(`1..${n}`);
  process.exitCode = failed ? 1 : 0;
}
// Run an async main; any exception is a failure with its stack shown.
function run(main, { timeoutMs = 120000 } = {}) {
  const timer = setTimeout(() => {
    ok(false, `test finished within ${timeoutMs} ms`);
    done();
    process.exit(1);
  }, timeoutMs);
  Promise.resolve().then(main).then(() => {
    clearTimeout(timer);
    if (!finished) done();
  }, (e) => {
    clearTimeout(timer);
    ok(false, 'no exception: ' + (e && e.message));
    diag(e && e.stack);
    done();
    process.exit(1);
  });
}
process.on('exit', () => { if (!finished) { out(`not ok ${++n} - test ended early`); out(`1..${n}`); process.exitCode = 1; } });
module.exports = { ok, is, like, deep, skip, diag, done, run };
