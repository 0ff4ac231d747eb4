'use strict';
/*
 * dsd benchmark: prints figures, judges nothing about speed.  It fails only
 * when a figure would be meaningless (events lost, a helper did not start).
 *
 * Against the real deepstream server on loopback, with the official JS
 * client on the platform side and libdsipc programs on the local side:
 *   1. local emit throughput (dsipc-load emit -> JS subscriber), while OPEN
 *      and when a paused queue is flushed by `dsctl resume`;
 *   2. platform -> local fan-out to 1, 10 and 100 local subscribers;
 *   3. round-trip latency local -> JS -> local (tests/bench/dsipc-rtt);
 *   4. dsd's memory: idle, with 1,000 local clients, with 100,000 queued;
 *   5. dsd's CPU time per 10,000 events for 1 and 2.
 * Every figure comes from a fresh dsd where memory matters, so one phase's
 * heap does not leak into the next.  All processes are started through the
 * integration helpers and stopped by PID.
 *
 * Sizes can be changed through the environment (defaults in SIZES below);
 * DSD_BUILD_DIR says where dsd, dsctl and the drivers are.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd, buildDir, binaries } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { sleep, waitUntil, withTimeout } = require(path.join(lib, 'util'));

function envInt(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: want a positive integer`);
  return n;
}

const SIZES = {
  emits: envInt('BENCH_EMITS', 100000), // case 1, while OPEN
  queued: envInt('BENCH_QUEUED', 100000), // cases 1 (flush) and 4
  fanout: envInt('BENCH_FANOUT', 50000), // events per fan-out run
  fanoutClients: [1, 10, 100],
  rttSamples: envInt('BENCH_RTT_SAMPLES', 2000),
  rttWarmup: 50,
  clients: envInt('BENCH_CLIENTS', 1000),
};
// The whole run is bounded: past this the process exits and the helpers'
// exit hook kills what is left, by PID.
const TOTAL_BUDGET_MS = envInt('BENCH_BUDGET_MS', 170000);

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');
const RTT = path.join(buildDir(), 'tests', 'bench', 'dsipc-rtt');

// Room for the largest queue and for the fan-out bursts: the figures are
// about speed, not about the default limits.
const DSD_OPTS = {
  verbose: false, // a debug line costs more than much of what is measured
  queue: { maxMessages: Math.max(200000, 2 * SIZES.queued), maxBytes: 1024 * 1024 * 1024 },
  // Raised with the per-client one: 100 subscribers read by one process
  // lag behind together, and the budget would drop the slowest.
  ipc: { clientBuffer: 64 * 1024 * 1024, clientBufferTotal: 1024 * 1024 * 1024 },
};

/* -- /proc and processes: shared with side-by-side.js -- */

const { CLK_TCK, memory, cpuMs, runTool } = require('./bench-lib');

const load = (d, ...args) => runTool(LOAD, ['-s', d.socket, ...args], 90000);

/* -- the platform side -- */

// A JS subscriber that counts events, checks their order ({i: k}, k from
// 0) and resolves waitFor(n) the moment the n-th arrives.
async function jsCounter(c, name) {
  const st = { n: 0, next: 0, inOrder: true, lastAt: 0, want: Infinity, wake: null };
  c.client.event.subscribe(name, (data) => {
    st.lastAt = performance.now();
    if (!data || data.i !== st.next) st.inOrder = false;
    st.next = data ? data.i + 1 : -1;
    st.n += 1;
    if (st.n >= st.want && st.wake) st.wake();
  });
  await c.sync();
  st.waitFor = (n, ms) => {
    st.want = n;
    const p = st.n >= n ? Promise.resolve() : new Promise((resolve) => (st.wake = resolve));
    return withTimeout(p, ms, `${n} events on ${name} at the JS subscriber (got ${st.n})`);
  };
  return st;
}

// Emits {i: 0..n-1}, yielding now and then so the socket drains as we go.
async function jsEmitMany(c, name, n) {
  for (let i = 0; i < n; i++) {
    c.emit(name, { i });
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
}

async function untilAcked(d, what) {
  return waitUntil(
    async () => {
      const st = await d.status();
      return st.subscriptions.acked === st.subscriptions.names && st;
    },
    { timeoutMs: 10000, intervalMs: 20, what: `dsd to have ${what} acked upstream` });
}

/* -- the cases -- */

const perSec = (n, ms) => Math.round((n * 1000) / ms);
const per10k = (cpu, n) => Math.round(((cpu * 10000) / n) * 10) / 10;

// 1a and 5: N local emits while OPEN, until the JS subscriber has them all.
async function caseEmitOpen(ctx) {
  const { d, sub } = ctx;
  const n = SIZES.emits;
  const st = await jsCounter(sub, 'bench/up');
  const cpu0 = cpuMs(d.pid);
  const t0 = performance.now();
  const l = load(d, 'emit', 'bench/up', String(n));
  await st.waitFor(n, 90000);
  const ms = st.lastAt - t0;
  const cpu = cpuMs(d.pid) - cpu0;
  const e = await l.result();
  // Accepted is what counts: "sent" (written at once) or "queued" (written
  // when the window of unconfirmed emits has room).
  if (!st.inOrder || e.sent + e.queued !== n || e.refused !== 0) {
    throw new Error(`emit while OPEN: in order ${st.inOrder}, ${JSON.stringify(e)}`);
  }
  return { events: n, ms: Math.round(ms), eventsPerSec: perSec(n, ms), cpuMs: cpu, cpuMsPer10k: per10k(cpu, n) };
}

// 2 and 5: a JS client emits N events; K local subscribers in one process.
async function caseFanout(ctx, k) {
  const { d, pub } = ctx;
  const n = SIZES.fanout;
  const name = `bench/fan/${k}`;
  const l = load(d, 'subscribe', name, String(k), String(n), '90000');
  await l.ready();
  await untilAcked(d, name);
  const cpu0 = cpuMs(d.pid);
  const t0 = performance.now();
  await jsEmitMany(pub, name, n);
  const r = await l.result();
  const cpu = cpuMs(d.pid) - cpu0;
  const ms = r.exitAt - t0;
  if (r.min !== n || !r.inOrder) throw new Error(`fan-out to ${k}: ${JSON.stringify(r)}`);
  return {
    subscribers: k,
    events: n,
    delivered: r.total,
    ms: Math.round(ms),
    eventsPerSec: perSec(n, ms),
    deliveredPerSec: perSec(r.total, ms),
    cpuMs: cpu,
    cpuMsPer10kEvents: per10k(cpu, n),
    cpuMsPer10kDelivered: per10k(cpu, r.total),
  };
}

// 3: local emit -> JS subscriber -> JS emit -> local subscriber.
async function caseRtt(ctx) {
  const { d, pub } = ctx;
  let echoed = 0;
  pub.client.event.subscribe('bench/rtt/out', (data) => {
    echoed += 1;
    pub.emit('bench/rtt/back', data);
  });
  await pub.sync();
  const r = runTool(RTT, ['-s', d.socket, 'bench/rtt/out', 'bench/rtt/back', String(SIZES.rttSamples),
    String(SIZES.rttWarmup), '2000'], 90000);
  const { exitAt, ...res } = await r.result();
  pub.client.event.unsubscribe('bench/rtt/out');
  // Every counted round trip went through the JS client, or the driver is
  // measuring something else.
  if (echoed < res.samples + SIZES.rttWarmup) {
    throw new Error(`round trip: ${res.samples} samples but the JS client echoed only ${echoed}`);
  }
  return { ...res, echoed };
}

// 4: fresh dsd; idle, then with N local clients (each subscribed to one
// shared name, as an app would be).
async function caseClientsMemory(s) {
  const d = await startDsd({ url: s.url, ...DSD_OPTS });
  try {
    await d.waitState('OPEN');
    await sleep(300);
    const idle = memory(d.pid);
    const n = SIZES.clients;
    const l = load(d, 'subscribe', 'bench/many', String(n), '1', '60000');
    await l.ready(60000);
    await sleep(300);
    const withClients = memory(d.pid);
    const connected = (await d.status()).clients.connected;
    const c = await js.connect(s.url, { auth: { username: 'bench-many' } });
    c.emit('bench/many', { i: 0 });
    const r = await l.result();
    c.close();
    if (r.min !== 1 || r.total !== n) throw new Error(`${n} clients: ${JSON.stringify(r)}`);
    return {
      idle,
      clients: n,
      connected,
      withClients,
      perClientKiB: Math.round(((withClients.rssKiB - idle.rssKiB) / n) * 100) / 100,
    };
  } finally {
    await d.stop();
  }
}

// 4 and 1b: fresh dsd; pause, queue N emits, measure; resume, time the flush.
async function caseQueue(s, sub) {
  const d = await startDsd({ url: s.url, ...DSD_OPTS });
  try {
    await d.waitState('OPEN');
    const st = await jsCounter(sub, 'bench/q');
    await sleep(300);
    const before = memory(d.pid);
    const n = SIZES.queued;
    if ((await d.dsctl('pause')).code !== 0) throw new Error('dsctl pause failed');
    await d.waitState('OFFLINE');
    const e = await load(d, 'emit', 'bench/q', String(n)).result();
    if (e.queued !== n) throw new Error(`queueing ${n}: ${JSON.stringify(e)}`);
    await sleep(300);
    const queued = memory(d.pid);
    const q = (await d.status()).queue;
    const cpu0 = cpuMs(d.pid);
    const t0 = performance.now();
    const r = await d.dsctl('resume');
    if (r.code !== 0) throw new Error(`dsctl resume: ${r.stderr}`);
    await st.waitFor(n, 90000);
    const ms = st.lastAt - t0;
    const cpu = cpuMs(d.pid) - cpu0;
    if (!st.inOrder) throw new Error('queue flush: events out of order at the JS subscriber');
    sub.client.event.unsubscribe('bench/q');
    return {
      memory: {
        before,
        queued,
        messages: q.messages,
        queueBytes: q.bytes,
        perMessageBytes: Math.round(((queued.rssKiB - before.rssKiB) * 1024) / n),
      },
      flush: { events: n, ms: Math.round(ms), eventsPerSec: perSec(n, ms), cpuMs: cpu, cpuMsPer10k: per10k(cpu, n) },
    };
  } finally {
    await d.stop();
  }
}

/* -- output -- */

function table(rows) {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => String(r[1]).length));
  return rows
    .map((r) => (r.length === 1 ? `\n${r[0]}` : `  ${r[0].padEnd(w0)}  ${String(r[1]).padStart(w1)}  ${r[2] || ''}`))
    .join('\n');
}

const fmt = (n) => Number(n).toLocaleString('en-US');

function report(f) {
  const rows = [];
  const thr = (label, r) => [label, fmt(r.eventsPerSec), `events/s (${fmt(r.ms)} ms)`];
  rows.push(['1. local emit -> JS subscriber (libdsipc app, dsipc-load emit)']);
  rows.push(thr(`while OPEN, ${fmt(f.emitOpen.events)} emits`, f.emitOpen));
  rows.push(thr(`queue flush after resume, ${fmt(f.queueFlush.events)} queued`, f.queueFlush));
  rows.push(['2. JS emit -> local subscribers (dsipc-load subscribe)']);
  for (const r of f.fanout) {
    const what = `events/s in, ${fmt(r.deliveredPerSec)} delivered/s, ${fmt(r.delivered)} total (${fmt(r.ms)} ms)`;
    rows.push([`${r.subscribers} subscriber(s), ${fmt(r.events)} events`, fmt(r.eventsPerSec), what]);
  }
  rows.push([`3. round trip local -> JS -> local (${fmt(f.rtt.samples)} samples, ${f.rtt.lost} lost)`]);
  for (const p of ['p50', 'p90', 'p99']) rows.push([p, fmt(f.rtt[`${p}Us`]), 'us']);
  rows.push(['min / max', `${fmt(f.rtt.minUs)} / ${fmt(f.rtt.maxUs)}`, 'us']);
  rows.push(['4. dsd memory (VmRSS; VmHWM in brackets)']);
  const m = (x) => `${fmt(x.rssKiB)} [${fmt(x.hwmKiB)}]`;
  const q = f.memory.queue;
  rows.push(['idle, OPEN', m(f.memory.idle), 'KiB']);
  rows.push([`${fmt(f.memory.clients)} local clients connected`, m(f.memory.withClients),
    `KiB (${f.memory.perClientKiB} KiB per client)`]);
  rows.push(['idle, before queueing', m(q.before), 'KiB']);
  rows.push([`${fmt(q.messages)} emits queued (paused)`, m(q.queued),
    `KiB (${q.perMessageBytes} B per message; queue says ${fmt(q.queueBytes)} B)`]);
  rows.push([`5. dsd CPU time (utime+stime, ${CLK_TCK} ticks/s)`]);
  rows.push(['local emits while OPEN', f.emitOpen.cpuMsPer10k, 'ms per 10,000 events']);
  rows.push(['queue flush', f.queueFlush.cpuMsPer10k, 'ms per 10,000 events']);
  for (const r of f.fanout) {
    rows.push([`fan-out to ${r.subscribers}`, r.cpuMsPer10kEvents,
      `ms per 10,000 events in (${r.cpuMsPer10kDelivered} per 10,000 delivered)`]);
  }
  return table(rows);
}

async function main() {
  const started = performance.now();
  const budget = setTimeout(() => {
    console.error(`bench: over the ${TOTAL_BUDGET_MS} ms budget, giving up`);
    process.exit(1);
  }, TOTAL_BUDGET_MS);
  binaries(); // dsd and dsctl exist, or a clear error
  for (const b of [LOAD, RTT]) {
    if (!fs.existsSync(b)) throw new Error(`${b} not found: build it (ninja -C ${buildDir()}) or set DSD_BUILD_DIR`);
  }
  const cleanups = [];
  const f = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0] ? os.cpus()[0].model : '', node: process.version },
    sizes: SIZES,
  };
  try {
    const s = await startServer({ auth: 'open', logLevel: 'WARN' });
    cleanups.push(() => s.stop());
    const sub = await js.connect(s.url, { auth: { username: 'bench-sub' } });
    const pub = await js.connect(s.url, { auth: { username: 'bench-pub' } });
    cleanups.push(async () => sub.close(), async () => pub.close());

    const mem = await caseClientsMemory(s);
    const q = await caseQueue(s, sub);

    const d = await startDsd({ url: s.url, ...DSD_OPTS });
    cleanups.push(() => d.stop());
    await d.waitState('OPEN');
    const ctx = { d, sub, pub };
    f.emitOpen = await caseEmitOpen(ctx);
    f.queueFlush = q.flush;
    f.fanout = [];
    for (const k of SIZES.fanoutClients) f.fanout.push(await caseFanout(ctx, k));
    f.rtt = await caseRtt(ctx);
    f.memory = { idle: mem.idle, clients: mem.clients, withClients: mem.withClients, perClientKiB: mem.perClientKiB,
      queue: q.memory };
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch((e) => console.error(`cleanup: ${e.message}`));
    clearTimeout(budget);
  }
  f.elapsedMs = Math.round(performance.now() - started);
  console.log(`dsd benchmark, ${f.date}, ${f.machine.cpus} CPU(s) ${f.machine.cpu}, node ${f.machine.node}`);
  console.log(report(f));
  console.log(`\n(whole run ${fmt(f.elapsedMs)} ms)`);
  console.log(JSON.stringify(f));
}

main().catch((e) => {
  console.error(`bench: ${e.stack || e.message}`);
  process.exit(1);
});
