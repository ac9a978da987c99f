#!/usr/bin/env node
'use strict';
// parleyd -t checks each selected plugin's section through the plugin's
// check hook: a bad value is refused with the message a start gives (and
// the host names the file and the plugin), a good section with its backend
// unreachable passes at once, and nothing is created or contacted.  Then
// contrib/fuzz-config.py: mutated configs against the ASan build's -t (no
// crash, no sanitizer report, exit 0 or 2 naming the file), and every
// other config -t accepts is started with the normal build, which must get
// to ready -- what -t accepts, a start accepts.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('../lib/tap');
const { PARLEYD, PLUGIN_DIR, ROOT } = require('../lib/parley');
const { freePort } = require('../lib/ports');
const { ASAN_BIN, ASAN_PLUGINS, sanReport, asanMissing } = require('../lib/asan');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-t85-'));
process.on('exit', () => { if (!process.env.PARLEY_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true }); });

// password 'x' (openssl passwd -6 -salt saltsalt x)
const HASH = '$6$saltsalt$8RWsOfwR6M6PpnoeQiEiWzNTPo1f0HjVYjDnLZhGx16aBFRkeqiHAzfXP/LgrOWMBMXqiU2pLrXsSOHNUyUm91';

let nrun = 0;
// write the config into a fresh directory and run parleyd on it
function parleyd(ini, args, { binary = PARLEYD, plugins = PLUGIN_DIR, timeout = 20000, files = {} } = {}) {
  const dir = path.join(tmp, `c${nrun++}`);
  fs.mkdirSync(dir);
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text, { mode: 0o600 });
  const file = path.join(dir, 'parley.ini');
  fs.writeFileSync(file, `[server]\nplugin_dir = ${plugins}\nlisten = 127.0.0.1:${ini.port || 1}\nstomp_listen =\n` +
    `[sqlite]\npath = parley.db\n[fs]\ndir = media\n${ini.text}`);
  const before = fs.readdirSync(dir).sort();
  const t0 = Date.now();
  const r = spawnSync(binary, [...args, '-c', file], { cwd: dir, encoding: 'utf8', timeout, killSignal: 'SIGKILL' });
  return { code: r.status, out: (r.stdout || '') + (r.stderr || ''), ms: Date.now() - t0, file,
    created: fs.readdirSync(dir).sort().filter((f) => !before.includes(f)) };
}

// each plugin: a section with a bad value, and a good one whose backend is down
const cases = [
  { plugin: 'sqlite', bad: '[sqlite]\nsynchronous = maybe\n', re: /\[sqlite\] synchronous = maybe: expected normal or full/,
    good: '[sqlite]\nsynchronous = full\n' },
  { plugin: 'fs', bad: '[fs]\ndir = /etc/passwd/media\n', re: /\[fs\] dir = '\/etc\/passwd\/media': cannot create: Not a directory/,
    good: '' },
  { plugin: 'redis', bad: '[backplane]\nplugin = redis\n[redis]\nurl = redis://127.0.0.1:1/0\nmaxlen = -1\n',
    re: /\[redis\] maxlen = '-1': out of range/, good: '[backplane]\nplugin = redis\n[redis]\nurl = redis://127.0.0.1:1/0\n' },
  { plugin: 'kafka', bad: '[backplane]\nplugin = kafka\n[kafka]\nbrokers = 127.0.0.1:1\nkafka.acks = lots\n',
    re: /\[kafka\] kafka\.acks = lots: Invalid value/, good: '[backplane]\nplugin = kafka\n[kafka]\nbrokers = 127.0.0.1:1\n',
    // each valid alone, refused together (only librdkafka's rd_kafka_new knows)
    bad2: { text: '[backplane]\nplugin = kafka\n[kafka]\nbrokers = 127.0.0.1:1\nkafka.enable.idempotence = true\n' +
      'kafka.max.in.flight.requests.per.connection = 10\n', re: /\[kafka\] producer: `max\.in\.flight` must be set <= 5/ } },
  { plugin: 'mysql', bad: '[storage]\nplugin = mysql\n[mysql]\nport = 1\npool_size = 999\n', re: /\[mysql\] pool_size = '999': out of range/,
    good: '[storage]\nplugin = mysql\n[mysql]\nport = 1\nconnect_timeout_ms = 5000\n' },
  { plugin: 'mongodb', bad: '[storage]\nplugin = mongodb\n[mongodb]\nuri = mongodb://127.0.0.1:1\nwrite_concern = 99\n',
    re: /\[mongodb\] write_concern = 99: expected majority or a number/, good: '[storage]\nplugin = mongodb\n[mongodb]\nuri = mongodb://127.0.0.1:1\n' },
  { plugin: 's3', bad: '[media]\nplugin = s3\n[s3]\nendpoint = http://127.0.0.1:1\nregion = r\nbucket = b\naccess_key = a\nsecret_key = s\n',
    re: /\[s3\] bucket = 'b': expected 3 to 63/,
    good: '[media]\nplugin = s3\n[s3]\nendpoint = http://127.0.0.1:1\nregion = r\nbucket = parley-media\naccess_key = a\nsecret_key = s\ncreate_bucket = true\n' },
  { plugin: 'users', bad: '[auth]\nplugins = users\n[users]\nfile = nope\n', re: /\[users\] file: \S+nope: No such file or directory/,
    good: '[auth]\nplugins = users\n[users]\nfile = users\n', files: { users: `alice:${HASH}\n` },
    bad2: { text: '[auth]\nplugins = users\n[users]\nfile = users\n', files: { users: `alice:${HASH}\nbob:nohash\n` }, re: /\[users\] \S+users:2: / } },
  { plugin: 'jwt', bad: '[auth]\nplugins = jwt\n[jwt]\nsecret = short\n', re: /\[jwt\] secret: 5 bytes; an HMAC secret needs at least 32/,
    good: '[auth]\nplugins = jwt\n[jwt]\nsecret_file = key\n', files: { key: 's'.repeat(40) } },
];

t.run(async () => {
  for (const c of cases) {
    if (!fs.existsSync(path.join(PLUGIN_DIR, `${c.plugin}.so`))) {
      t.ok(false, `${c.plugin}.so is built (${PLUGIN_DIR}): contrib/setup-debian.sh installs what it needs`);
      continue;
    }
    let r = parleyd({ text: c.bad }, ['-t'], { files: c.files });
    t.is(r.code, 2, `${c.plugin}: parleyd -t with a bad value: exit 2`);
    t.like(r.out, c.re, `${c.plugin}: ... with the plugin's message`);
    t.like(r.out, new RegExp(`${r.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\w+ plugin '${c.plugin}': its \\[${c.plugin}\\] section is not accepted`),
      `${c.plugin}: ... and the host's line names the file and the plugin`);
    if (c.bad2) {
      r = parleyd({ text: c.bad2.text }, ['-t'], { files: c.bad2.files });
      t.ok(r.code === 2 && c.bad2.re.test(r.out), `${c.plugin}: ${c.plugin === 'users' ? 'a bad line in its file: exit 2 naming file and line' : 'settings that conflict: exit 2 with librdkafka\'s reason'}`);
      if (r.code !== 2) t.diag(r.out);
    }
    // a start gives the same message, before listening
    const port = await freePort();
    r = parleyd({ text: c.bad, port }, [], { files: c.files });
    t.ok(r.code === 2 && c.re.test(r.out) && !/ ready: /.test(r.out),
      `${c.plugin}: a start with the same file exits 2 with the same message, before it is ready`);
    t.like(r.out, /: \w+ plugin '\w+' failed to start \(see above\)/, `${c.plugin}: ... the start's last line names the file`);
    // the good section: accepted at once, backend down, nothing created
    r = parleyd({ text: c.good }, ['-t'], { files: c.files });
    t.ok(r.code === 0 && /configuration OK/.test(r.out), `${c.plugin}: good section with its backend down: configuration OK`);
    if (r.code !== 0) t.diag(r.out);
    t.ok(r.ms < 3000, `${c.plugin}: ... in ${r.ms} ms (no connection attempt to wait for)`);
    t.deep(r.created, [], `${c.plugin}: ... and -t created nothing (no database file, no media directory)`);
  }

  // ---------------------------------------------- the fuzzer
  if (asanMissing()) { t.ok(false, asanMissing()); return; }
  for (const seed of [1, 2]) {
    const r = spawnSync('python3', [path.join(ROOT, 'contrib', 'fuzz-config.py'), '--parleyd', PARLEYD, '--plugin-dir', PLUGIN_DIR,
      '--check-parleyd', ASAN_BIN, '--check-plugin-dir', ASAN_PLUGINS, '--seed', String(seed), '-n', '200', '--start-every', '2'],
    { encoding: 'utf8', timeout: 240000 });
    const out = (r.stdout || '') + (r.stderr || '');
    const m = /(\d+) configs \(seed \d+\), (\d+) accepted by -t, (\d+) of those started/.exec(out);
    t.ok(r.status === 0 && m, `fuzz-config seed ${seed}: 200 mutated configs, -t and start agree` + (m ? ` (${m[2]} accepted, ${m[3]} started)` : ''));
    if (r.status !== 0) t.diag(out.slice(-4000));
    t.ok(m && Number(m[3]) >= 10, `fuzz-config seed ${seed}: enough accepted configs were started to mean something`);
    t.is(sanReport(out), '', `fuzz-config seed ${seed}: no sanitizer report`);
  }
});
