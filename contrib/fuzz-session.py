#!/usr/bin/env python3
"""Session fuzzer: random but plausible STOMP and HTTP traffic against a
running parleyd, to find crashes, hangs and sanitizer reports in the
session layer (what comes after the parsers: subscriptions, transactions,
acks, receipts, edits and deletes, resume, REST).

    contrib/fuzz-session.py --stomp HOST:PORT --http HOST:PORT
                            [--seed N] [--seconds S] [--clients N]

Each step picks one of several clients and sends it a frame built from
the protocol's own vocabulary (doc/protocol.md): real commands and header
names with values that are right, nearly right or wrong (ids and message
ids the server handed out, numbers at and past their limits, escapes,
control characters, long values), bodies with right and wrong
content-length, frames cut at random points, heart-beats, abrupt closes,
and now and then a REST request, a malformed HTTP request or a media
upload (raw or multipart/form-data, right or broken, in pieces).  Everything the server sends is read and
its message ids and positions are fed back into later frames.

Every few hundred steps the server must answer GET /healthz within 5 s;
at the end it must still accept a new session and route a message
between two fresh clients.  Exit 0 when it did, 1 (with the step and the
seed) when it stopped answering.  The same seed gives the same traffic,
not the same interleaving with the server: read a failure's last frames
(--trace FILE keeps them all).  Start parleyd from its sanitizer build
(build-asan) to catch memory errors that do not crash; tests/t/84 does.
"""
import argparse
import os
import random
import select
import socket
import sys
import time

ROOMS = ['/room/a', '/room/b', '/room/c.d', '/room/x_-1']
BAD_DEST = ['', '/room/', '/room/.x', '/topic/a', 'room/a', '/room/' + 'n' * 129,
            '/room/a/b', '/room/\u00e9', '/room/a b', '/ROOM/a', '/room/a\\c']
COMMANDS = ['SEND'] * 8 + ['SUBSCRIBE'] * 4 + ['UNSUBSCRIBE', 'ACK', 'NACK',
            'BEGIN', 'COMMIT', 'ABORT', 'DISCONNECT', 'CONNECT', 'STOMP',
            'MESSAGE', 'send', 'FOO', '', 'SEND ', ' SEND']
HEADERS = ['destination', 'id', 'ack', 'receipt', 'transaction',
           'content-type', 'content-length', 'event', 'ref-id', 'media-id',
           'since', 'history', 'message-id', 'subscription', 'accept-version',
           'host', 'login', 'passcode', 'heart-beat', 'x-other']
NUMBERS = ['0', '1', '-1', '2', '499', '500', '501', '65536', '4294967296',
           '18446744073709551615', '18446744073709551616', '1e3', '0x10',
           ' 1', '1 ', '+1', '', '00000000000000000000001', '9' * 40]


class Fuzz:
    def __init__(self, args):
        self.a = args
        self.r = random.Random(args.seed)
        self.sh, self.sp = args.stomp.rsplit(':', 1)
        self.hh, self.hp = args.http.rsplit(':', 1)
        self.clients = [None] * args.clients
        self.msg_ids = []
        self.positions = []
        self.sub_ids = {}
        self.tx = {}
        self.acks = {}
        self.ws = {}
        self.media_ids = []
        self.nmedia = 0
        self.ids_seen = set()
        self.parked = []
        self.trace = open(args.trace, 'wb') if args.trace else None

    # ---- values

    def rs(self, n):
        return ''.join(self.r.choice('abcXYZ019_-.:\\\n\r\t /\u00e9\u2603')
                       for _ in range(n))

    def value(self, h, c):
        r = self.r
        k = r.random()
        if h == 'destination':
            return r.choice(ROOMS) if k < 0.8 else r.choice(BAD_DEST)
        if h in ('id', 'subscription'):
            subs = self.sub_ids.get(c, [])
            if subs and k < 0.5:
                return r.choice(subs)
            return r.choice(['s%d' % r.randrange(6), '', 'x' * r.choice([1, 300, 5000])])
        if h in ('message-id', 'ref-id'):
            if self.msg_ids and k < 0.6:
                return r.choice(self.msg_ids)
            return r.choice(['', 'nope', 'x' * 65, 'a\\nb', 'a\\cb', 'a\\xb', self.rs(10)])
        if h == 'ack':
            return r.choice(['auto', 'client', 'client-individual', 'bogus', ''])
        if h == 'event':
            return r.choice(['typing', 'edit', 'delete', 'join', 'leave',
                             'resumed', 'Typing', ''])
        if h == 'transaction':
            txs = self.tx.get(c, [])
            if txs and k < 0.6:
                return r.choice(txs)
            return r.choice(['t%d' % r.randrange(4), '', 'x' * 300])
        if h == 'since':
            if self.positions and k < 0.5:
                return str(r.choice(self.positions) + r.choice([-1, 0, 1]))
            return r.choice(NUMBERS)
        if h == 'history':
            return r.choice(NUMBERS)
        if h == 'content-type':
            return r.choice(['text/plain', 'application/json', 'a' * 257,
                             'text/plain;charset=utf-8', 'a\\nb', 'x\\\\y', ''])
        if h == 'media-id':
            if self.media_ids and k < 0.5:
                return r.choice(self.media_ids)
            return r.choice(['abc', 'a' * 65, 'a/b', '', 'm-1_2'])
        if h == 'receipt':
            return r.choice(['r%d' % r.randrange(1000), '', 'x\\cy', 'x' * 2000])
        if h == 'heart-beat':
            return r.choice(['0,0', '10,10', '1000,1000', '-1,0', '1', 'a,b',
                             '4294967296,1', ''])
        if h == 'accept-version':
            return r.choice(['1.2', '1.0', '1.1', '1.0,1.1,1.2', '2.0', ''])
        if h == 'content-length':
            return r.choice(NUMBERS)
        return self.rs(r.randrange(20))

    def body(self):
        r = self.r
        k = r.random()
        if k < 0.4:
            return b'hello'
        if k < 0.6:
            return b''
        if k < 0.75:
            return bytes(r.randrange(256) for _ in range(r.randrange(64)))
        if k < 0.85:
            return b'{"body":"x"}'
        return b'y' * r.choice([1000, 65536, 70000])

    def valid(self, c):
        """A frame that is right for this session's state."""
        r = self.r
        subs = self.sub_ids.setdefault(c, [])
        txs = self.tx.setdefault(c, [])
        acks = self.acks.setdefault(c, [])
        k = r.random()
        hdrs = []
        body = b''
        if k < 0.45:
            cmd = 'SEND'
            hdrs.append(('destination', r.choice(ROOMS)))
            ev = r.random()
            if ev < 0.15:
                hdrs.append(('event', 'typing'))
            elif ev < 0.30 and self.msg_ids:
                hdrs.append(('event', r.choice(['edit', 'delete'])))
                hdrs.append(('ref-id', r.choice(self.msg_ids)))
            if txs and r.random() < 0.3:
                hdrs.append(('transaction', r.choice(txs)))
            if r.random() < 0.2:
                hdrs.append(('content-type', 'text/plain'))
            if self.media_ids and r.random() < 0.1:
                hdrs.append(('media-id', r.choice(self.media_ids)))
            body = self.body()
        elif k < 0.60:
            cmd = 'SUBSCRIBE'
            sid = 's%d' % r.randrange(1000)
            hdrs += [('destination', r.choice(ROOMS)), ('id', sid),
                     ('ack', r.choice(['auto', 'client', 'client-individual']))]
            if r.random() < 0.3:
                if self.positions and r.random() < 0.5:
                    hdrs.append(('since', str(r.choice(self.positions))))
                else:
                    hdrs.append(('history', str(r.randrange(0, 20))))
            subs.append(sid)
        elif k < 0.68 and subs:
            cmd = 'UNSUBSCRIBE'
            sid = r.choice(subs)
            subs.remove(sid)
            hdrs.append(('id', sid))
        elif k < 0.80 and acks:
            cmd = r.choice(['ACK', 'ACK', 'NACK'])
            hdrs.append(('id', r.choice(acks)))
            if txs and r.random() < 0.3:
                hdrs.append(('transaction', r.choice(txs)))
        elif k < 0.87:
            cmd = 'BEGIN'
            t = 't%d' % r.randrange(1000)
            txs.append(t)
            hdrs.append(('transaction', t))
        elif k < 0.95 and txs:
            cmd = r.choice(['COMMIT', 'ABORT'])
            t = r.choice(txs)
            txs.remove(t)
            hdrs.append(('transaction', t))
        elif k < 0.97:
            cmd = 'DISCONNECT'
        else:
            cmd = 'SEND'
            hdrs.append(('destination', r.choice(ROOMS)))
            body = b'x'
        if r.random() < 0.3:
            hdrs.append(('receipt', 'r%d' % r.randrange(10000)))
        return self.encode(cmd, hdrs, body, r.random() < 0.5)

    def frame(self, c):
        """Mostly right frames (sessions go deep), some wrong ones."""
        if self.r.random() < 0.95:
            return self.valid(c)
        r = self.r
        cmd = r.choice(COMMANDS)
        hdrs = []
        if cmd in ('SEND', 'SUBSCRIBE') and r.random() < 0.9:
            hdrs.append(('destination', self.value('destination', c)))
        if cmd == 'SUBSCRIBE' and r.random() < 0.9:
            sid = 's%d' % r.randrange(6)
            hdrs.append(('id', sid))
            self.sub_ids.setdefault(c, []).append(sid)
        if cmd in ('BEGIN', 'COMMIT', 'ABORT') and r.random() < 0.9:
            t = 't%d' % r.randrange(4)
            hdrs.append(('transaction', t))
            if cmd == 'BEGIN':
                self.tx.setdefault(c, []).append(t)
        if cmd in ('ACK', 'NACK') and r.random() < 0.8:
            hdrs.append(('id', self.value('message-id', c)))
        for _ in range(r.randrange(5)):
            h = r.choice(HEADERS)
            hdrs.append((h, self.value(h, c)))
        body = self.body() if cmd == 'SEND' or r.random() < 0.1 else b''
        clen = not any(h == 'content-length' for h, _ in hdrs) and r.random() < 0.5
        out = self.encode(cmd, hdrs, body, clen,
                          r.choice([0, 0, 0, 0, -1, 1, 1000]))
        if r.random() < 0.1:
            out += b'\n' * r.randrange(1, 4)
        return out

    @staticmethod
    def encode(cmd, hdrs, body, clen, off=0):
        out = cmd.encode() + b'\n'
        for h, v in hdrs:
            out += h.encode() + b':' + v.encode('utf-8', 'surrogatepass') + b'\n'
        if clen:
            out += b'content-length:%d\n' % max(len(body) + off, 0)
        return out + b'\n' + body + b'\0'

    # ---- WebSocket

    def wsframe(self, op, payload, fin=True, mask=True, rsv=0):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | rsv << 4 | op])
        m = 0x80 if mask else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + n.to_bytes(2, 'big')
        else:
            head += bytes([m | 127]) + n.to_bytes(8, 'big')
        if not mask:
            return head + payload
        key = bytes(self.r.randrange(256) for _ in range(4))
        return head + key + bytes(b ^ key[j & 3] for j, b in enumerate(payload))

    def wswrap(self, data):
        """A STOMP frame as WebSocket frames: mostly one text frame, some
        fragmented, with pings between, or broken framing."""
        r = self.r
        k = r.random()
        if k < 0.80:
            return self.wsframe(r.choice([1, 1, 1, 2]), data)
        if k < 0.92:	# fragments, maybe a ping or pong between them
            out = b''
            parts = sorted(r.sample(range(len(data) + 1), min(2, len(data) + 1)))
            cuts = [0] + parts + [len(data)]
            for j in range(len(cuts) - 1):
                out += self.wsframe(1 if j == 0 else 0, data[cuts[j]:cuts[j + 1]],
                                    fin=j == len(cuts) - 2)
                if r.random() < 0.3:
                    out += self.wsframe(r.choice([9, 10]), b'p' * r.randrange(130))
            return out
        # broken: unmasked, reserved bits or opcodes, a close, bad UTF-8,
        # a continuation with nothing to continue, a length that lies
        return r.choice([
            lambda: self.wsframe(1, data, mask=False),
            lambda: self.wsframe(1, data, rsv=r.randrange(1, 8)),
            lambda: self.wsframe(r.choice([3, 4, 5, 11, 15]), data),
            lambda: self.wsframe(8, r.choice([b'', b'\x03\xe8', b'\x03', b'\x00\x00',
                                              b'\x03\xe8\xff', b'\x0f\xa0bye'])),
            lambda: self.wsframe(1, b'\xc3\x28' + data),
            lambda: self.wsframe(0, data),
            lambda: self.wsframe(9, b'x' * 126),
            lambda: self.wsframe(9, b'p', fin=False),
            lambda: bytes([0x81, 0xff]) + b'\xff' * 8 + b'\0' * 4 + data,
        ])()

    def ws_upgrade(self):
        s = socket.create_connection((self.hh, int(self.hp)), timeout=5)
        key = 'dGhlIHNhbXBsZSBub25jZQ=='
        req = ('GET /ws HTTP/1.1\r\nHost: p\r\nUpgrade: websocket\r\n'
               'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n'
               'Sec-WebSocket-Version: 13\r\n'
               'Sec-WebSocket-Protocol: v12.stomp\r\n\r\n' % key).encode()
        s.sendall(req)
        buf = b''
        while b'\r\n\r\n' not in buf:
            d = s.recv(4096)
            if not d:
                raise ConnectionRefusedError('WebSocket upgrade refused')
            buf += d
        if b' 101 ' not in buf.split(b'\r\n')[0]:
            raise ConnectionRefusedError('WebSocket upgrade: ' + buf.split(b'\r\n')[0].decode('latin1'))
        return s

    # ---- sockets

    def connect(self, i):
        ws = self.r.random() < self.a.ws
        if ws:
            s = self.ws_upgrade()
        else:
            s = socket.create_connection((self.sh, int(self.sp)), timeout=5)
        s.setblocking(False)
        self.ws[s] = ws
        hb = self.r.choice(['', 'heart-beat:0,0\n', 'heart-beat:100,100\n'])
        ver = self.r.choice(['1.2', '1.2', '1.1', '1.0'])
        self.send(s, ('CONNECT\naccept-version:%s\nhost:p\nlogin:u%d\n%s\n\0'
                      % (ver, i % 3, hb)).encode(), clean=True)
        self.clients[i] = s
        self.sub_ids[i] = []
        self.tx[i] = []
        self.acks[i] = []

    def send(self, s, data, clean=False):
        if s is None:	# closed by the server meanwhile
            return
        if self.ws.get(s):
            data = self.wsframe(1, data) if clean else self.wswrap(data)
        if self.trace:
            self.trace.write(b'>>> %d\n' % len(data) + data + b'\n')
        try:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(data)
            s.setblocking(False)
        except socket.timeout:
            raise
        except OSError:
            pass

    def close(self, i):
        if self.clients[i] is not None:
            self.ws.pop(self.clients[i], None)
            try:
                self.clients[i].close()
            except OSError:
                pass
        self.clients[i] = None

    def drain(self):
        socks = [s for s in self.clients if s is not None]
        if not socks:
            return
        rd, _, _ = select.select(socks, [], [], 0)
        for s in rd:
            i = self.clients.index(s)
            try:
                d = s.recv(1 << 20)
            except OSError:
                d = b''
            if not d:
                self.close(i)
                continue
            for line in d.split(b'\n'):
                if line.startswith(b'message-id:'):
                    self.remember(self.msg_ids, line[11:].decode('latin1'))
                    self.ids_seen.add(line[11:])
                elif line.startswith(b'ack:'):
                    self.remember(self.acks[i], line[4:].decode('latin1'))
                elif line.startswith(b'position:'):
                    try:
                        self.remember(self.positions, int(line[9:]))
                    except ValueError:
                        pass

    def remember(self, v, x):
        if len(v) >= 200:
            v[self.r.randrange(200)] = x
        else:
            v.append(x)

    def park(self, s):
        """Leave a connection open where it stopped, mid-request or
        mid-upload: the server's [server] http_timeout_ms has to end it."""
        self.parked.append(s)
        if len(self.parked) > 64:
            self.parked.pop(0).close()

    def http(self, method, path, body=b''):
        s = socket.create_connection((self.hh, int(self.hp)), timeout=5)
        req = ('%s %s HTTP/1.1\r\nHost: p\r\nAuthorization: Basic dTE6eA==\r\n'
               'Content-Type: application/json\r\nContent-Length: %d\r\n'
               'Connection: close\r\n\r\n' % (method, path, len(body))).encode() + body
        if self.trace:
            self.trace.write(b'HTTP ' + req + b'\n')
        s.sendall(req)
        out = b''
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out

    def raw_http(self):
        """A request that is wrong somewhere: method, target, version,
        headers, body framing, an upgrade; sometimes pipelined or cut."""
        r = self.r
        method = r.choice(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD',
                           'OPTIONS', 'BREW', '', 'G ET', 'get'])
        target = r.choice(['/', '/ws', '/healthz', '/readyz', '/metrics',
                           '/api/v1/rooms', '/api/v1/rooms/a/messages',
                           '/api/v1/media', '/api/v1/media/x', '/../../etc/passwd',
                           '/%2e%2e/%2e%2e/', '/index.html?' + 'q' * 9000,
                           '*', 'http://h/x', '/' + 'a' * 70000, '/a%zz', '/\x00'])
        version = r.choice(['HTTP/1.1'] * 4 + ['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.', 'ICY', ''])
        hdrs = ['Host: p']
        for _ in range(r.randrange(6)):
            hdrs.append(r.choice([
                'Content-Length: %s' % r.choice(['0', '5', '-1', '99999999999', 'x', '10']),
                'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip',
                'Upgrade: websocket', 'Connection: Upgrade', 'Connection: close',
                'Sec-WebSocket-Key: %s' % r.choice(['dGhlIHNhbXBsZSBub25jZQ==', '', 'x' * 200]),
                'Sec-WebSocket-Version: %s' % r.choice(['13', '8', '', '99']),
                'Sec-WebSocket-Protocol: %s' % r.choice(['v12.stomp', 'v10.stomp, v11.stomp', '', ',,,']),
                'Origin: %s' % r.choice(['http://evil', '', 'null']),
                'Authorization: %s' % r.choice(['Basic', 'Basic !!!', 'Basic dTE6', 'Bearer x.y.z', 'Bearer']),
                'X-Forwarded-For: %s' % r.choice(['1.2.3.4', 'x', '::1, 1.1.1.1', '']),
                'Content-Type: %s' % r.choice(['application/json', 'multipart/form-data; boundary=', 'x']),
                'X-' + 'h' * r.choice([10, 9000]) + ': v', 'NoColon', ': empty',
            ]))
        body = r.choice([b'', b'{"name":"a"}', b'5\r\nhello\r\n0\r\n\r\n',
                         b'zz\r\n', b'{' * 1000, bytes(r.randrange(256) for _ in range(50))])
        req = ('%s %s %s\r\n%s\r\n\r\n' % (method, target, version,
                                              '\r\n'.join(hdrs))).encode('latin1', 'replace') + body
        if r.random() < 0.2:
            req += req
        if r.random() < 0.2:
            req = req[:r.randrange(len(req) + 1)]
        if self.trace:
            self.trace.write(b'RAW ' + req + b'\n')
        try:
            s = socket.create_connection((self.hh, int(self.hp)), timeout=5)
            s.sendall(req)
            shut = r.random() < 0.5
            if shut:
                s.shutdown(socket.SHUT_WR)
            s.settimeout(0.05)
            try:
                s.recv(65536)
            except OSError:
                pass
            if not shut and r.random() < 0.1:
                self.park(s)
            else:
                s.close()
        except OSError:
            pass

    def media(self):
        """An upload, raw or multipart/form-data, right or broken
        (boundaries, part headers, file parts, lengths), sent in pieces;
        then sometimes a fetch or delete of what it made."""
        r = self.r
        b = r.choice(['xyz', '----WebKitFormBoundary7MA4YWxkTrZu0gW', 'a' * 70, '', '"q"', 'a b'])
        data = r.choice([b'\x89PNG\r\n\x1a\n' + b'p' * 100, b'GIF89a', b'hello', b'',
                         bytes(r.randrange(256) for _ in range(r.randrange(2000)))])
        if r.random() < 0.5:
            ctype = r.choice(['image/png', 'text/plain', 'application/x-evil', '', 'image/*',
                              'text/plain; charset=utf-8'])
            body = data
        else:
            ctype = 'multipart/form-data' + r.choice(['; boundary=' + b, '; boundary="%s"' % b, '', ';boundary='])
            d = b'--' + b.encode('latin1')
            part = r.choice([
                b'Content-Disposition: form-data; name="file"; filename="cat.png"\r\nContent-Type: image/png\r\n\r\n',
                b'Content-Disposition: form-data; name="f"; filename="C:\\x\\..\\evil.txt"\r\n\r\n',
                b'Content-Disposition: form-data; name="field"\r\n\r\n',
                b'Content-Disposition: form-data; filename=' + b'n' * 2000 + b'\r\n\r\n',
                b'\r\n', b'X: ' + b'h' * 9000 + b'\r\n\r\n', b'no blank line'])
            parts = [d + b'\r\n' + part + data]
            if r.random() < 0.3:
                parts.append(d + b'\r\n' + part + b'second')
            body = b'preamble\r\n' if r.random() < 0.2 else b''
            body += b'\r\n'.join(parts) + r.choice([b'\r\n' + d + b'--\r\n', b'\r\n' + d + b'--',
                                                     b'\r\n' + d + b'  \r\n', b'\r\n' + d, b'', b'\r\n' + d + b'x'])
        if r.random() < 0.1:
            body = body[:r.randrange(len(body) + 1)]
        q = r.choice(['', '?name=a.png', '?room=a', '?room=.bad', '?name=' + 'n' * 300, '?room=a&name=%2e%2e%2fx'])
        clen = r.choice([len(body)] * 6 + [len(body) + 10, max(len(body) - 1, 0), None])
        head = ('POST /api/v1/media%s HTTP/1.1\r\nHost: p\r\nAuthorization: Basic dTE6eA==\r\n'
                'Connection: close\r\n' % q)
        if ctype:
            head += 'Content-Type: %s\r\n' % ctype
        if r.random() < 0.2:
            head += 'Expect: 100-continue\r\n'
        if clen is None:	# chunked, in random chunks
            head += 'Transfer-Encoding: chunked\r\n'
            out, i = b'', 0
            while i < len(body):
                n = r.randrange(1, 300)
                out += b'%x\r\n' % len(body[i:i + n]) + body[i:i + n] + b'\r\n'
                i += n
            body = out + b'0\r\n\r\n'
        else:
            head += 'Content-Length: %d\r\n' % clen
        req = head.encode() + b'\r\n' + body
        if self.trace:
            self.trace.write(b'MEDIA ' + req + b'\n')
        try:
            s = socket.create_connection((self.hh, int(self.hp)), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cuts = sorted(r.sample(range(len(req) + 1), min(3, len(req) + 1)))
            last = 0
            for c in cuts + [len(req)]:
                s.sendall(req[last:c])
                last = c
                if r.random() < 0.3:
                    time.sleep(0.001)
            # a body shorter than its length waits for the rest: not long
            s.settimeout(0.5 if clen == len(body) else 0.05)
            out = b''
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    out += d
            except OSError:
                pass
            if clen != len(body) and not out and r.random() < 0.5:
                self.park(s)	# a body that never ends
            else:
                s.close()
        except OSError:
            return
        i = out.find(b'"id":"')
        if i != -1:
            mid = out[i + 6:out.find(b'"', i + 6)].decode('latin1')
            self.remember(self.media_ids, mid)
            self.nmedia += 1

    def rest(self):
        r = self.r
        if r.random() < 0.3:
            self.media()
            return
        if r.random() < 0.4:
            self.raw_http()
            return
        room = r.choice(['a', 'b', 'c.d', '.x', 'n' * 130, '%2e%2e', 'a%00b', ''])
        mid = r.choice(self.msg_ids) if self.msg_ids and r.random() < 0.6 else r.choice(['x', '', '%ff'])
        path, method, body = r.choice([
            ('/api/v1/rooms', 'GET', b''),
            ('/api/v1/rooms', 'POST', b'{"name":"%s","topic":"t"}' % room.encode()),
            ('/api/v1/rooms', 'POST', r.choice([b'{', b'[]', b'{"name":1}', b'null', b'\xff'])),
            ('/api/v1/rooms/%s' % room, 'GET', b''),
            ('/api/v1/rooms/%s' % room, 'DELETE', b''),
            ('/api/v1/rooms/%s/messages?%s' % (room, r.choice(['', 'limit=5', 'before=1', 'after=-1', 'limit=99999', 'after=x&before=y', 'limit='])), 'GET', b''),
            ('/api/v1/rooms/%s/messages' % room, 'POST', r.choice([b'{"body":"hi"}', b'{"body":"hi","content_type":"a\\nb"}', b'{"body":5}', b'{}', b'x'])),
            ('/api/v1/rooms/%s/messages/%s' % (room, mid), 'PATCH', r.choice([b'{"body":"new"}', b'{}', b''])),
            ('/api/v1/rooms/%s/messages/%s' % (room, mid), 'DELETE', b''),
            ('/api/v1/media/%s' % mid, 'GET', b''),
            ('/api/v1/media/%s' % (r.choice(self.media_ids) if self.media_ids else 'x'), r.choice(['GET', 'HEAD', 'DELETE']), b''),
            ('/metrics', 'GET', b''),
            ('/readyz', 'GET', b''),
        ])
        try:
            self.http(method, path, body)
        except OSError:
            pass

    def healthy(self):
        try:
            return b' 200 ' in self.http('GET', '/healthz')[:20]
        except OSError:
            return False

    def step(self):
        r = self.r
        i = r.randrange(len(self.clients))
        k = r.random()
        if self.clients[i] is None or k < 0.01:
            self.close(i)
            self.connect(i)
            return
        if k < 0.03:
            self.close(i)
            return
        if k < 0.06:
            self.rest()
            return
        f = self.frame(i)
        if k < 0.08:
            f = f[:r.randrange(len(f) + 1)]	# cut: the rest never comes
            self.send(self.clients[i], f)
            self.close(i)
            return
        if k < 0.12:
            self.send(self.clients[i], b'\n')
            return
        if k < 0.20:	# two frames in one write, or one split over two
            j = r.randrange(len(f) + 1)
            self.send(self.clients[i], f[:j])
            self.drain()
            self.send(self.clients[i], f[j:] + self.frame(i))
            return
        self.send(self.clients[i], f)

    def final_check(self):
        """A fresh subscriber gets a fresh publisher's message."""
        def conn():
            s = socket.create_connection((self.sh, int(self.sp)), timeout=5)
            s.sendall(b'CONNECT\naccept-version:1.2\nhost:p\nlogin:final\n\n\0')
            return s

        def until(s, pat):
            buf = b''
            end = time.time() + 5
            while pat not in buf and time.time() < end:
                s.settimeout(max(end - time.time(), 0.01))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                if not d:
                    break
                buf += d
            return pat in buf

        a, b = conn(), conn()
        ok = until(a, b'CONNECTED') and until(b, b'CONNECTED')
        a.sendall(b'SUBSCRIBE\nid:f\ndestination:/room/final\nreceipt:s\n\n\0')
        ok = ok and until(a, b'receipt-id:s')
        b.sendall(b'SEND\ndestination:/room/final\n\nfinal-check\0')
        ok = ok and until(a, b'final-check')
        a.close()
        b.close()
        return ok

    def run(self):
        end = time.time() + self.a.seconds
        step = 0
        while time.time() < end:
            self.step()
            self.drain()
            step += 1
            if step % 300 == 0 and not self.healthy():
                print('fuzz-session: parleyd stopped answering /healthz at step '
                      '%d (seed %d)' % (step, self.a.seed))
                return 1
        for i in range(len(self.clients)):
            self.close(i)
        for s in self.parked:
            s.close()
        if not self.healthy() or not self.final_check():
            print('fuzz-session: after %d steps (seed %d) parleyd no longer '
                  'routes a message between two new clients' % (step, self.a.seed))
            return 1
        print('fuzz-session: %d steps, %d messages seen, %d media stored, seed %d: '
              'parleyd still serves' % (step, len(self.ids_seen), self.nmedia, self.a.seed))
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--stomp', required=True, help='STOMP TCP listener, HOST:PORT')
    p.add_argument('--http', required=True, help='HTTP listener, HOST:PORT')
    p.add_argument('--seed', type=int, default=int.from_bytes(os.urandom(4), 'big'))
    p.add_argument('--seconds', type=float, default=30)
    p.add_argument('--clients', type=int, default=6)
    p.add_argument('--ws', type=float, default=0.5,
                   help='share of sessions over WebSocket (default 0.5)')
    p.add_argument('--trace', help='write every request sent to this file')
    a = p.parse_args()
    try:
        sys.exit(Fuzz(a).run())
    except OSError as e:
        print('fuzz-session: parleyd did not answer (%s), seed %d' % (e, a.seed))
        sys.exit(1)


if __name__ == '__main__':
    main()
