'use strict';
// The AddressSanitizer + UndefinedBehaviorSanitizer build (tests/run-all.sh
// builds it in build-asan with ../configure --enable-sanitizers), for tests
// that run parleyd under the sanitizers.
//
//   ASAN_BIN, ASAN_PLUGINS   its parleyd and plugin directory
//   SAN_ENV                  environment: stop at the first report, exit 23
//   sanReport(log)           the first sanitizer report in a log, or ''
//   asanMissing()            why the build cannot be used, or ''
//   bothBuilds(t, run)       await run('build'), then run('ASan build',
//                            ASAN_BIN, ASAN_PLUGINS), or a skip saying why
const fs = require('fs');
const path = require('path');
const { ROOT } = require('./parley');

const ASAN = path.resolve(ROOT, process.env.PARLEY_ASAN_BUILD || 'build-asan');
const ASAN_BIN = path.join(ASAN, 'parleyd');
const ASAN_PLUGINS = path.join(ASAN, 'plugins', '.libs');
const SAN_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=23',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  LSAN_OPTIONS: 'exitcode=23',
};
const SAN_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer|WARNING: AddressSanitizer/;

function sanReport(log) {
  const i = String(log).search(SAN_RE);
  return i === -1 ? '' : log.slice(Math.max(0, i - 200), i + 6000);
}

function asanMissing() {
  if (fs.existsSync(ASAN_BIN) && fs.existsSync(path.join(ASAN_PLUGINS, 'sqlite.so'))) return '';
  return `ASan build missing: ${ASAN_BIN} and ${ASAN_PLUGINS}/sqlite.so (tests/run-all.sh builds it: ../configure --enable-sanitizers)`;
}

async function bothBuilds(t, run) {
  await run('build');
  const why = asanMissing();
  if (why) t.skip('ASan build', why);
  else await run('ASan build', ASAN_BIN, ASAN_PLUGINS);
}

module.exports = { ASAN_BIN, ASAN_PLUGINS, SAN_ENV, SAN_RE, sanReport, asanMissing, bothBuilds };
