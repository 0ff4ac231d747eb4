'use strict';
/*
 * The fault suite: is dsd's delivery "nothing lost"? Local apps (dsipc-load
 * steady, one process each) emit numbered events {"app":A,"n":k} at a steady
 * rate through dsd; the official JS client, connected straight to the
 * server, subscribes to the name and is the ground truth. Meanwhile faults
 * hit the path between dsd and the platform, the platform itself and dsd:
 *
 *   reset          every proxied connection reset (RST)
 *   blackhole      nothing passes either way, sockets kept open, for more
 *                  than two heartbeat intervals (dsd must notice by itself)
 *   mute-server    dsd's bytes reach the server, nothing comes back, as long
 *   refuse         connections reset and new ones refused for a while
 *   server-restart the server killed (SIGKILL) and started again on its port;
 *                  dsd is held back (proxy refuses) until the subscriber is
 *                  back and subscribed, since events published while it is
 *                  away can never reach it
 *   pause          dsctl pause, a second of emits queued, dsctl resume
 *   dsd-restart    dsd stopped (SIGTERM) and started again with the same
 *                  configuration and socket; the apps connect again
 *
 * The schedule runs twice: with the store in memory, then with the durable
 * spool ([queue] spool), which adds two faults only a spool survives:
 *
 *   dsd-kill9      dsd killed (SIGKILL) and started again on its spool
 *   dsd-restart-offline  dsd stopped (SIGTERM) while the platform is away
 *                  and it holds a queue, then started again
 *
 * Every emit an app was answered "sent" or "queued" for must arrive (at
 * least once, in order per app). Duplicates may come only from emits in
 * flight at a fault, which dsd counts as emits.resent in its status (taken
 * as 0 where that counter does not exist). The last line the test prints:
 *
 *   faults: spool: sent=N received=M lost=L duplicated=D reordered=R resent=X faults=F
 *
 * (sent: accepted by dsd; received: every delivery, see lib/reconcile.js)
 * and it asserts lost = 0, reordered = 0 and duplicated <= resent. Lost
 * numbers are also attributed to the fault during which they were emitted.
 *
 * The short schedule (each fault once) runs in the suite. DSD_FAULTS_LONG=1
 * runs several rounds in shuffled order (minutes; see tests/integration/README.md);
 * DSD_FAULTS_ONLY=reset,pause runs just those faults, once each (the
 * spool's own faults only in the spool run).
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { buildDir } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { runTool } = require('./lib/run');
const { waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');
const { reconciler, ranges } = require('./lib/reconcile');

const { later, server, dsd, proxy } = scope();

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');
const NAME = 'faults/stream';
const HB = 1000; // dsd's heartbeatInterval
const APPS = 3;
const RATE = 500; // emits per second per app
const LONG = !!process.env.DSD_FAULTS_LONG;
const ROUNDS = LONG ? Number(process.env.DSD_FAULTS_ROUNDS || 10) : 1;
const ONLY = (process.env.DSD_FAULTS_ONLY || '').split(',').filter(Boolean);

const DSD_OPTS = {
  heartbeatInterval: HB,
  reconnectIntervalIncrement: 200,
  maxReconnectInterval: 1000,
  maxReconnectAttempts: 'infinity',
  // A missed heartbeat is an ERROR in dsd; out of it again quickly.
  restartAfterError: 300,
};

// A small seeded PRNG, so a long run's order can be repeated
// (DSD_FAULTS_SEED).
function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function shuffled(list, rnd) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const log = (line) => process.stdout.write(`${line}\n`);

// One run of the schedule: memory only, or with the durable spool, which
// adds the faults only a spool survives (kill -9, a stop while offline).
async function runSuite({ spool }) {
  const began = Date.now();
  const s = await server({ auth: 'open' });
  // dsd reaches the server through the proxy; the subscriber does not.
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  // A relative spool path is next to dsd's config, in its own temp dir.
  let d = await dsd({ url: p.url, ...DSD_OPTS, extra: spool ? '[queue]\nspool = spool.db' : undefined });
  let w = d.watch();
  await d.waitState('OPEN');

  const rec = reconciler();
  // The subscriber: one JS client at a time, all into the same books.
  let sub = null;
  async function subscribe() {
    const c = await js.connect(s.url, { auth: { username: 'subscriber' } });
    later(async () => c.close());
    c.client.event.subscribe(NAME, (data) => rec.record(data));
    await c.sync(); // the server has taken the subscription
    return c;
  }
  sub = await subscribe();

  let resentBefore = 0; // emits.resent of dsd runs already stopped
  const resentOf = (st) => (st.emits && Number.isInteger(st.emits.resent) ? st.emits.resent : 0);

  const apps = [];
  for (let a = 1; a <= APPS; a++) {
    const t = runTool(later, LOAD, ['-s', d.socket, 'steady', NAME, String(a), String(RATE), String(3600e3)]);
    await t.ready(5000);
    apps.push({ app: a, tool: t, t0: Date.now() });
  }
  // Waits until every app's events flow again: the subscriber has a number
  // each app emitted after `since`, so whatever the fault held back is out.
  async function flowing(what, since = Date.now(), timeoutMs = 20000) {
    const marks = apps.map((x) => Math.floor(((since - x.t0) * RATE) / 1000));
    await waitUntil(() => apps.every((x, i) => rec.maxOf(x.app) >= marks[i]), {
      timeoutMs,
      intervalMs: 20,
      what: `events to flow again after ${what}`,
      detail: () => `marks ${JSON.stringify(marks)}, received up to ` +
        `${JSON.stringify(apps.map((x) => rec.maxOf(x.app)))}; dsd log tail:\n${d.logTail(20)}`,
    });
  }
  // Waits for dsd to leave OPEN after `since` (the fault took effect):
  // dsd leaves OPEN after `since`: seen as a transition, unless it is not
  // OPEN any more when asked (a connection that dropped just before the
  // fault began; the fault then meets dsd already away, and its
  // transition came before `since`).
  const leftOpen = async (since, timeoutMs) => {
    if ((await d.status()).state !== 'OPEN') return null;
    return w.waitFor((t) => t.state !== 'OPEN' && t.at >= since, timeoutMs);
  };
  const openAgain = (since, timeoutMs = 15000) => w.waitFor((t) => t.state === 'OPEN' && t.at >= since, timeoutMs);

  const FAULTS = {
    async reset() {
      const t = Date.now();
      await p.mode('reset-all');
      await leftOpen(t, 5000);
      await openAgain(t);
    },
    async blackhole() {
      const t = Date.now();
      await p.mode('blackhole');
      // Longer than two heartbeat intervals, and dsd must have noticed.
      await leftOpen(t, 4 * HB);
      await waitUntil(() => Date.now() - t >= 2.5 * HB, { timeoutMs: 5 * HB, intervalMs: 20, what: 'the black hole to last' });
      const back = Date.now();
      await p.mode('pass');
      await openAgain(back);
    },
    async 'mute-server'() {
      const t = Date.now();
      await p.mode('mute-server');
      await leftOpen(t, 4 * HB);
      await waitUntil(() => Date.now() - t >= 2.5 * HB, { timeoutMs: 5 * HB, intervalMs: 20, what: 'the mute to last' });
      const back = Date.now();
      await p.mode('pass');
      await openAgain(back);
    },
    async refuse() {
      const t = Date.now();
      await p.mode('refuse');
      await p.mode('reset-all');
      await leftOpen(t, 5000);
      // A few refused attempts before the door opens again.
      const from = (await d.status()).connection.attempts;
      await waitUntil(async () => (await d.status()).connection.attempts >= from + 2, {
        timeoutMs: 10000, intervalMs: 50, what: 'two refused reconnect attempts' });
      const back = Date.now();
      await p.mode('pass');
      await openAgain(back);
    },
    async 'server-restart'() {
      const t = Date.now();
      await p.mode('refuse'); // dsd may not come back before the subscriber
      await s.kill9();
      // The old subscriber reads what the server wrote before it died
      // (the socket's end comes after it), then it is closed.
      const old = sub;
      await waitUntil(() => old.state !== 'OPEN', { timeoutMs: 5000, what: 'the subscriber to see the server gone' });
      sub.close();
      await leftOpen(t, 5000);
      await s.restart();
      sub = await subscribe();
      assert.notEqual((await d.status()).state, 'OPEN', 'dsd is still held back');
      const back = Date.now();
      await p.mode('pass');
      await openAgain(back);
    },
    async pause() {
      const t = Date.now();
      const r = await d.dsctl('pause');
      assert.equal(r.code, 0, r.stderr);
      await leftOpen(t, 5000);
      // A second's worth of emits queued, then back.
      await waitUntil(async () => (await d.status()).queue.messages >= APPS * RATE, {
        timeoutMs: 10000, intervalMs: 50, what: 'emits to queue while paused' });
      const back = Date.now();
      const q = await d.dsctl('resume');
      assert.equal(q.code, 0, q.stderr);
      await openAgain(back);
    },
    async 'dsd-restart'({ waitOpen = true } = {}) {
      resentBefore += resentOf(await d.status());
      const stopped = await d.stop();
      assert.equal(stopped.code, 0, `dsd exit after SIGTERM: ${JSON.stringify(stopped)}`);
      const { dir } = d;
      d = await dsd({ dir });
      w = d.watch();
      if (waitOpen) await d.waitState('OPEN', 15000);
      // flowing() then shows that every app is back.
    },
    // With the spool: dsd killed outright, then started again on it.
    async 'dsd-kill9'() {
      resentBefore += resentOf(await d.status());
      await d.kill('SIGKILL');
      const { dir } = d;
      d = await dsd({ dir });
      w = d.watch();
      await d.waitState('OPEN', 15000);
    },
    // With the spool: dsd stopped while it holds a queue (the platform
    // unreachable), so the queue must outlive the process.
    async 'dsd-restart-offline'() {
      const t = Date.now();
      await p.mode('refuse');
      await p.mode('reset-all');
      await leftOpen(t, 5000);
      await waitUntil(async () => (await d.status()).queue.messages >= APPS * RATE, {
        timeoutMs: 10000, intervalMs: 50, what: 'emits to queue while the platform is away' });
      await FAULTS['dsd-restart']({ waitOpen: false });
      const back = Date.now();
      await p.mode('pass');
      await openAgain(back);
    },
  };
  const DEFAULT_SCHEDULE = ['reset', 'blackhole', 'mute-server', 'refuse', 'server-restart', 'pause', 'dsd-restart'];

  const SPOOL_ONLY = ['dsd-kill9', 'dsd-restart-offline'];
  const names = ONLY.length ? ONLY.filter((n) => spool || !SPOOL_ONLY.includes(n))
    : spool ? [...DEFAULT_SCHEDULE, ...SPOOL_ONLY] : DEFAULT_SCHEDULE;
  for (const n of names) assert.ok(FAULTS[n], `DSD_FAULTS_ONLY: no fault ${n} (known: ${Object.keys(FAULTS)})`);
  const seed = Number(process.env.DSD_FAULTS_SEED || 1);
  const rnd = prng(seed);
  const schedule = [];
  for (let r = 0; r < ROUNDS; r++) schedule.push(...(r === 0 ? names : shuffled(names, rnd)));
  log(`faults: schedule (${spool ? 'spool' : 'memory'}, ${LONG ? `long, ${ROUNDS} rounds, seed ${seed}` : 'short'}): ` +
    `${schedule.join(' ')}`);

  await flowing('start');
  const done = []; // {name, from, to}: when the fault's emits were made
  for (const name of schedule) {
    const from = Date.now();
    await FAULTS[name]();
    await flowing(name);
    const to = Date.now();
    done.push({ name, from, to });
    log(`faults: ${name} done in ${to - from} ms`);
    // Half a second of steady flow between faults, so that each fault
    // starts from a normal state and its losses are told apart.
    await flowing(`the steady half second after ${name}`, to + 500);
  }

  // Stop the apps, then wait for everything to settle.
  for (const x of apps) x.tool.child.kill('SIGTERM');
  const reports = [];
  for (const x of apps) reports.push(await x.tool.result(40000));
  const last = await waitUntil(async () => {
    const st = await d.status();
    return st.state === 'OPEN' && st.queue.messages === 0 && st;
  }, { timeoutMs: 30000, what: 'dsd OPEN with an empty queue' });
  await waitUntil(() => Date.now() - rec.lastAt >= 2000, {
    timeoutMs: 60000, intervalMs: 100, what: 'two seconds without a new event' });
  const resent = resentBefore + resentOf(last);

  const { total, perApp, lostList } = rec.settle(reports);
  for (const r of reports) {
    log(`faults: app ${r.app}: emitted ${r.emitted}, accepted ${r.accepted} (sent ${r.sent}, queued ${r.queued}), ` +
      `not accepted ${r.refused} (no dsd ${r.noDaemon}, answer lost ${r.lostAnswer}, refused ${r.daemonRefused}, ` +
      `unanswered ${r.unanswered}), connections ${r.reconnects}`);
  }
  for (const f of perApp) log(`faults: app ${f.app}: ${JSON.stringify(f)}`);
  // Each lost number to the fault running when it was emitted.
  const t0 = new Map(apps.map((x) => [x.app, x.t0]));
  const blame = new Map();
  for (const { app, n } of lostList) {
    const at = t0.get(app) + (n * 1000) / RATE;
    // During a fault or in the quarter second before it (emits in flight
    // when it bit), else between faults. The time of a number is
    // estimated from the app's start and its rate: approximate by a few ms.
    const f = done.find((x) => at >= x.from - 250 && at <= x.to);
    const key = f ? f.name : 'between faults';
    if (!blame.has(key)) blame.set(key, new Map());
    const m = blame.get(key);
    if (!m.has(app)) m.set(app, []);
    m.get(app).push(n);
  }
  for (const [name, m] of blame) {
    const count = [...m.values()].reduce((a, ns) => a + ns.length, 0);
    const detail = [...m].map(([a, ns]) => `app ${a}: ${ranges(ns, 5)}`).join('; ');
    log(`faults: lost during ${name}: ${count} (${detail})`);
  }
  log(`faults: extra (received, not accepted) ${total.extra}, stray ${total.stray}, ` +
    `dsd resent ${resent}, took ${Math.round((Date.now() - began) / 1000)} s`);
  log(`faults: ${spool ? 'spool' : 'memory'}: sent=${total.sent} received=${total.received} lost=${total.lost} ` +
    `duplicated=${total.duplicated} reordered=${total.reordered} resent=${resent} faults=${schedule.length}`);

  assert.ok(total.sent > 0, 'the apps had emits accepted');
  assert.equal(total.stray, 0, 'events that no app emitted');
  assert.equal(total.lost, 0, `${total.lost} accepted emits never reached the platform`);
  assert.equal(total.reordered, 0, `${total.reordered} events out of order`);
  assert.ok(total.duplicated <= resent, `${total.duplicated} duplicates, but dsd resent only ${resent}`);
}

const TIMEOUT = LONG ? 3600e3 : 170e3;
test('fault suite (memory): every accepted emit reaches the platform, in order', { timeout: TIMEOUT },
  () => runSuite({ spool: false }));
test('fault suite (spool): the same, and across kill -9 and a stop while offline', { timeout: TIMEOUT },
  () => runSuite({ spool: true }));
