#!/usr/bin/env python3
"""Config fuzzer: mutated parley.ini files against `parleyd -t` and a real
start, to find crashes in the config readers (core and plugins) and
disagreements between the check and the start.

    contrib/fuzz-config.py --parleyd PATH --plugin-dir DIR
                           [--check-parleyd PATH --check-plugin-dir DIR]
                           [--seed N] [-n COUNT] [--start-every K]

Each round takes a complete config that uses only plugins needing no
service (sqlite, local, fs, users, jwt, open), changes one to four things
-- a value swapped for one that is right, nearly right or wrong for its
type (sizes, ranges, booleans, host:port, paths, enums, very long, control
characters), a line dropped or doubled, an unknown key or section, a broken
section header, junk, a different plugin -- and runs `parleyd -t` on it
(the --check-parleyd, e.g. the ASan build, if given).  It must:

- exit 0 printing "configuration OK", or exit 2 naming the file;
- print no sanitizer report and not hang (10 s);
- and every --start-every'th config -t accepted must also start: the
  server (--parleyd) must get to "ready" (it is stopped right after), not
  exit 2.  That is the promise of -t: what it accepts, a start accepts.

Exit 0 when every round held, 1 after the first that did not (its config
is printed).  The same seed gives the same configs.
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SAN_RE = re.compile(r'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|'
                    r'SUMMARY: (Address|Undefined|Leak)Sanitizer')

# password 'x' (openssl passwd -6 -salt saltsalt x)
HASH = ('$6$saltsalt$8RWsOfwR6M6PpnoeQiEiWzNTPo1f0HjVYjDnLZhGx16aBFRkeqiHAzfX'
        'P/LgrOWMBMXqiU2pLrXsSOHNUyUm91')
USERS = 'alice:%s:admin\nbob:%s\n' % (HASH, HASH)


def base_config(port, sport):
    return [
        ('server', [('plugin_dir', '@PLUGINS@'),
                    ('listen', '127.0.0.1:%d' % port),
                    ('stomp_listen', '127.0.0.1:%d' % sport),
                    ('log_level', 'info'), ('origins', ''), ('workers', '2'),
                    ('max_frame', '64k'), ('max_headers', '64'),
                    ('max_header', '8k'), ('max_outbound', '4m'),
                    ('max_http_body', '1m'), ('heartbeat_ms', '10000'),
                    ('heartbeat_tolerance_pct', '50'),
                    ('connect_timeout_ms', '10000'),
                    ('max_subscriptions', '256'), ('presence_max', '1000'),
                    ('gather_min', '1200'), ('instance_id', ''),
                    ('resume_max', '1000'), ('history_max', '500'),
                    ('drain_timeout_ms', '500')]),
        ('backplane', [('plugin', 'local')]),
        ('storage', [('plugin', 'sqlite')]),
        ('media', [('plugin', 'fs'), ('max_size', '10m'),
                   ('allowed_types', 'image/*, text/plain')]),
        ('auth', [('plugins', 'users, jwt'), ('allow_open', 'false')]),
        ('limits', [('msg_rate', '50'), ('msg_burst', '100'),
                    ('byte_rate', '1m'), ('byte_burst', '4m'),
                    ('throttle_max_ms', '5000'),
                    ('ip_max_connections', '1000'),
                    ('ip_connect_rate', '100'), ('ip_connect_burst', '200'),
                    ('log_lines_per_minute', '60'), ('ipv6_prefix', '64'),
                    ('trusted_proxies', '')]),
        ('permissions', [('default', 'read,write'), ('admin_role', 'admin'),
                         ('moderator_role', 'moderator')]),
        ('rooms', [('announcements', '@staff:read+write+moderate, *:read'),
                   ('ops-*', '@ops:read+write, *:')]),
        ('batch', [('size', '256'), ('interval_ms', '0'),
                   ('max_pending', '100000')]),
        ('sqlite', [('path', 'parley.db'), ('synchronous', 'normal'),
                    ('wal_autocheckpoint', '10000'),
                    ('busy_timeout_ms', '5000')]),
        ('fs', [('dir', 'media')]),
        ('users', [('file', 'users')]),
        ('jwt', [('secret_file', 'jwt-secret'), ('issuer', 'https://a.example'),
                 ('audience', 'parley'), ('leeway', '30'),
                 ('require_exp', 'true'), ('roles_claim', 'roles'),
                 ('grants_claim', 'rooms'), ('algorithms', 'HS256')]),
    ]


class Fuzz:
    def __init__(self, a):
        self.a = a
        self.r = random.Random(a.seed)

    def value(self, key, old):
        r = self.r
        pool = ['', '0', '1', '-1', '2', '65535', '65536', '4294967296',
                '9223372036854775807', '9223372036854775808', '99999999999999999999',
                '1k', '64k', '1m', '64m', '1g', '1t', '0k', '-1k', '1.5', '1e3',
                '0x10', ' 7 ', 'true', 'false', 'yes', 'off', 'maybe', 'none',
                'normal', 'full', 'extra', 'off', 'FULL', 'debug', 'warn', 'loud',
                '127.0.0.1:0', '127.0.0.1:65536', '[::1]:8080', '::1:8080',
                ':8080', 'host:', 'localhost:80', '0.0.0.0:-1', '/', '.', '..',
                '/nonexistent/dir/x', 'a' * 5000, '\u00e9\u2603', '%s%n%x',
                '"quoted"', "'", 'a;b', 'a # b', '\\', '\t', 'HS256', 'RS256, HS512',
                'nope', 'read', 'read,write,moderate', 'bogus', '@x:read', '*:',
                'image/*', '*/*', 'a/b/c', '10.0.0.0/8', '1.2.3.4/33', 'x/y']
        k = r.random()
        if k < 0.3:	# right for its type, most of the time in range
            if re.fullmatch(r'\d+', old or ''):
                return str(r.randrange(1, 2 * int(old) + 2))
            if re.fullmatch(r'\d+[kmg]', old or ''):
                return '%d%s' % (r.randrange(1, 65), r.choice('km'))
            if old in ('true', 'false'):
                return r.choice(['true', 'false', 'yes', 'no', 'on', 'off', '1', '0'])
            if old in ('normal', 'full'):
                return r.choice(['normal', 'full'])
            if old == 'info':
                return r.choice(['error', 'warn', 'info', 'debug'])
            return old
        if k < 0.6:
            return r.choice(pool)
        if k < 0.7 and old:	# nearly right: the old value, bent
            i = r.randrange(len(old) + 1)
            return old[:i] + r.choice(['', 'x', '0', ',', ' ', ':', '9' * 20]) + old[i:]
        if k < 0.85 and re.fullmatch(r'\d+[kmg]?', old or ''):
            return str(int(re.match(r'\d+', old).group()) * r.choice([0, 2, 1000, 10 ** 9])) + \
                old[len(re.match(r'\d+', old).group()):]
        return ''.join(r.choice('ab09:/.,-_ *@+[]=;') for _ in range(r.randrange(1, 30)))

    def mutate(self, cfg):
        r = self.r
        head = ''
        tail = ''
        for _ in range(r.choice([1, 1, 1, 2, 2, 3, 4])):
            sec = r.randrange(len(cfg))
            name, kvs = cfg[sec]
            k = r.random()
            if k < 0.55 and kvs:
                i = r.randrange(len(kvs))
                kvs[i] = (kvs[i][0], self.value(kvs[i][0], kvs[i][1]))
            elif k < 0.62 and kvs:
                del kvs[r.randrange(len(kvs))]
            elif k < 0.67 and kvs:
                kvs.append(r.choice(kvs))
            elif k < 0.72:
                kvs.append((r.choice(['lisen', 'x', 'plugin', 'path', 'kafka.x', 'a' * 300]),
                            self.value('', '')))
            elif k < 0.76:
                cfg.append((r.choice(['redsi', 'server', 'users', '', 'a b', 'sqlite']), []))
            elif k < 0.80:
                head += r.choice(['key = before any section\n', '[server\n', 'junk\n',
                                  '[]\n', '= v\n', '\x00\n', ';only a comment\n'])
            elif k < 0.84:
                tail += r.choice(['[', 'k', 'k =', '[x]\nk = "unterminated\n',
                                  'x' * 70000 + '\n', '\xff\xfe\n'])
            elif k < 0.92:
                plug = r.choice([('storage', 'plugin', ['sqlite', 'nope', '../x', '', 'local']),
                                 ('backplane', 'plugin', ['local', 'sqlite', 'a/b']),
                                 ('media', 'plugin', ['fs', '', 'nope']),
                                 ('auth', 'plugins', ['users', 'jwt', 'users, users', 'open',
                                                      'jwt, users, jwt', '', 'users,,jwt'])])
                for n, kv in cfg:
                    if n == plug[0]:
                        kv[:] = [(a, b) for a, b in kv if a != plug[1]] + [(plug[1], r.choice(plug[2]))]
            else:
                cfg.append(('rooms', [(r.choice(['r', 'a*', '*', 'x' * 200]),
                                       self.value('', ''))]))
        return head + render(cfg) + tail

    def files(self, d):
        r = self.r
        bad = r.random() < 0.2
        with open(os.path.join(d, 'users'), 'w') as f:
            f.write(r.choice([USERS + 'bad line\n', '', 'x:y:z:w:v\n',
                              USERS + 'carol:$2b$bad\n']) if bad else USERS)
        os.chmod(os.path.join(d, 'users'), 0o600)
        with open(os.path.join(d, 'jwt-secret'), 'w') as f:
            f.write(r.choice(['short', '']) if r.random() < 0.1 else 's' * 40)

    def run(self):
        a = self.a
        started = 0
        accepted = 0
        for n in range(a.count):
            d = tempfile.mkdtemp(prefix='parley-fuzzcfg-')
            try:
                port, sport = free_port(), free_port()
                cfg = base_config(port, sport)
                # round 0: the config as it is, which must pass
                text = self.mutate(cfg) if n > 0 else render(cfg)
                self.files(d) if n > 0 else self.good_files(d)
                ini = os.path.join(d, 'parley.ini')
                with open(ini, 'w', encoding='utf-8', errors='surrogateescape') as f:
                    f.write(text.replace('@PLUGINS@', a.check_plugin_dir))
                code, out = run([a.check_parleyd, '-t', '-c', ini], d, 10)
                bad = None
                if code is None:
                    bad = 'parleyd -t did not finish in 10 s'
                elif SAN_RE.search(out):
                    bad = 'parleyd -t printed a sanitizer report'
                elif code == 0 and 'configuration OK' not in out:
                    bad = 'parleyd -t: exit 0 without "configuration OK"'
                elif code == 2 and ini not in out:
                    bad = 'parleyd -t: exit 2 without naming the file'
                elif code not in (0, 2):
                    bad = 'parleyd -t: exit %s (0 or 2 expected)' % code
                if bad is None and n == 0 and code != 0:
                    bad = 'the unmutated config is refused'
                if bad is None and code == 0:
                    accepted += 1
                    if a.start_every and (accepted - 1) % a.start_every == 0:
                        started += 1
                        with open(ini, 'w', encoding='utf-8', errors='surrogateescape') as f:
                            f.write(text.replace('@PLUGINS@', a.plugin_dir))
                        bad, out2 = start(a.parleyd, ini, d)
                        out += out2
                if bad:
                    print('fuzz-config: round %d (seed %d): %s\n--- config:\n%s\n--- output:\n%s'
                          % (n, a.seed, bad, text[:4000], out[-3000:]))
                    return 1
            finally:
                shutil.rmtree(d, ignore_errors=True)
        print('fuzz-config: %d configs (seed %d), %d accepted by -t, %d of those '
              'started: every check held' % (a.count, a.seed, accepted, started))
        return 0

    def good_files(self, d):
        with open(os.path.join(d, 'users'), 'w') as f:
            f.write(USERS)
        os.chmod(os.path.join(d, 'users'), 0o600)
        with open(os.path.join(d, 'jwt-secret'), 'w') as f:
            f.write('s' * 40)


def render(cfg):
    return ''.join('[%s]\n' % name + ''.join('%s = %s\n' % kv for kv in kvs)
                   for name, kvs in cfg)


def free_port():
    while True:
        p = random.randrange(10000, 30000)
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', p))
            return p
        except OSError:
            continue
        finally:
            s.close()


def run(cmd, cwd, timeout):
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout,
                           env=dict(os.environ, ASAN_OPTIONS='detect_leaks=1:exitcode=23',
                                    UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1'))
        return p.returncode, (p.stdout + p.stderr).decode('utf-8', 'replace')
    except subprocess.TimeoutExpired:
        return None, ''


def start(parleyd, ini, cwd):
    """Start it: ready is good; exit 2 (a config refusal -t missed) is not."""
    p = subprocess.Popen([parleyd, '-c', ini], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b''
    end = time.time() + 15
    os.set_blocking(p.stdout.fileno(), False)
    while time.time() < end:
        d = p.stdout.read() or b''
        out += d
        if b' ready: ' in out or p.poll() is not None:
            break
        time.sleep(0.02)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    out += p.stdout.read() or b''
    text = out.decode('utf-8', 'replace')
    if b' ready: ' in out:
        return None, text
    if 'Address already in use' in text:
        return None, text	# another process took the port: not a finding
    return 'parleyd -t accepted this config, a start exited %s' % p.returncode, text


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--parleyd', required=True)
    p.add_argument('--plugin-dir', required=True)
    p.add_argument('--check-parleyd', help='parleyd for -t (default --parleyd)')
    p.add_argument('--check-plugin-dir', help='its plugin dir (default --plugin-dir)')
    p.add_argument('--seed', type=int, default=int.from_bytes(os.urandom(4), 'big'))
    p.add_argument('-n', '--count', type=int, default=200)
    p.add_argument('--start-every', type=int, default=5,
                   help='start every K-th config -t accepts (0: never)')
    a = p.parse_args()
    a.check_parleyd = os.path.abspath(a.check_parleyd or a.parleyd)
    a.check_plugin_dir = os.path.abspath(a.check_plugin_dir or a.plugin_dir)
    a.parleyd = os.path.abspath(a.parleyd)
    a.plugin_dir = os.path.abspath(a.plugin_dir)
    sys.exit(Fuzz(a).run())


if __name__ == '__main__':
    main()
