'use strict';
// Make JSON Web Tokens for tests and demos with node:crypto only (no npm
// package), signed by hand: base64url(header) "." base64url(payload) "."
// base64url(signature).
//
//   const jwt = require('../lib/jwt');
//   const k = jwt.rsaKeys();                 // { privateKey, publicPem }
//   jwt.sign({ sub: 'alice', exp: jwt.now() + 60 }, { alg: 'RS256', key: k.privateKey });
//   jwt.sign(claims, { alg: 'HS256', key: 'a shared secret of 32+ bytes....' });
//   jwt.sign(claims, { alg: 'none' });       // unsigned, for negative tests
//
// As a command, for operators:
//   node tests/lib/jwt.js --alg HS256 --key-file secret.txt --sub alice \
//       --ttl 3600 [--iss I] [--aud A] [--claims '{"roles":["mod"]}']
//   node tests/lib/jwt.js --alg RS256 --key-file private.pem --sub alice
const crypto = require('crypto');
const fs = require('fs');

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function now() { return Math.floor(Date.now() / 1000); }

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

// The signature of `input` (a string) for alg with key: a secret (string or
// Buffer) for HS*, a private KeyObject or PEM for RS* and ES*.
function signature(alg, key, input) {
  if (alg === 'none') return Buffer.alloc(0);
  const m = /^(HS|RS|ES)(256|384|512)$/.exec(alg);
  if (!m) throw new Error(`jwt.js: unsupported alg ${alg}`);
  const h = HASH[m[2]];
  if (m[1] === 'HS') return crypto.createHmac(h, key).update(input).digest();
  if (m[1] === 'RS') return crypto.sign(h, Buffer.from(input), key);
  // JWS wants ES signatures as raw r || s (RFC 7518 3.4), not DER
  return crypto.sign(h, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
}

// sign(payload, { alg, key, header }) -> compact token.  header adds to or
// overrides { alg, typ: 'JWT' }.
function sign(payload, { alg = 'HS256', key, header = {} } = {}) {
  const h = Object.assign({ alg, typ: 'JWT' }, header);
  const input = b64url(JSON.stringify(h)) + '.' + b64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return input + '.' + b64url(signature(alg, key, input));
}

function rsaKeys(bits = 2048) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) };
}

function ecKeys(namedCurve = 'P-256') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) };
}

module.exports = { sign, signature, b64url, now, rsaKeys, ecKeys };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = {};
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i].startsWith('--') || i + 1 >= args.length) {
      process.stderr.write('usage: jwt.js --alg HS256|RS256|ES256 --key-file FILE --sub LOGIN [--ttl SECONDS] [--iss ISSUER] [--aud AUDIENCE] [--claims JSON]\n');
      process.exit(2);
    }
    opt[args[i].slice(2)] = args[i + 1];
  }
  const alg = opt.alg || 'HS256';
  let key;
  if (alg.startsWith('HS')) key = fs.readFileSync(opt['key-file'], 'utf8').replace(/\r?\n$/, '');
  else key = crypto.createPrivateKey(fs.readFileSync(opt['key-file']));
  const t = now();
  const claims = Object.assign({ sub: opt.sub, iat: t, exp: t + Number(opt.ttl || 3600) },
    opt.iss ? { iss: opt.iss } : {}, opt.aud ? { aud: opt.aud } : {},
    opt.claims ? JSON.parse(opt.claims) : {});
  process.stdout.write(sign(claims, { alg, key }) + '\n');
}
