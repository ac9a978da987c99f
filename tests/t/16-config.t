#!/usr/bin/env node
'use strict';
// Configuration and command line: a bad value stops parleyd with exit 2
// before it listens, with one line per problem naming file, section, key,
// value and what is allowed; an unknown plugin stops it with a clear line;
// unknown keys/sections are warnings and the server starts; -t, -v, -h.
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const t = require('../lib/tap');
const { startParley, runParleyd, freePort, httpGet, PLUGIN_DIR, ROOT } = require('../lib/parley');

const servers = [];
process.on('exit', () => { for (const s of servers) if (s.proc && !s.exited) s.proc.kill('SIGKILL'); });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-config-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
function ini(name, text) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}
const base = (port) => `[server]\nlisten = 127.0.0.1:${port}\nstomp_listen =\nplugin_dir = ${PLUGIN_DIR}\n[sqlite]\npath = test.db\n[fs]\ndir = media\n`;

// hold a port: if parleyd tried to listen on it, it would fail differently
function holdPort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

t.run(async () => {
  // ------------------------------------------------------------ options
  let r = await runParleyd(['-v']);
  t.is(r.code, 0, '-v exits 0');
  t.like(r.stdout, /^parleyd \d+\.\d+\.\d+/, `-v prints the version (${r.stdout.trim()})`);
  r = await runParleyd(['-h']);
  t.is(r.code, 0, '-h exits 0');
  t.like(r.stdout, /usage: parleyd/, '-h prints usage on stdout');
  t.ok(/-c FILE/.test(r.stdout) && /-t\b/.test(r.stdout) && /-v\b/.test(r.stdout), '-h lists -c, -t, -v');
  r = await runParleyd(['-x']);
  t.is(r.code, 2, 'an unknown option exits 2');
  t.like(r.stderr, /usage: parleyd/, 'with usage on stderr');
  r = await runParleyd(['-t', '-c', path.join(dir, 'x.ini'), 'extra']);
  t.is(r.code, 2, 'a stray argument exits 2');

  // ------------------------------------------------------------ -t
  const port = await freePort();
  const good = ini('good.ini', base(port));
  r = await runParleyd(['-t', '-c', good]);
  t.is(r.code, 0, '-t on a good config exits 0');
  t.like(r.stdout, /configuration OK/, '-t says the configuration is OK');
  t.ok(!fs.existsSync(path.join(dir, 'test.db')), '-t does not open storage');
  // -t also checks the plugins exist: point plugin_dir at the build's
  const dflt = fs.readFileSync(path.join(ROOT, 'etc', 'parley.ini'), 'utf8')
    .replace(/^;plugin_dir = .*$/m, `plugin_dir = ${PLUGIN_DIR}`);
  r = await runParleyd(['-t', '-c', ini('default.ini', dflt)]);
  t.is(r.code, 0, '-t on etc/parley.ini (the embedded defaults) exits 0');
  r = await runParleyd(['-t', '-c', ini('empty.ini', `[server]\nplugin_dir = ${PLUGIN_DIR}\n`)]);
  t.is(r.code, 0, '-t on a file with only plugin_dir (all other defaults) exits 0');
  r = await runParleyd(['-t', '-c', path.join(dir, 'missing.ini')]);
  t.is(r.code, 2, '-t on a missing file exits 2');
  t.like(r.stderr, /missing\.ini.*(No such file|cannot open)/, 'naming the file and the reason');

  // ------------------------------------------------------------ bad values
  const bad = [
    ['server', 'listen', 'nonsense', /host:port/],
    ['server', 'listen', '127.0.0.1:99999', /1\.\.65535|port/],
    ['server', 'stomp_listen', 'localhost', /host:port|port/],
    ['server', 'max_frame', '-1', /1k\.\.64m/],
    ['server', 'max_frame', '100g', /1k\.\.64m/],
    ['server', 'max_outbound', '1k', /64k\.\.1g/],
    ['server', 'max_headers', 'many', /1\.\.1024/],
    ['server', 'workers', '0', /1\.\.64/],
    ['server', 'heartbeat_ms', '-5', /0\.\.3600000/],
    ['server', 'log_level', 'loud', /error.*warn.*info.*debug/],
    ['batch', 'size', '0', /1\.\.100000/],
    ['auth', 'allow_open', 'maybe', /true|false|yes|no/],
  ];
  for (const [sec, key, val, allowed] of bad) {
    const text = base(port).replace('[sqlite]', sec === 'server' ? `${key} = ${val}\n[sqlite]` : `[${sec}]\n${key} = ${val}\n[sqlite]`);
    const f = ini(`bad-${sec}-${key}.ini`, text);
    r = await runParleyd(['-t', '-c', f]);
    const line = r.stderr.split('\n').find((l) => l.includes(key)) || '';
    t.is(r.code, 2, `-t: [${sec}] ${key} = ${val}: exit 2`);
    t.ok(line.includes(path.basename(f)) && line.includes(`[${sec}]`) && line.includes(key) && line.includes(val),
      `the line names file, [${sec}], ${key} and '${val}': ${line}`);
    t.like(line, allowed, `and what is allowed`);
  }
  // a plugin's keys are read when it starts: exit 2 before listening
  {
    const f = ini('bad-sqlite-ckpt.ini', base(port).replace('path = test.db', 'path = test.db\nwal_autocheckpoint = -1'));
    r = await runParleyd(['-c', f], { cwd: dir });
    const line = r.stderr.split('\n').find((l) => l.includes('wal_autocheckpoint')) || '';
    t.is(r.code, 2, '[sqlite] wal_autocheckpoint = -1: exit 2 at start');
    t.ok(line.includes(path.basename(f)) && line.includes('[sqlite]') && line.includes("'-1'") && /0\.\.10000000/.test(line),
      `the line names file, [sqlite], the key, the value and the range: ${line}`);
  }
  // two problems: one line each
  r = await runParleyd(['-t', '-c', ini('two.ini', base(port).replace('[sqlite]', 'max_frame = -1\nworkers = 1000\n[sqlite]'))]);
  t.is(r.code, 2, 'two bad values: exit 2');
  t.ok(r.stderr.split('\n').filter((l) => /max_frame|workers/.test(l)).length === 2, 'one line per problem (max_frame and workers)');
  r = await runParleyd(['-t', '-c', ini('open.ini', base(port) + '[auth]\nplugins = open\nallow_open = false\n')]);
  t.is(r.code, 2, '[auth] plugins = open with allow_open = false: exit 2');
  t.like(r.stderr, /allow_open/, 'naming allow_open');

  // ------------------------------------------------------------ before listening
  const held = await holdPort();
  const heldPort = held.address().port;
  const before = ini('before.ini', base(heldPort).replace('[sqlite]', 'max_frame = -1\n[sqlite]'));
  r = await runParleyd(['-c', before], { cwd: dir });
  t.is(r.code, 2, 'running with a bad value exits 2');
  t.like(r.stderr, /\[server\] max_frame = '-1'/, 'naming [server] max_frame and the value');
  t.ok(!/cannot listen|listening on|ready/.test(r.stderr), 'before trying to listen (the port we hold was never tried)');
  t.ok(!fs.existsSync(path.join(dir, 'test.db')), 'and before opening storage');

  const nopl = ini('noplugin.ini', base(heldPort) + '[storage]\nplugin = nosuch\n');
  r = await runParleyd(['-c', nopl], { cwd: dir });
  t.ok(r.code !== 0, `an unknown storage plugin stops start-up (exit ${r.code})`);
  t.is(r.code, 2, 'with exit 2 (a configuration error)');
  t.like(r.stderr, /storage plugin 'nosuch'/, `the log names the kind and the name: ${(r.stderr.split('\n').find((l) => /nosuch/.test(l)) || '').slice(0, 200)}`);
  t.ok(!/cannot listen|listening on/.test(r.stderr), 'before listening');
  r = await runParleyd(['-c', ini('noauth.ini', base(heldPort) + '[auth]\nplugins = open, bogus\n')], { cwd: dir });
  t.is(r.code, 2, 'an unknown auth plugin in the chain: exit 2');
  t.like(r.stderr, /auth plugin 'bogus'/, 'naming it');
  r = await runParleyd(['-c', ini('nodir.ini', base(heldPort).replace(PLUGIN_DIR, path.join(dir, 'no-such-dir')))], { cwd: dir });
  t.is(r.code, 2, 'a plugin_dir without plugins: exit 2');
  t.like(r.stderr, /no-such-dir/, 'naming the directory');
  r = await runParleyd(['-t', '-c', nopl]);
  t.is(r.code, 2, '-t catches an unknown plugin name too (exit 2)');
  t.like(r.stderr, /\[storage\] plugin/, '-t names [storage] plugin');
  held.close();

  // a port in use: exit non-zero, naming it
  const held2 = await holdPort();
  r = await runParleyd(['-c', ini('inuse.ini', base(held2.address().port))], { cwd: dir });
  t.ok(r.code !== 0, `listen on a port in use: exit ${r.code}`);
  t.like(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${held2.address().port}`), 'naming the address');
  held2.close();

  // ------------------------------------------------------------ warnings
  const srv = await startParley({ ini: { server: { colour: 'blue' }, nosuch: { x: 1 } } });
  servers.push(srv);
  t.is((await httpGet(`${srv.http}/healthz`)).status, 200, 'unknown key and section: the server starts anyway');
  t.like(srv.log(), /warning: unknown key \[server\] colour/, 'warning names the unknown key');
  t.like(srv.log(), /warning: unknown section \[nosuch\]/, 'warning names the unknown section');
  t.like(srv.log(), new RegExp(srv.cfgFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '|parley\\.ini'), 'warnings name the file');
  t.is(await srv.stop(), 0, 'clean stop');
  r = await runParleyd(['-t', '-c', ini('warn.ini', base(port).replace('[sqlite]', 'colour = blue\n[sqlite]'))]);
  t.is(r.code, 0, '-t with only an unknown key exits 0');
  t.like(r.stderr, /unknown key \[server\] colour/, 'and warns');

  // log_level is honoured: debug shows debug lines, error hides info
  const dbg = await startParley({ ini: { server: { log_level: 'error' } } });
  servers.push(dbg);
  await httpGet(`${dbg.http}/healthz`);
  t.ok(!/ info /.test(dbg.log()), 'log_level = error: no info lines');
  await dbg.stop();
});
