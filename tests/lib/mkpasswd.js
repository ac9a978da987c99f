'use strict';
// crypt(3) hashes for users files, made by mkpasswd (Debian package whois).
//
//   const { mkpasswd, mkpasswdMissing } = require('../lib/mkpasswd');
//   if (mkpasswdMissing(t)) return;          // a failing test line, then stop
//   mkpasswd('sha-512', 'pw', { rounds: 1000000 })
const { execFileSync } = require('child_process');

function mkpasswd(method, pass, { rounds } = {}) {
  const args = ['-m', method, '--stdin'];
  if (rounds) args.push('-R', String(rounds));
  return execFileSync('mkpasswd', args, { input: pass + '\n' }).toString().trim();
}

// true (after a failing TAP line) when mkpasswd cannot run
function mkpasswdMissing(t) {
  try {
    execFileSync('mkpasswd', ['--version'], { stdio: 'ignore' });
    return false;
  } catch (e) {
    t.ok(false, 'mkpasswd (Debian package whois) is installed: ' + e.message);
    return true;
  }
}

module.exports = { mkpasswd, mkpasswdMissing };
