'use strict';
// One whole dsd session in a single test, touching every path a running
// daemon takes: start-up, status, local subscribe and emit both ways through
// the real platform, a reload (accepted and refused, by dsctl and SIGHUP),
// pause and resume with an emit queued while OFFLINE, and SIGTERM.
//
// It is short on purpose: it also runs as the `valgrind` test, with dsd
// under valgrind memcheck (DSD_WRAPPER, see lib/dsd.js), where any memcheck
// error or leak at exit fails it.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const { binaries } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { track } = require('./lib/children');
const { waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd } = scope();

// Under valgrind dsd runs tens of times slower: give every wait room.
const SLOW = Number(process.env.DSD_TIMEOUT_SCALE || 1);
const T = (ms) => ms * SLOW;

test('a whole session: status, subscribe, emit, reload, pause/resume, SIGTERM', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url, heartbeatInterval: 1000, startTimeoutMs: T(10000) });
  await d.waitState('OPEN', T(10000));
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());

  // A local subscriber (dsctl subscribe), fed by the JS client's emits.
  const sub = track(spawn(binaries().dsctl, ['-s', d.socket, 'subscribe', 'session/in'],
    { stdio: ['ignore', 'pipe', 'ignore'] }));
  later(async () => sub.kill('SIGTERM'));
  const subLines = [];
  readline.createInterface({ input: sub.stdout }).on('line', (l) => subLines.push(l));
  await waitUntil(async () => (await d.status()).subscriptions.acked === 1,
    { timeoutMs: T(5000), what: 'the upstream subscription' });
  c.emit('session/in', { n: 1 });
  await waitUntil(() => subLines.length === 1, { timeoutMs: T(5000), what: 'the event at dsctl subscribe' });
  assert.equal(subLines[0], 'session/in {"n":1}');

  // dsctl emit, received by the JS client.
  const got = await c.subscribe('session/out');
  let r = await d.dsctl('emit', 'session/out', '{"m":1}');
  assert.equal(r.code, 0, r.stderr);
  await got.waitFor(1, T(5000));

  // Reloads: a good one by dsctl and by SIGHUP, a broken one refused.
  const good = fs.readFileSync(d.configFile, 'utf8');
  fs.writeFileSync(d.configFile, good.replace('heartbeatInterval = 1000', 'heartbeatInterval = 2000'));
  r = await d.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OPEN', T(10000));
  process.kill(d.pid, 'SIGHUP');
  fs.writeFileSync(d.configFile, good.replace('[platform]\n', '[platform]\nmaxReconnectAttempts = lots\n'));
  await waitUntil(() => d.lines.some((l) => /reload/.test(l)), { timeoutMs: T(5000), what: 'the SIGHUP reload' });
  r = await d.dsctl('reload');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /maxReconnectAttempts/);
  fs.writeFileSync(d.configFile, good);
  await d.waitState('OPEN', T(10000));
  await waitUntil(async () => (await d.status()).subscriptions.acked === 1,
    { timeoutMs: T(10000), what: 'the subscription after the reloads' });

  // Pause: an emit is queued while OFFLINE and flushed after resume.
  r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OFFLINE', T(5000));
  r = await d.dsctl('emit', 'session/out', '{"m":2}');
  assert.equal(r.stdout.trim(), 'queued');
  r = await d.dsctl('resume');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OPEN', T(10000));
  await got.waitFor(2, T(5000));
  assert.deepEqual(got.data, [{ m: 1 }, { m: 2 }]);
  c.emit('session/in', { n: 2 });
  await waitUntil(() => subLines.length === 2, { timeoutMs: T(5000), what: 'an event after resume' });

  // SIGTERM: a clean exit (and, under valgrind, no error and no leak).
  sub.kill('SIGTERM');
  const end = await d.stop(T(5000));
  assert.equal(end.code, 0, `dsd exit: ${JSON.stringify(end)}\n${d.logTail()}`);
});
