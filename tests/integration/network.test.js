'use strict';
// Networks that are not open, with real components from Debian in front of
// the real deepstream server: nginx terminating TLS and requiring a client
// certificate (certFile/keyFile), and tinyproxy as the HTTP proxy dsd must
// go through (proxy), with and without Basic authentication. Test
// certificates are made with openssl at test time (lib/certs.js).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { binaries } = require('./lib/dsd');
const { makeCerts, makeClientCert } = require('./lib/certs');
const { startNginx, startTinyproxy, missing } = require('./lib/daemons');
const js = require('./lib/jsclient');
const { sleep, waitUntil, makeTempDir } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd, proxy } = scope();

// The test certificates are made with the openssl command.
const noOpenssl = missing('openssl');
const noNginx = noOpenssl || missing('nginx');
const noTinyproxy = missing('tinyproxy');
const noBoth = noNginx || noTinyproxy;
for (const why of new Set([noNginx, noTinyproxy].filter(Boolean))) console.log(`# skipping: ${why}`);

let certs;
function testCerts() {
  if (!certs) {
    certs = makeCerts();
    certs.client = makeClientCert(certs, 'client');
    certs.rogue = makeClientCert(certs, 'rogue', { other: true });
  }
  return certs;
}

async function nginx(opts) {
  const n = await startNginx(opts);
  later(() => n.stop());
  return n;
}

async function tinyproxy(opts) {
  const t = await startTinyproxy(opts);
  later(() => t.stop());
  return t;
}

async function jsClient(url) {
  const c = await js.connect(url);
  later(async () => c.close());
  return c;
}

// A local emit through dsd reaches a JS subscriber on the server itself.
async function emitArrives(d, s, name) {
  const c = await jsClient(s.url);
  const got = await c.subscribe(name);
  const r = await d.dsctl('emit', name, '{"via":"dsd"}');
  assert.equal(r.code, 0, r.stderr);
  await got.waitFor(1);
  assert.deepEqual(got.data[0], { via: 'dsd' });
}

// dsd -n -c FILE on a config of platform lines; {status, stderr}.
function checkConfig(lines, env = {}) {
  const dir = makeTempDir('dsd-n');
  const file = path.join(dir, 'dsd.conf');
  fs.writeFileSync(file, `[platform]\nurl = wss://127.0.0.1:1/deepstream\n${lines.join('\n')}\n`);
  const r = spawnSync(binaries().dsd, ['-n', '-c', file], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 10000,
  });
  return { status: r.status, stderr: r.stderr, file };
}

// The base64 body of a PEM key, which must never show up anywhere.
function keyBody(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
}

test('client certificate: through nginx that requires one, dsd reaches OPEN and an emit arrives', { skip: noNginx }, async () => {
  const c = testCerts();
  const s = await server({ auth: 'open' });
  const n = await nginx({ targetPort: s.port, tls: c, clientCa: c.caFile });
  const d = await dsd({ url: n.url, caFile: c.caFile, ...c.client });
  await d.waitState('OPEN');
  await emitArrives(d, s, 'net/cert');

  // The key from $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), named
  // relatively; the config's own directory does not have it.
  const creds = makeTempDir('dsd-creds');
  fs.copyFileSync(c.client.keyFile, path.join(creds, 'dsd.key'));
  const d2 = await dsd({ url: n.url, caFile: c.caFile, certFile: c.client.certFile, keyFile: 'dsd.key',
    env: { CREDENTIALS_DIRECTORY: creds } });
  await d2.waitState('OPEN');
  const body = keyBody(c.client.keyFile);
  assert.ok(!d.lines.concat(d2.lines).some((l) => l.includes(body.slice(0, 24))), 'no key material in the log');
  // nginx logs a WebSocket request once it ends: the upgrades succeeded.
  await d.stop();
  await d2.stop();
  await waitUntil(() => (n.accessLog().match(/GET \/deepstream HTTP\/1\.1" 101/g) || []).length === 2,
    { what: 'two upgrades (101) in nginx\'s access log', detail: () => n.accessLog() });
});

test('without a client certificate, or with one from another CA, nginx refuses and dsd says why', { skip: noNginx }, async () => {
  const c = testCerts();
  const s = await server({ auth: 'open' });
  const n = await nginx({ targetPort: s.port, tls: c, clientCa: c.caFile });
  const common = { url: n.url, caFile: c.caFile, maxReconnectAttempts: 1, reconnectIntervalIncrement: 2000,
    restartAfterError: 0 };
  const none = await dsd(common);
  const rogue = await dsd({ ...common, ...c.rogue });
  for (const d of [none, rogue]) {
    const st = await d.waitState('ERROR', 10000);
    console.log(`# refused: ${st.reason}`);
    // nginx answers the upgrade with 400 instead of 101.
    assert.match(st.reason, /failed: HTTP 400 instead of 101 to the WebSocket upgrade/);
    assert.ok(!d.lines.some((l) => /-> OPEN/.test(l)), 'never OPEN');
  }
  // What nginx said about each (its own words, in its error log).
  await waitUntil(() => /client sent no required SSL certificate/.test(n.log()), { what: 'nginx: no certificate' });
  await waitUntil(() => /client SSL certificate verify error/.test(n.log()), { what: 'nginx: verify error' });
});

test('a mismatched, missing or unusable certificate pair is refused when the config is read', { skip: noOpenssl }, async () => {
  const c = testCerts();
  const ok = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${c.client.keyFile}`]);
  assert.equal(ok.status, 0, ok.stderr);
  // One file holding both (key first) may be named twice.
  const both = path.join(c.dir, 'client-both.pem');
  fs.writeFileSync(both, fs.readFileSync(c.client.keyFile, 'utf8') + fs.readFileSync(c.client.certFile, 'utf8'));
  const one = checkConfig([`certFile = ${both}`, `keyFile = ${both}`]);
  assert.equal(one.status, 0, one.stderr);

  const mismatch = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${c.rogue.keyFile}`]);
  assert.notEqual(mismatch.status, 0);
  assert.match(mismatch.stderr, /keyFile is not the private key of certFile's certificate/);
  assert.ok(mismatch.stderr.includes(c.client.certFile) && mismatch.stderr.includes(c.rogue.keyFile),
    'names both files');
  assert.ok(!mismatch.stderr.includes(keyBody(c.rogue.keyFile).slice(0, 24)), 'no key material');

  const gone = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${c.dir}/nothing.key`]);
  assert.notEqual(gone.status, 0);
  assert.match(gone.stderr, /dsd\.conf:4: keyFile ".*nothing\.key": No such file or directory/);

  const dir = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${c.dir}`]);
  assert.match(dir.stderr, /keyFile ".*": not a regular file/);

  const half = checkConfig([`certFile = ${c.client.certFile}`]);
  assert.match(half.stderr, /certFile without keyFile/);

  const swapped = checkConfig([`certFile = ${c.client.keyFile}`, `keyFile = ${c.client.certFile}`]);
  assert.match(swapped.stderr, /certFile holds no PEM certificate/);

  const enc = path.join(c.dir, 'client-enc.key');
  const conv = spawnSync('openssl', ['pkey', '-in', c.client.keyFile, '-aes256', '-passout', 'pass:pw', '-out', enc]);
  assert.equal(conv.status, 0, String(conv.stderr));
  const encrypted = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${enc}`]);
  assert.match(encrypted.stderr, /encrypted private key/);

  if (process.getuid() !== 0) {
    // root reads any file: an unreadable key can only be shown as a user.
    const locked = path.join(c.dir, 'locked.key');
    fs.copyFileSync(c.client.keyFile, locked);
    fs.chmodSync(locked, 0);
    const r = checkConfig([`certFile = ${c.client.certFile}`, `keyFile = ${locked}`]);
    assert.match(r.stderr, /keyFile ".*locked\.key": Permission denied/);
  }
});

test('proxy: ws:// goes through tinyproxy, and so does every reconnect', { skip: noTinyproxy }, async () => {
  const s = await server({ auth: 'open' });
  // The fault proxy stands for the platform's side of the network, so the
  // connection can be reset there.
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const tp = await tinyproxy();
  const target = `127.0.0.1:${p.port}`;
  const d = await dsd({ url: p.url, proxy: tp.url, reconnectIntervalIncrement: 200 });
  await d.waitState('OPEN');
  assert.equal(tp.connects(target), 1, 'one CONNECT through tinyproxy');
  assert.equal(p.connections, 1);
  await emitArrives(d, s, 'net/proxy');

  // Lost on the platform's side: the reconnect goes through the proxy.
  p.resetAll();
  await waitUntil(async () => (await d.status()).state === 'OPEN' && p.connections === 2,
    { what: 'OPEN again after the reset', timeoutMs: 10000 });
  assert.equal(tp.connects(target), 2);

  // The proxy itself restarts (same port): dsd comes back through it.
  await tp.stop();
  await d.waitState('RECONNECTING');
  const tp2 = await tinyproxy({ port: tp.port, dir: tp.dir });
  await waitUntil(async () => (await d.status()).state === 'OPEN', { what: 'OPEN through the new proxy', timeoutMs: 15000 });
  assert.equal(tp2.connects(target), 3, 'the log of both runs has three CONNECTs');
  assert.equal(p.connections, 3, 'no connection went around the proxy');

  // The platform restarts: the next connection goes through the proxy too.
  await s.restart();
  await waitUntil(async () => (await d.status()).state === 'OPEN' && p.connections >= 4,
    { what: 'OPEN after the platform restarted', timeoutMs: 20000 });
  assert.equal(tp2.connects(target), p.connections, 'every connection to the platform came through the proxy');
  await emitArrives(d, s, 'net/proxy-again');
});

test('proxy with Basic authentication: the right password gets through, a wrong one is refused and never logged', { skip: noTinyproxy }, async () => {
  const s = await server({ auth: 'open' });
  const auth = { user: 'edge-17', password: 'pw-4711.secret' };
  const tp = await tinyproxy({ auth });
  const d = await dsd({ url: s.url, proxy: tp.url });
  await d.waitState('OPEN');
  assert.equal(tp.connects(`127.0.0.1:${s.port}`), 1);
  assert.ok(d.lines.some((l) => l.endsWith(`through the proxy http://127.0.0.1:${tp.port} (with credentials)`)),
    'the proxy is named, without its credentials');

  const wrong = tp.url.replace(auth.password, 'not-the-password');
  const bad = await dsd({ url: s.url, proxy: wrong, maxReconnectAttempts: 1, reconnectIntervalIncrement: 2000,
    restartAfterError: 0 });
  const st = await bad.waitState('ERROR', 10000);
  assert.match(st.reason, /through the proxy http:\/\/127\.0\.0\.1:\d+ failed: the proxy refused the tunnel/);
  for (const l of d.lines.concat(bad.lines)) {
    assert.ok(!l.includes(auth.password) && !l.includes('not-the-password'), `a password in the log: ${l}`);
  }
  const human = await bad.dsctl('status');
  assert.ok(!human.stdout.includes('not-the-password'));

  // A config error never quotes the value either.
  const r = checkConfig(['proxy = http://user:hunter2@127.0.0.1']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /proxy: the proxy's port is required/);
  assert.ok(!r.stderr.includes('hunter2'));
});

test('wss:// through tinyproxy to nginx with a client certificate', { skip: noBoth }, async () => {
  const c = testCerts();
  const s = await server({ auth: 'open' });
  const n = await nginx({ targetPort: s.port, tls: c, clientCa: c.caFile });
  const tp = await tinyproxy({ auth: { user: 'dsd', password: 'tunnel' } });
  const d = await dsd({ url: n.url, caFile: c.caFile, ...c.client, proxy: tp.url });
  await d.waitState('OPEN');
  assert.equal(tp.connects(`127.0.0.1:${n.port}`), 1);
  await emitArrives(d, s, 'net/both');
});

test('a reload that adds a proxy sends the next connection through it', { skip: noTinyproxy }, async () => {
  const s = await server({ auth: 'open' });
  const tp = await tinyproxy();
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  assert.equal(tp.connects(`127.0.0.1:${s.port}`), 0);
  // ws:// without a proxy on dsd's main loop; through one, libwebsockets.
  assert.equal((await d.status()).transport, 'main loop');
  fs.appendFileSync(d.configFile, `\n[platform]\nproxy = ${tp.url}\n`);
  const r = await d.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => tp.connects(`127.0.0.1:${s.port}`) === 1, { what: 'a CONNECT after the reload' });
  await d.waitState('OPEN');
  await sleep(100);
  const st = await d.status();
  assert.equal(st.state, 'OPEN');
  assert.equal(st.transport, 'libwebsockets');
});

test('a REDIRECT from ws:// to wss:// sets TLS up for that connect', { skip: noNginx }, async () => {
  const { startScripted } = require('./lib/scripted');
  const c = testCerts();
  const s = await server({ auth: 'open' });
  const n = await nginx({ targetPort: s.port, tls: c, clientCa: c.caFile });
  const sp = await startScripted({ answer: 'redirect', redirectUrl: n.url });
  later(() => sp.close());
  // Started on ws:// (no TLS set up), the certificate is used once needed.
  const d = await dsd({ url: sp.url, caFile: c.caFile, ...c.client });
  const st = await d.waitState('OPEN');
  assert.equal(st.url, n.url);
  await emitArrives(d, s, 'net/redirect');
});

test('a reload from ws:// to wss:// sets TLS up and reaches OPEN there', { skip: noNginx }, async () => {
  const c = testCerts();
  const s = await server({ auth: 'open' });
  const n = await nginx({ targetPort: s.port, tls: c, clientCa: c.caFile });
  const d = await dsd({ url: s.url, caFile: c.caFile, ...c.client });
  await d.waitState('OPEN');
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace(s.url, n.url));
  const r = await d.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(async () => {
    const st = await d.status();
    return st.state === 'OPEN' && st.url === n.url;
  }, { what: `OPEN at ${n.url}` });
  await emitArrives(d, s, 'net/reload');
});

test('an unreachable proxy is named in the reason, and dsd does not go around it', async () => {
  const { freePort } = require('./lib/util');
  const s = await server({ auth: 'open' });
  const port = await freePort();
  const d = await dsd({ url: s.url, proxy: `http://127.0.0.1:${port}`, maxReconnectAttempts: 1,
    reconnectIntervalIncrement: 2000, restartAfterError: 0 });
  const st = await d.waitState('ERROR', 10000);
  assert.match(st.reason, new RegExp(`connect to 127\\.0\\.0\\.1:${s.port} through the proxy ` +
    `http://127\\.0\\.0\\.1:${port} failed: Unable to connect`));
});
