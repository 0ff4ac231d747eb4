'use strict';
// Local apps share dsd's one platform connection: events both ways with the
// official JS client on the far side, reference-counted upstream
// subscriptions, the write queue, and misbehaving local clients.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');

const { buildDir } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { sleep, waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');
const { runTool } = require('./lib/run');

const { later, server, dsd, proxy } = scope();

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');

async function jsClient(url) {
  const c = await js.connect(url, { auth: { username: 'js' } });
  later(async () => c.close());
  return c;
}

// A long-running tool process (dsctl subscribe, dsipc-load): its stdout
// lines, and a promise of its exit (lib/run.js).
const run = (bin, args) => runTool(later, bin, args);

function load(d, ...args) {
  return run(LOAD, ['-s', d.socket, ...args]);
}

function dsctlSubscribe(d, ...args) {
  const { binaries } = require('./lib/dsd');
  return run(binaries().dsctl, ['-s', d.socket, 'subscribe', ...args]);
}

// Waits until dsd reports the local subscriptions as taken and acked.
async function untilSubscribed(d, names, local) {
  return waitUntil(async () => {
    const st = await d.status();
    return st.subscriptions.names === names && st.subscriptions.acked === names &&
      st.subscriptions.local === local && st;
  }, { timeoutMs: 5000, what: `${names} acked upstream names, ${local} local subscriptions` });
}

test('a JS emit reaches three local subscribers once each', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const subs = [1, 2, 3].map(() => dsctlSubscribe(d, '--json', 'news/sport'));
  await untilSubscribed(d, 1, 3);
  const c = await jsClient(s.url);
  c.emit('news/sport', { score: 3 });
  await waitUntil(() => subs.every((x) => x.lines.length >= 1), { what: 'all three local subscribers' });
  await sleep(300); // a duplicate would arrive by now
  for (const x of subs) {
    assert.equal(x.lines.length, 1, `exactly once: ${x.lines}`);
    assert.deepEqual(JSON.parse(x.lines[0]), { name: 'news/sport', data: { score: 3 } });
  }
  const st = await d.status();
  assert.equal(st.events.received, 1);
  assert.equal(st.events.delivered, 3);
});

test('a local emit reaches a JS subscriber and the other local subscribers', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const c = await jsClient(s.url);
  const got = await c.subscribe('chat/room');
  const local = dsctlSubscribe(d, 'chat/room');
  await untilSubscribed(d, 1, 1);
  const r = await d.dsctl('emit', 'chat/room', '{"text":"hi"}');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'confirmed');
  await got.waitFor(1);
  assert.deepEqual(got.data[0], { text: 'hi' });
  await waitUntil(() => local.lines.length === 1, { what: 'the local subscriber' });
  assert.equal(local.lines[0], 'chat/room {"text":"hi"}');
  // An emit without data arrives without data.
  await d.dsctl('emit', 'chat/room');
  await got.waitFor(2);
  assert.equal(got.data[1], undefined);
});

test('one upstream subscription per name, reference counted', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const c = await jsClient(s.url);
  const a = dsctlSubscribe(d, 'shared');
  const b = dsctlSubscribe(d, 'shared');
  const st = await untilSubscribed(d, 1, 2);
  assert.equal(st.subscriptions.names, 1, 'one upstream subscription for two apps');
  c.emit('shared', 1);
  await waitUntil(() => a.lines.length === 1 && b.lines.length === 1, { what: 'both apps' });
  a.child.kill('SIGTERM');
  await a.exited;
  await untilSubscribed(d, 1, 1);
  c.emit('shared', 2);
  await waitUntil(() => b.lines.length === 2, { what: 'the remaining app' });
  b.child.kill('SIGTERM');
  await b.exited;
  await waitUntil(async () => {
    const x = await d.status();
    return x.subscriptions.names === 0 && x.subscriptions.pending === 0 && x;
  }, { what: 'dsd to unsubscribe upstream' });
  // Nothing is subscribed upstream any more: another emit reaches nobody.
  c.emit('shared', 3);
  await sleep(300);
  assert.equal((await d.status()).events.received, 2);
});

async function queuedInOrder({ restartServer }) {
  const s = await server({ auth: 'open' });
  // dsd reaches the server through a proxy, so it can be held back until
  // the JS subscriber is back after a server restart.
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const d = await dsd({ url: p.url, reconnectIntervalIncrement: 200, maxReconnectInterval: 500,
    maxReconnectAttempts: 'infinity' });
  await d.waitState('OPEN');
  let c = await jsClient(s.url);
  let got = await c.subscribe('bulk');
  const N = 10000;
  if (restartServer) {
    await p.mode('reset');
    await s.kill9();
    await d.waitState('RECONNECTING');
  } else {
    assert.equal((await d.dsctl('pause')).code, 0);
    await d.waitState('OFFLINE');
  }
  const e = await load(d, 'emit', 'bulk', String(N)).result();
  assert.deepEqual({ sent: e.sent, queued: e.queued, refused: e.refused }, { sent: 0, queued: N, refused: 0 });
  const st = await d.status();
  assert.equal(st.queue.messages, N);
  if (restartServer) {
    await s.restart();
    c = await jsClient(s.url);
    got = await c.subscribe('bulk');
    assert.notEqual((await d.status()).state, 'OPEN', 'dsd is still held back');
    await p.mode('pass');
  } else {
    assert.equal((await d.dsctl('resume')).code, 0);
  }
  await d.waitState('OPEN', 10000);
  await got.waitFor(N, 60000);
  const is = got.data.map((x) => x.i);
  assert.equal(is.length, N);
  for (let i = 0; i < N; i++) assert.equal(is[i], i, `event ${i} out of order`);
  const after = await d.status();
  assert.equal(after.queue.messages, 0);
  assert.equal(after.emits.sent, N);
}

test('pause, 10,000 local emits, resume: the JS subscriber gets all in order', async () => {
  await queuedInOrder({ restartServer: false });
});

test('10,000 emits while the server is down arrive in order after it restarts', async () => {
  await queuedInOrder({ restartServer: true });
});

test('queue limit: overflow = reject refuses with a clear error', async () => {
  const s = await server({ auth: 'open' });
  // One uid runs every app here: its share is the whole queue (the per-uid
  // share is in access.test.js).
  const d = await dsd({ url: s.url, queue: { maxMessages: 100, overflow: 'reject' },
    extra: '[queue]\nmaxMessagesPerUser = 100' });
  await d.waitState('OPEN');
  await d.dsctl('pause');
  await d.waitState('OFFLINE');
  // One app may hold half of the queue: it hits its own share first ...
  const e = await load(d, 'emit', 'q', '100').result();
  assert.deepEqual({ queued: e.queued, refused: e.refused }, { queued: 50, refused: 50 });
  assert.match(e.firstError, /write queue full for this app/);
  // ... and another app still gets in.
  let r = await d.dsctl('emit', 'q', '{"another":"app"}');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'queued');
  // A second flood fills what is left of the queue; then nobody gets in.
  const e2 = await load(d, 'emit', 'q', '100').result();
  assert.deepEqual({ queued: e2.queued, refused: e2.refused }, { queued: 49, refused: 51 });
  r = await d.dsctl('emit', 'q', '{"one":"more"}');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /write queue full/);
  const st = await d.status();
  assert.equal(st.queue.messages, 100);
  assert.equal(st.emits.rejected, 50 + 51 + 1);
});

test('queue limit: overflow = drop-oldest counts exactly what it dropped', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url, queue: { maxMessages: 100, overflow: 'drop-oldest' },
    extra: '[queue]\nmaxMessagesPerUser = 100' });
  await d.waitState('OPEN');
  const c = await jsClient(s.url);
  const got = await c.subscribe('q');
  await d.dsctl('pause');
  await d.waitState('OFFLINE');
  // One app's share is half the queue: it drops its own oldest.
  const e = await load(d, 'emit', 'q', '250').result();
  assert.equal(e.queued, 250);
  let st = await d.status();
  assert.equal(st.queue.messages, 50);
  assert.equal(st.emits.dropped, 200);
  await d.dsctl('resume');
  await got.waitFor(50);
  await sleep(200);
  assert.deepEqual(got.data.map((x) => x.i), Array.from({ length: 50 }, (_, k) => 200 + k),
    'the newest 50 survive, in order');
  st = await d.status();
  assert.equal(st.emits.dropped, 200);
});

test('a slow reader is cut off without delaying the others; garbage closes only that client', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url, ipc: { clientBuffer: 2 * 1024 * 1024 } });
  await d.waitState('OPEN');
  const slow = load(d, 'slow', 'flood');
  await slow.ready();
  const N = 800;
  const fast = load(d, 'subscribe', 'flood', '1', String(N), '30000');
  await fast.ready();
  const t0 = Date.now();
  const e = await load(d, 'emit', 'flood', String(N), '8000').result();
  assert.equal(e.sent + e.queued, N);
  const f = await fast.result();
  assert.equal(f.min, N, 'the fast reader got every event');
  assert.equal(f.inOrder, true);
  assert.ok(Date.now() - t0 < 20000);
  await waitUntil(() => d.lines.some((l) => /slow reader/.test(l)), { what: 'the slow reader to be dropped' });
  const st = await d.status();
  assert.ok(st.clients.dropped >= 1);

  const g = await new Promise((resolve) => execFile(LOAD, ['-s', d.socket, 'garbage'],
    (err, stdout) => resolve({ code: err ? err.code : 0, stdout })));
  assert.equal(g.stdout.trim(), 'closed');
  // The daemon and other clients are fine.
  const r = await d.dsctl('emit', 'flood', '{"i":0}');
  assert.equal(r.code, 0);
});

test('1,000 local clients at once', async () => {
  const s = await server({ auth: 'open' });
  // Each idle client holds about 66 KiB of buffer capacity (a 64 KiB
  // reader and the capacity its largest reply left), so a thousand of them
  // are right at the default clientBufferTotal (64 MiB): room, so that the
  // size of a status reply does not decide this test.
  const d = await dsd({ url: s.url, ipc: { clientBufferTotal: 128 * 1024 * 1024 } });
  await d.waitState('OPEN');
  const many = load(d, 'subscribe', 'fanout', '1000', '1', '30000');
  await many.ready(60000);
  const st = await d.status();
  // The thousand, plus the dsctl asking.
  assert.equal(st.clients.connected, 1001);
  assert.equal(st.subscriptions.names, 1);
  const c = await jsClient(s.url);
  c.emit('fanout', { i: 0 });
  const r = await many.result();
  assert.deepEqual({ min: r.min, max: r.max, total: r.total }, { min: 1, max: 1, total: 1000 });
});

test('a subscription the platform denies is reported to the apps that asked, and counted', async () => {
  const s = await server({ auth: 'open', denyPrefix: 'secret/' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const open = dsctlSubscribe(d, '-n', '1', 'open/a');
  const denied = dsctlSubscribe(d, 'secret/a');
  const code = await denied.exited;
  assert.equal(code, 1);
  assert.match(denied.stderr, /secret\/a refused: subscription denied/);
  const st = await d.status();
  assert.equal(st.subscriptions.denials, 1);
  // The allowed name still works (and -n ends dsctl after one event).
  const c = await jsClient(s.url);
  await waitUntil(async () => (await d.status()).subscriptions.acked >= 1, { what: 'open/a acked' });
  c.emit('open/a', { ok: true });
  assert.equal(await open.exited, 0);
  assert.deepEqual(open.lines, ['open/a {"ok":true}']);
});

test('after a reconnect the upstream subscriptions are rebuilt from state', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url, reconnectIntervalIncrement: 100, maxReconnectInterval: 300,
    maxReconnectAttempts: 'infinity' });
  await d.waitState('OPEN');
  const local = dsctlSubscribe(d, 'after/restart');
  await untilSubscribed(d, 1, 1);
  await s.kill9();
  await d.waitState('RECONNECTING');
  await s.restart();
  await d.waitState('OPEN', 10000);
  await untilSubscribed(d, 1, 1);
  const c = await jsClient(s.url);
  c.emit('after/restart', 'back');
  await waitUntil(() => local.lines.length === 1, { what: 'the event after the reconnect' });
  assert.equal(local.lines[0], 'after/restart "back"');
});

test('limits: clients, subscriptions per client, bad names and data get clear errors', async () => {
  const s = await server({ auth: 'open' });
  // root runs the clients: no slots kept for admins past maxClients here.
  const d = await dsd({ url: s.url, ipc: { maxClients: 2, maxSubscriptionsPerClient: 2, reservedAdminClients: 0 } });
  await d.waitState('OPEN');
  // Two names are fine for one client, a third is refused.
  const two = dsctlSubscribe(d, 'a', 'b');
  await untilSubscribed(d, 2, 2);
  const three = dsctlSubscribe(d, 'x', 'y', 'z');
  assert.equal(await three.exited, 1);
  assert.match(three.stderr, /too many subscriptions for this client \(max 2\)/);
  // Client limit: `two` and this one fill it; the next is refused.
  const w = load(d, 'slow', 'c');
  await w.ready();
  const r = await d.dsctl('status');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /too many clients/);
  two.child.kill('SIGTERM');
  w.child.kill('SIGTERM');
  await Promise.all([two.exited, w.exited]);
  // Names and data are checked before anything is queued.
  const long = 'n'.repeat(1025);
  let e = await d.dsctl('emit', long, '1');
  assert.equal(e.code, 1);
  assert.match(e.stderr, /name/);
  e = await d.dsctl('emit', 'ok', '{"unterminated":');
  assert.equal(e.code, 1);
  assert.match(e.stderr, /invalid JSON/);
  // Data under 1 MiB whose whole frame is over the platform's limit.
  const big = await load(d, 'emit', 'big', '1', String(1024 * 1024 - 20)).result();
  assert.equal(big.refused, 1);
  assert.match(big.firstError, /1 MiB/);
  assert.equal((await d.status()).state, 'OPEN', 'the connection was never at risk');
  const st = await d.status();
  assert.equal(st.emits.queued + st.emits.sent, 0, 'nothing was sent or queued');
});

test('emits unconfirmed when the connection closes are written again, in order', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const c = await jsClient(s.url);
  const got = await c.subscribe('big');
  // A stopped server reads nothing: what dsd writes stays unconfirmed.
  process.kill(s.pid, 'SIGSTOP');
  let e;
  try {
    e = await load(d, 'emit', 'big', '400', '50000').result();
  } finally {
    process.kill(s.pid, 'SIGCONT');
  }
  assert.equal(e.refused, 0);
  assert.ok(e.sent > 0, 'some went straight to the connection');
  process.kill(s.pid, 'SIGSTOP');
  assert.equal((await d.dsctl('pause')).code, 0);
  await d.waitState('OFFLINE');
  process.kill(s.pid, 'SIGCONT');
  const st = await d.status();
  assert.ok(st.emits.requeued > 0, `unconfirmed emits were queued again: ${JSON.stringify(st.emits)}`);
  assert.equal(st.queue.messages + st.queue.unconfirmed, 400 - st.emits.confirmed, 'dsd holds all it has not confirmed');
  assert.equal((await d.dsctl('resume')).code, 0);
  // Every one arrives (20 MB, one 50 kB event per confirmation round trip).
  await waitUntil(() => new Set(got.data.map((x) => x.i)).size === 400,
    { timeoutMs: 90000, what: 'all 400 events at the JS subscriber' });
  const is = got.data.map((x) => x.i);
  // Duplicates only as dsd counted them, and a resent one only after its
  // first copy: the first arrival of each number is in order.
  const after = await d.status();
  assert.ok(is.length - 400 <= after.emits.resent, `${is.length - 400} duplicates, resent ${after.emits.resent}`);
  const firsts = is.filter((x, k) => is.indexOf(x) === k);
  assert.deepEqual(firsts, Array.from({ length: 400 }, (_, k) => k), 'in order');
});
