#!/usr/bin/env node
'use strict';
// The third-party plugin path, end to end: install Parley into a temporary
// prefix, build contrib/example-plugin out of tree with nothing but
// `pkg-config parley-plugin`, install it into the plugin directory
// pkg-config names, and run the installed parleyd with it: listed logins
// connect, others are denied.  The plugin exports only its entry symbol; a
// plugin built for another ABI version is refused with a clear log line and
// parleyd exits non-zero.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const stompit = require('stompit');
const t = require('../lib/tap');
const { startParley, freePort, httpGet, basic, iniText, sleep, ROOT } = require('../lib/parley');
const { connectWs } = require('../lib/stomp');

const SRCDIR = path.resolve(process.env.PARLEY_SRCDIR || ROOT);
const JOBS = String(Math.max(2, os.cpus().length));

// Run a command to completion; never throws.  Returns { code, out }.
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, Object.assign({ encoding: 'utf8', timeout: 240000, maxBuffer: 64 << 20 }, opts));
  const out = (r.stdout || '') + (r.stderr || '') + (r.error ? `\n${r.error.message}` : '');
  return { code: r.status === null ? -1 : r.status, out, stdout: r.stdout || '', stderr: r.stderr || '' };
}

function tail(s, n = 40) { return s.split('\n').slice(-n).join('\n'); }

// Exported (defined, dynamic) symbol names of a shared object.
function exportedSymbols(so) {
  const r = run('nm', ['-D', '--defined-only', so]);
  if (r.code !== 0) return [`nm failed: ${r.out.trim()}`];
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3).map((f) => f[2]).sort();
}

// STOMP over TCP with stompit; resolves to { client } or { error }.
function stompTcp(port, login) {
  return new Promise((resolve) => {
    const c = stompit.connect({ host: '127.0.0.1', port, timeout: 5000, connectHeaders: { host: '/', login, passcode: 'x', 'heart-beat': '0,0' } },
      (err, client) => {
        if (err) resolve({ error: err });
        else resolve({ client });
      });
    c.on('error', () => {});	// reported through the callback
  });
}

t.run(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-example-'));
  const prefix = path.join(tmp, 'inst');
  let srv = null;
  // never leave a parleyd behind, whatever happens
  process.on('exit', () => { if (srv && srv.proc && !srv.exited) srv.proc.kill('SIGKILL'); });
  try {
    // ---------------------------------------------- install into a prefix
    const bdir = path.join(tmp, 'build');
    fs.mkdirSync(bdir);
    let r = run(path.join(SRCDIR, 'configure'), [`--prefix=${prefix}`, '--with-sqlite=yes',
      '--without-redis', '--without-kafka', '--without-mysql', '--without-mongodb',
      '--without-s3', '--without-jwt', '--without-users'], { cwd: bdir });
    if (!t.ok(r.code === 0, 'configure --prefix=TMP')) { t.diag(tail(r.out)); return; }
    r = run('make', [`-j${JOBS}`, 'install'], { cwd: bdir });
    if (!t.ok(r.code === 0, 'make install into the temporary prefix')) { t.diag(tail(r.out)); return; }
    const parleyd = path.join(prefix, 'sbin', 'parleyd');
    t.ok(fs.existsSync(parleyd) && fs.existsSync(path.join(prefix, 'include', 'parley', 'plugin.h')),
      'parleyd and include/parley/plugin.h are installed');
    const ini = path.join(prefix, 'etc', 'parley', 'parley.ini');
    r = run(parleyd, ['-t', '-c', ini]);
    if (!t.is(r.code, 0, 'the installed etc/parley/parley.ini passes parleyd -t')) t.diag(tail(r.out));

    // ---------------------------------------------- pkg-config parley-plugin
    const env = Object.assign({}, process.env, { PKG_CONFIG_PATH: path.join(prefix, 'lib', 'pkgconfig') });
    r = run('pkg-config', ['--cflags', 'parley-plugin'], { env });
    t.is(r.stdout.trim(), `-I${path.join(prefix, 'include')}`, 'pkg-config --cflags parley-plugin names the installed headers');
    r = run('pkg-config', ['--variable=plugindir', 'parley-plugin'], { env });
    const plugindir = r.stdout.trim();
    t.is(plugindir, path.join(prefix, 'lib', 'parley'), 'pkg-config --variable=plugindir is the installed plugin directory');
    for (const so of fs.readdirSync(plugindir).filter((f) => f.endsWith('.so')).sort()) {
      t.deep(exportedSymbols(path.join(plugindir, so)), ['parley_plugin_entry'], `installed ${so} exports only parley_plugin_entry`);
    }

    // ---------------------------------------------- build the example out of tree
    const ex = path.join(tmp, 'example-plugin');
    fs.mkdirSync(ex);
    for (const f of ['Makefile', 'allowlist.c', 'README.md']) {
      fs.copyFileSync(path.join(SRCDIR, 'contrib', 'example-plugin', f), path.join(ex, f));
    }
    r = run('make', [], { cwd: ex, env });
    if (!t.ok(r.code === 0, 'contrib/example-plugin builds out of tree with make')) { t.diag(tail(r.out)); return; }
    t.like(r.out, /-fvisibility=hidden/, 'built with -fvisibility=hidden');
    t.deep(exportedSymbols(path.join(ex, 'allowlist.so')), ['parley_plugin_entry'], 'allowlist.so exports only parley_plugin_entry');
    r = run('make', ['install'], { cwd: ex, env });
    t.ok(r.code === 0 && fs.existsSync(path.join(plugindir, 'allowlist.so')), 'make install puts allowlist.so into the plugin directory');
    if (r.code !== 0) t.diag(tail(r.out));

    // ---------------------------------------------- run it
    srv = await startParley({
      binary: parleyd,
      dir: fs.mkdtempSync(path.join(tmp, 'srv-')),
      ini: {
        server: { plugin_dir: plugindir },
        auth: { plugins: 'allowlist' },
        allowlist: { logins: 'alice, carol' },
      },
    });
    t.like(srv.log(), /loaded auth plugin allowlist 1\.0/, 'the installed parleyd loads the allowlist plugin');
    t.ok(!/unknown section \[allowlist\]/.test(srv.log()), 'no unknown-section warning for the selected plugin\'s section');

    const carol = await connectWs(srv, { login: 'carol' });
    t.ok(true, 'carol (listed) connects over WebSocket');
    carol.subscribe('lobby');
    const alice = await stompTcp(srv.stompPort, 'alice');
    if (!t.ok(alice.client, 'alice (listed) connects over STOMP TCP')) t.diag(String(alice.error && alice.error.message));
    if (alice.client) {
      await sleep(200);
      await new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error('no RECEIPT for alice\'s SEND')), 10000);
        const f = alice.client.send({ destination: '/room/lobby', 'content-type': 'text/plain' },
          { onReceipt: () => { clearTimeout(timer); res(); } });
        f.write('hello from tcp');
        f.end();
      });
      await carol.wait(() => carol.received.some((m) => m.body === 'hello from tcp'), 10000, 'alice\'s message');
      const m = carol.received.find((x) => x.body === 'hello from tcp');
      t.is(m.headers.sender, 'alice', 'the message carries the login the plugin allowed');
      alice.client.disconnect();
    }

    let denied = null;
    try {
      const c = await connectWs(srv, { login: 'mallory' });
      await c.close();
    } catch (e) { denied = e; }
    t.like(denied && denied.message, /STOMP ERROR: authentication failed/, 'mallory (not listed) is denied over WebSocket');
    // (not over TCP with stompit: it throws an unhandled 'error' on ERROR
    // frames that carry content-type text/plain, as Parley's do)
    denied = null;
    try {
      const c = await connectWs(srv, { login: '' });
      await c.close();
    } catch (e) { denied = e; }
    t.like(denied && denied.message, /STOMP ERROR: authentication failed/, 'a CONNECT with an empty login is denied');
    t.like(srv.log(), /authentication failed for 'mallory': no auth plugin accepted/, 'the denial is logged: every plugin deferred');

    let h = await httpGet(`${srv.http}/api/v1/rooms`, basic('alice'));
    t.is(h.status, 200, 'REST: alice is let in');
    h = await httpGet(`${srv.http}/api/v1/rooms`, basic('mallory'));
    t.is(h.status, 401, 'REST: mallory gets 401');
    h = await httpGet(`${srv.http}/metrics`);
    t.like(h.body, /parley_allowlist_total\{result="allow"\} [1-9]/, '/metrics shows the plugin\'s allow counter');
    t.like(h.body, /parley_allowlist_total\{result="defer"\} [1-9]/, '/metrics shows the plugin\'s defer counter');

    await carol.close();
    t.is(await srv.stop(), 0, 'SIGTERM: the installed parleyd exits 0');
    srv = null;

    // ---------------------------------------------- refusals
    const abi = Number((run(parleyd, ['-v']).stdout.match(/plugin ABI (\d+)/) || [])[1]);
    t.ok(abi >= 1, `parleyd -v names its plugin ABI version (${abi})`);
    const bad = path.join(tmp, 'badabi.c');
    fs.writeFileSync(bad, `#include <parley/plugin.h>
static const struct parley_auth_ops ops = { .size = sizeof(struct parley_auth_ops) };
static const struct parley_plugin plugin = {
	.abi_version = PARLEY_ABI_VERSION + 1,
	.kind = PARLEY_PLUGIN_AUTH,
	.name = "badabi",
	.version = "0",
	.auth = &ops,
};
PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return &plugin;
}
`);
    const cflags = run('pkg-config', ['--cflags', 'parley-plugin'], { env }).stdout.trim().split(/\s+/).filter(Boolean);
    r = run('cc', [...cflags, '-Wall', '-Wextra', '-Werror', '-fPIC', '-fvisibility=hidden', '-shared', '-o', path.join(plugindir, 'badabi.so'), bad]);
    if (!t.ok(r.code === 0, 'a plugin claiming ABI version N+1 builds')) t.diag(tail(r.out));

    async function runWith(extra, args = []) {
      const dir = fs.mkdtempSync(path.join(tmp, 'run-'));
      const ini = {
        server: { listen: `127.0.0.1:${await freePort()}`, stomp_listen: `127.0.0.1:${await freePort()}`, plugin_dir: plugindir },
        sqlite: { path: 'parley.db' },
        fs: { dir: 'media' },
      };
      for (const [s, kv] of Object.entries(extra)) ini[s] = Object.assign(ini[s] || {}, kv);
      fs.writeFileSync(path.join(dir, 'parley.ini'), iniText(ini));
      return run(parleyd, [...args, '-c', path.join(dir, 'parley.ini')], { cwd: dir, timeout: 15000, killSignal: 'SIGKILL' });
    }
    r = await runWith({ auth: { plugins: 'badabi' } });
    t.ok(r.code !== 0 && r.code !== -1, `parleyd refuses to start with it (exit ${r.code})`);
    t.like(r.stderr, new RegExp(`badabi\\.so: plugin ABI version ${abi + 1}, this server speaks ${abi}`),
      'the log line names the plugin\'s and the server\'s ABI versions');
    t.ok(!/listening on/.test(r.stderr), 'nothing was listening');

    r = await runWith({ auth: { plugins: 'allowlist' }, allowlist: { logins: '' } });
    t.is(r.code, 2, 'allowlist with an empty logins key: exit 2');
    t.like(r.stderr, /\[allowlist\] logins is missing or empty/, '... naming the section and key');
    r = await runWith({ auth: { plugins: 'allowlist' }, allowlist: { logins: 'ok, bad:name' } });
    t.is(r.code, 2, 'allowlist with a malformed login: exit 2');
    t.like(r.stderr, /\[allowlist\] logins: 'bad:name' is not a login/, '... naming the bad login');
    // parleyd -t runs the plugin's check hook: the same messages, before any start
    r = await runWith({ auth: { plugins: 'allowlist' }, allowlist: { logins: 'ok, bad:name' } }, ['-t']);
    t.is(r.code, 2, 'parleyd -t with a malformed login: exit 2 (the plugin\'s check hook)');
    t.like(r.stderr, /\[allowlist\] logins: 'bad:name' is not a login/, '... with the message a start gives');
    t.like(r.stderr, /auth plugin 'allowlist': its \[allowlist\] section is not accepted/, '... and the host names the plugin and its section');
    r = await runWith({ auth: { plugins: 'allowlist' }, allowlist: { logins: 'alice, carol' } }, ['-t']);
    t.is(r.code, 0, 'parleyd -t with good logins: exit 0');
    t.like(r.stdout, /configuration OK/, '... configuration OK');
  } finally {
    if (srv) await srv.stop().catch(() => {});
    if (!process.env.PARLEY_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    else t.diag(`kept ${tmp}`);
  }
}, { timeoutMs: 300000 });
