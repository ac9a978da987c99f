'use strict';
// Free TCP ports on 127.0.0.1 for the services the tests start.
//
// A port from the kernel's ephemeral range (what listen(0) hands out) can be
// taken by any outgoing connection between the moment it is found free and
// the moment the service binds it, and a connected socket on that port makes
// the service's bind() fail with EADDRINUSE even with SO_REUSEADDR.  The
// benchmark tests open thousands of client connections while other tests
// start servers, so the tests pick ports BELOW the ephemeral range, where no
// connect() ever lands, at random (parallel test files rarely meet), and
// never hand out the same port twice in one process.
const fs = require('fs');
const net = require('net');

const LOWEST = 10000;	// stay clear of well-known and registered services

function ephemeralRange() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch (e) { /* not Linux: fall through */ }
  return [32768, 60999];
}

const given = new Set();

function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(0));
    s.listen(port, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function freePort() {
  const [lo] = ephemeralRange();
  if (lo - LOWEST >= 1000) {
    for (let i = 0; i < 200; i++) {
      const port = LOWEST + Math.floor(Math.random() * (lo - LOWEST));
      if (given.has(port)) continue;
      if (await tryListen(port)) { given.add(port); return port; }
    }
  }
  // a machine whose ephemeral range starts low: the kernel's choice
  for (;;) {
    const port = await tryListen(0);
    if (!port) throw new Error('cannot find a free port on 127.0.0.1');
    if (!given.has(port)) { given.add(port); return port; }
  }
}

module.exports = { freePort, ephemeralRange };
