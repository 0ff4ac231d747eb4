'use strict';
// dsd's platform connection against the real deepstream 7.0.2 server (and
// the scripted platform for REDIRECT/REJECT, which the real one never sends).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { startScripted } = require('./lib/scripted');
const { makeCerts } = require('./lib/certs');
const { sleep, waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd, proxy } = scope();

test('reaches OPEN against the real server and reports it', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url, auth: { username: 'dsd' } });
  const st = await d.waitState('OPEN');
  assert.equal(st.url, s.url);
  assert.equal(st.configuredUrl, s.url);
  // The attempt that reached OPEN; the counter resets once it has held.
  assert.equal(st.attempt, 1);
  assert.match(st.reason, /authenticated/);
  assert.equal(typeof st.since, 'number');
  // The human form carries the same facts.
  const human = await d.dsctl('status');
  assert.equal(human.code, 0);
  assert.match(human.stdout, /OPEN/);
  assert.match(human.stdout, new RegExp(s.url.replace(/[/.]/g, '\\$&')));
  const stop = await d.stop();
  assert.equal(stop.code, 0, 'SIGTERM exits 0');
  assert.ok(d.lines.some((l) => /-> CLOSED/.test(l)), 'the deliberate close is logged as CLOSED');
});

test('file auth: accepted, refused without a retry loop, then a reload with new credentials', async () => {
  const s = await server({ auth: 'file' });
  const ok = await dsd({ url: s.url, auth: { username: 'alice', password: 'alice-pw' } });
  await ok.waitState('OPEN');

  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const bad = await dsd({ url: p.url, auth: { username: 'alice', password: 'wrong' }, heartbeatInterval: 300 });
  const st = await bad.waitState('AWAITING_AUTHENTICATION');
  assert.match(st.reason, /authentication refused/);
  // No retry loop with the same credentials: the same socket, no new
  // connections, still waiting 1.5 s (5 heartbeat intervals) later.
  await sleep(1500);
  const st2 = await bad.status();
  assert.equal(st2.state, 'AWAITING_AUTHENTICATION');
  assert.equal(p.connections, 1);

  // New credentials through a reload: a fresh instance that logs in.
  const ini = fs.readFileSync(bad.configFile, 'utf8').replace(/"wrong"/, '"alice-pw"');
  fs.writeFileSync(bad.configFile, ini);
  const r = await bad.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await bad.waitState('OPEN');
});

test('too many auth attempts ends in ERROR with that reason, a permanent one', async () => {
  const s = await server({ auth: 'file', maxAuthAttempts: 1 });
  const d = await dsd({ url: s.url, auth: { username: 'bob', password: 'nope' }, restartAfterError: 0 });
  const st = await d.waitState('ERROR');
  assert.match(st.reason, /too many authentication attempts/);
  assert.equal(st.errorCause, 'tooManyAuthAttempts');
  assert.equal(st.errorKind, 'permanent');
  assert.equal(st.nextRetryMs, null, 'restartAfterError 0: only the operator ends it');
});

test('refused credentials with the default restartAfterError: ERROR waits the 60 s, no retry before', async () => {
  const s = await server({ auth: 'file', maxAuthAttempts: 1 });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  // Short reconnect steps, to show they do not apply here.
  const d = await dsd({ url: p.url, auth: { username: 'bob', password: 'nope' }, reconnectIntervalIncrement: 100 });
  const st = await d.waitState('ERROR');
  assert.equal(st.errorKind, 'permanent');
  assert.ok(st.nextRetryMs > 58000 && st.nextRetryMs <= 60000, `nextRetryMs ${st.nextRetryMs}`);
  await sleep(1500);
  const st2 = await d.status();
  assert.equal(st2.state, 'ERROR');
  assert.match(st2.reason, /too many authentication attempts/);
  assert.equal(p.connections, 1, 'no new connection while a permanent ERROR lasts');
});

test('server killed and restarted: back to OPEN following the reconnect schedule', async () => {
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const inc = 300;
  const hb = 1000;
  const d = await dsd({ url: p.url, reconnectIntervalIncrement: inc, maxReconnectInterval: 10000,
    maxReconnectAttempts: 'infinity', heartbeatInterval: hb });
  await d.waitState('OPEN');
  const w = d.watch();
  await w.waitFor('OPEN');
  // Only a connection that has held is established: its loss is retried
  // at once.
  await waitUntil(async () => (await d.status()).attempt === 0, { timeoutMs: 3 * hb, what: 'the connection to hold' });
  const before = p.attempts.length;
  await s.kill9();
  await w.waitFor('RECONNECTING');
  await sleep(1900); // attempts at about 0, 300, 900, 1800 ms after the loss
  const restartAt = Date.now();
  await s.restart();
  const open = await w.waitFor((t) => t.state === 'OPEN' && t.at >= restartAt, 10000);
  assert.ok(open);
  const tries = p.attempts.slice(before).map((a) => a.at);
  assert.ok(tries.length >= 4, `attempts after the loss: ${tries.length}`);
  const t0 = tries[0];
  const expected = [0, inc, 3 * inc, 6 * inc];
  for (let i = 0; i < 4; i++) {
    const off = tries[i] - t0;
    assert.ok(Math.abs(off - expected[i]) <= 100, `attempt ${i + 1} at +${off} ms, expected +${expected[i]}`);
  }
  // The counter resets once the connection has held (min(heartbeatInterval,
  // 10 s) OPEN), not when OPEN is reached.
  const st = await d.status();
  assert.ok(st.attempt >= 4, `attempt ${st.attempt} right after OPEN`);
  await waitUntil(async () => (await d.status()).attempt === 0, { timeoutMs: 3 * hb, what: 'the counter to reset' });
});

test('refused connections: ERROR after exactly maxReconnectAttempts attempts, a fresh instance one step later', async () => {
  const p = await proxy({ target: { host: '127.0.0.1', port: 9 } });
  await p.mode('reset');
  const inc = 200;
  // restartAfterError 0 waits for the operator only after a permanent
  // ERROR: an unreachable platform is a transient one.
  const d = await dsd({ url: p.url, reconnectIntervalIncrement: inc, maxReconnectInterval: 500,
    maxReconnectAttempts: 5, restartAfterError: 0 });
  const w = d.watch();
  const err = await w.waitFor('ERROR', 10000);
  assert.match(err.reason, /gave up after 5 unsuccessful attempts/);
  await waitUntil(() => p.attempts.length >= 7, { timeoutMs: 5000, what: 'the fresh instance and its second attempt' });
  // The proxy's clock and dsd's are two processes' event loops: allow a
  // few ms (the next attempt comes a whole step, 200 ms, after ERROR).
  const before = p.attempts.filter((a) => a.at <= err.at + 50);
  assert.equal(before.length, 5, 'exactly maxReconnectAttempts attempts before ERROR');
  const t0 = p.attempts[0].at;
  // The first connect is attempt 1; then +1x, +2x, then capped at 500.
  // The ERROR lasts one step (200 ms), then the fresh instance's attempt 1
  // and, one increment after its failure, its attempt 2.
  const expected = [0, 200, 600, 1100, 1600, 1800, 2000];
  p.attempts.slice(0, 7).forEach((a, i) => {
    const off = a.at - t0;
    assert.ok(Math.abs(off - expected[i]) <= 100, `attempt ${i + 1} at +${off} ms, expected +${expected[i]}`);
  });
  const fresh = await w.waitFor((t) => t.state === 'RECONNECTING' && t.at >= err.at);
  assert.match(fresh.reason, /fresh instance after a transient ERROR/);
});

test('heartbeat loss with the default restartAfterError: ERROR, then OPEN again one reconnect step later', async () => {
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const hb = 500;
  const inc = 1000;
  const d = await dsd({ url: p.url, heartbeatInterval: hb, reconnectIntervalIncrement: inc });
  await d.waitState('OPEN');
  const w = d.watch();
  await w.waitFor('OPEN');
  await sleep(2 * hb);
  await p.mode('mute-server');
  const err = await w.waitFor('ERROR', 5000);
  assert.match(err.reason, /heartbeat/);
  // While it lasts, status says why, what kind, and when the next try is.
  const st = await d.status();
  assert.equal(st.state, 'ERROR');
  assert.match(st.reason, /heartbeat/);
  assert.equal(st.errorCause, 'heartbeat');
  assert.equal(st.errorKind, 'transient');
  assert.ok(st.nextRetryMs !== null && st.nextRetryMs <= inc, `nextRetryMs ${st.nextRetryMs}`);
  await p.mode('pass');
  const open = await w.waitFor((t) => t.state === 'OPEN' && t.at > err.at, 5000);
  const took = open.at - err.at;
  assert.ok(took >= inc - 50 && took < inc + 1000, `OPEN ${took} ms after ERROR (restartAfterError is 60000)`);
  const again = await d.status();
  assert.equal(again.errorKind, null);
  assert.equal(again.nextRetryMs, null);
});

test('heartbeat loss through the muting proxy: ERROR within 2-3 intervals', async () => {
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const hb = 500;
  const d = await dsd({ url: p.url, heartbeatInterval: hb, restartAfterError: 0 });
  await d.waitState('OPEN');
  const w = d.watch();
  await w.waitFor('OPEN');
  await sleep(2 * hb); // a few PING/PONG rounds
  const muted = Date.now();
  await p.mode('mute-server');
  const err = await w.waitFor('ERROR', 5000);
  const took = err.at - muted;
  assert.ok(took >= 1 * hb && took <= 3 * hb + 150, `ERROR ${took} ms after muting (interval ${hb})`);
  assert.match(err.reason, /heartbeat/);
});

test('pause goes OFFLINE with no reconnects; resume reconnects at once', async () => {
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const d = await dsd({ url: p.url, heartbeatInterval: 300, reconnectIntervalIncrement: 100 });
  await d.waitState('OPEN');
  let r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  const st = await d.waitState('OFFLINE');
  assert.match(st.reason, /paused/);
  const n = p.connections;
  await sleep(1000);
  assert.equal(p.connections, n, 'no reconnects while OFFLINE');
  assert.equal((await d.status()).state, 'OFFLINE');
  r = await d.dsctl('pause');
  assert.equal(r.code, 1, 'pausing twice is refused');
  const t = Date.now();
  r = await d.dsctl('resume');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OPEN');
  assert.ok(Date.now() - t < 1000, 'resume reconnects at once');
  assert.equal(p.connections, n + 1);
});

test('REDIRECT through the scripted platform is followed; later reconnects start at the configured URL', async () => {
  const s = await server({ auth: 'open' });
  const sp = await startScripted({ answer: 'redirect', redirectUrl: s.url });
  later(() => sp.close());
  const d = await dsd({ url: sp.url, reconnectIntervalIncrement: 100 });
  const st = await d.waitState('OPEN');
  assert.equal(st.url, s.url, 'now connected to the redirect target');
  assert.equal(st.configuredUrl, sp.url);
  assert.equal(sp.challenges().length, 1);
  // Losing the redirected connection goes back to the configured URL.
  await s.kill9();
  await waitUntil(() => sp.challenges().length >= 2, { timeoutMs: 5000, what: 'a reconnect via the configured URL' });
});

test('REJECT through the scripted platform ends in a permanent ERROR; resume starts a fresh instance', async () => {
  const sp = await startScripted({ answer: 'reject' });
  later(() => sp.close());
  const d = await dsd({ url: sp.url, restartAfterError: 0, reconnectIntervalIncrement: 100 });
  const st = await d.waitState('ERROR');
  assert.match(st.reason, /rejected/);
  assert.equal(st.errorCause, 'rejected');
  assert.equal(st.errorKind, 'permanent');
  assert.equal(st.nextRetryMs, null);
  await sleep(300);
  assert.equal(sp.connections, 1, 'no reconnect after REJECT');
  const r = await d.dsctl('resume');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => sp.connections === 2, { what: 'a fresh attempt after resume' });
});

test('wss:// with the test CA is accepted; with an unknown CA it is refused', async () => {
  const certs = makeCerts();
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port }, tls: certs.tls });
  assert.match(p.url, /^wss:/);
  const good = await dsd({ url: p.url, caFile: certs.caFile });
  await good.waitState('OPEN');
  // One attempt, then a transient ERROR that lasts one step (2 s).
  const bad = await dsd({ url: p.url, caFile: certs.otherCaFile, maxReconnectAttempts: 1,
    reconnectIntervalIncrement: 2000, restartAfterError: 0 });
  const st = await bad.waitState('ERROR', 10000);
  assert.match(st.reason, /certificate|verif|TLS|SSL/i);
  // A reload with the right CA makes a fresh instance that gets through.
  fs.writeFileSync(bad.configFile, fs.readFileSync(bad.configFile, 'utf8').replace(certs.otherCaFile, certs.caFile));
  const r = await bad.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await bad.waitState('OPEN');
});

test('dsd -n checks a config; bad values name the file and line', async () => {
  const { binaries } = require('./lib/dsd');
  const { execFileSync, spawnSync } = require('node:child_process');
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'dsd-n-'));
  const good = path.join(dir, 'good.conf');
  fs.writeFileSync(good, '[platform]\nurl = ws://127.0.0.1:1/deepstream\n');
  execFileSync(binaries().dsd, ['-n', '-c', good]);
  const bad = path.join(dir, 'bad.conf');
  fs.writeFileSync(bad, '[platform]\nurl = ws://127.0.0.1:1/deepstream\nheartbeatInterval = soon\n');
  const r = spawnSync(binaries().dsd, ['-n', '-c', bad], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[/.]/g, '\\$&')}:3`));
});
