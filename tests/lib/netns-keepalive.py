#!/usr/bin/env python3
"""Run inside a fresh network namespace (unshare -n) by test 89: start
parleyd on its loopback, connect a STOMP client that negotiates no
heart-beats, take the loopback down (the path goes away with no FIN: what
a dropped NAT mapping or a switched-off laptop looks like to the server),
wait, bring it back, and report what the server did, as one JSON line.

usage: netns-keepalive.py PARLEYD PLUGIN_DIR DIR KEEPALIVE_MS DOWN_S
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

parleyd, plugins, d, ka_ms, down_s = sys.argv[1:6]
subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


http, stomp = free_port(), free_port()
ini = os.path.join(d, 'parley.ini')
with open(ini, 'w') as f:
    f.write(f"""[server]
listen = 127.0.0.1:{http}
stomp_listen = 127.0.0.1:{stomp}
plugin_dir = {plugins}
log_level = info
tcp_keepalive_ms = {ka_ms}
[sqlite]
path = {d}/parley.db
[fs]
dir = {d}/media
""")
log = open(os.path.join(d, 'parleyd.log'), 'w')
srv = subprocess.Popen([parleyd, '-c', ini], stderr=log, stdout=log)
out = {}


def get(path):
    with urllib.request.urlopen(f'http://127.0.0.1:{http}{path}', timeout=3) as r:
        return r.read().decode()


def open_sessions():
    for line in get('/metrics').splitlines():
        if line.startswith('parley_stomp_sessions '):
            return int(float(line.split()[1]))
    return None


try:
    for _ in range(100):
        try:
            get('/healthz')
            break
        except OSError:
            time.sleep(0.1)
    c = socket.create_connection(('127.0.0.1', stomp))
    c.sendall(b'CONNECT\naccept-version:1.2\nhost:x\nlogin:quiet\nheart-beat:0,0\n\n\0'
              b'SUBSCRIBE\nid:0\ndestination:/room/quiet\nreceipt:s\n\n\0')
    got = b''
    while b'receipt-id:s' not in got:
        got += c.recv(4096)
    out['subscribed'] = True
    out['open_before'] = open_sessions()
    subprocess.run(['ip', 'link', 'set', 'lo', 'down'], check=True)
    t0 = time.time()
    time.sleep(float(down_s))
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    out['down_s'] = round(time.time() - t0, 1)
    time.sleep(0.3)
    out['open_after'] = open_sessions()
    out['unreachable'] = 0
    for line in get('/metrics').splitlines():
        if line.startswith('parley_connections_timed_out_total{reason="unreachable"} '):
            out['unreachable'] = int(float(line.split()[1]))
    # the server still serves: a new client chats
    n = socket.create_connection(('127.0.0.1', stomp))
    n.sendall(b'CONNECT\naccept-version:1.2\nhost:x\nlogin:new\n\n\0'
              b'SUBSCRIBE\nid:0\ndestination:/room/fresh\n\n\0'
              b'SEND\ndestination:/room/fresh\nreceipt:r\n\nhello\0')
    got = b''
    n.settimeout(5)
    while b'hello' not in got:
        got += n.recv(4096)
    out['new_client_chats'] = True
finally:
    srv.terminate()
    out['exit'] = srv.wait(timeout=15)
    log.close()
    with open(os.path.join(d, 'parleyd.log')) as f:
        out['log'] = f.read()
print(json.dumps(out))
