'use strict';
// The durable spool ([queue] spool): emits accepted while the platform is
// unreachable survive kill -9 and SIGTERM of dsd and reach a JS subscriber,
// in order, after dsd starts again on the same spool; a damaged spool file
// leaves dsd serving from memory, saying why.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const { buildDir } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { track } = require('./lib/children');
const { makeTempDir, waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd } = scope();

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');
const N = 2000;

// dsipc-load emit: its one JSON line.
function load(d, ...args) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(LOAD, ['-s', d.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const lines = [];
    let stderr = '';
    readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.once('exit', () => {
      try {
        resolve(JSON.parse(lines[lines.length - 1]));
      } catch {
        reject(new Error(`dsipc-load printed no result: ${stderr}`));
      }
    });
  });
}

function spoolOpts(s, spoolPath, extra = '') {
  return { url: s.url, reconnectIntervalIncrement: 200, extra: `[queue]\nspool = ${spoolPath}\n${extra}` };
}

// A JS subscriber that records every {"i":k} of name.
async function subscriber(s, name) {
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());
  const sub = await c.subscribe(name);
  return { get length() { return sub.events.length; }, get list() { return sub.data.map((x) => x.i); } };
}

// N emits accepted while paused (on disk before each answer).
async function acceptWhilePaused(d, name) {
  await d.waitState('OPEN');
  assert.equal((await d.dsctl('pause')).code, 0);
  await d.waitState('OFFLINE');
  const e = await load(d, 'emit', name, String(N));
  assert.deepEqual({ queued: e.queued, refused: e.refused, pending: e.pending },
    { queued: N, refused: 0, pending: 0 }, e.firstError);
  const st = await d.status();
  assert.equal(st.queue.spool.state, 'ok');
  assert.equal(st.queue.spool.records, N);
}

async function expectAllInOrder(got) {
  await waitUntil(() => got.length >= N, { timeoutMs: 30000, what: `${N} events at the JS subscriber`,
    detail: () => `got ${got.length}` });
  assert.deepEqual(got.list, Array.from({ length: N }, (_, i) => i));
}

for (const [how, stop] of [
  ['kill -9', (d) => d.kill('SIGKILL')],
  ['SIGTERM', (d) => d.stop()],
]) {
  test(`${how} with ${N} accepted emits held: the next dsd on the spool delivers every one, in order`, async () => {
    const s = await server({ auth: 'open' });
    const spoolPath = path.join(makeTempDir('dsd-spool'), 'spool.db');
    const got = await subscriber(s, 'numbers');
    const d1 = await dsd(spoolOpts(s, spoolPath));
    await acceptWhilePaused(d1, 'numbers');
    await stop(d1);
    if (how === 'SIGTERM') assert.ok(d1.lines.some((l) => /keeping \d+ emits .* in the spool/.test(l)), d1.logTail());
    assert.equal(got.length, 0);

    const d2 = await dsd(spoolOpts(s, spoolPath));
    assert.ok(d2.lines.some((l) => l.includes(`${N} emits restored`)), d2.logTail());
    await expectAllInOrder(got);
    await waitUntil(async () => (await d2.status()).queue.spool.records === 0, { what: 'the spool emptied' });
    // Nothing comes twice once confirmed: a third start has nothing to send.
    await d2.stop();
    const d3 = await dsd(spoolOpts(s, spoolPath));
    assert.ok(d3.lines.some((l) => l.includes(' 0 emits restored')), d3.logTail());
    await d3.waitState('OPEN');
    assert.equal(got.length, N);
  });
}

test('a damaged spool file: dsd starts, serves from memory and says why', async () => {
  const s = await server({ auth: 'open' });
  const spoolPath = path.join(makeTempDir('dsd-spool'), 'spool.db');
  fs.writeFileSync(spoolPath, 'this is not an SQLite database, '.repeat(200));
  const got = await subscriber(s, 'mem');
  const d = await dsd(spoolOpts(s, spoolPath));
  const st = await d.waitState('OPEN');
  assert.equal(st.queue.spool.path, spoolPath);
  assert.equal(st.queue.spool.state, 'failed');
  assert.match(st.queue.spool.error, /not a database or is corrupt/);
  assert.ok(d.lines.some((l) => /not a database or is corrupt.*serving from memory only/.test(l)), d.logTail());
  const r = await d.dsctl('emit', 'mem', '{"i":0}');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => got.length === 1, { what: 'the event at the JS subscriber' });
  // The file is left as it was, for the operator.
  assert.match(fs.readFileSync(spoolPath, 'utf8'), /^this is not an SQLite database/);
});

test('without a spool nothing changes: status says queue.spool null', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  const st = await d.waitState('OPEN');
  assert.equal(st.queue.spool, null);
});
