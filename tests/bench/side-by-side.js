'use strict';
/*
 * dsd side by side with what an app does without it: each app using the
 * official JS client (@deepstream/client 7.0.5) directly.  Every scenario
 * runs both ways, interleaved (dsd, JS, dsd, JS, ...), each run on a fresh
 * deepstream server, BENCH_REPS times (3); it prints the median of each
 * side, the ratio dsd/JS of the medians and the spread (min..max), and
 * writes every figure of every run, with the core count, versions and git
 * revision, to a JSON file (BENCH_JSON, default side-by-side.json in the
 * build dir).
 *
 * Scenarios (sizes in SIZES below):
 *   publish 64 B and 1 KiB: events/s until a JS subscriber has them all;
 *     CPU per 10k events of dsd (the app is dsipc-load) vs of the JS
 *     publisher process;
 *   round trip local -> platform -> local, one at a time: p50/p99/max and
 *     CPU per round trip (dsd vs the JS app process);
 *   idle, connected: RSS and PSS of dsd vs of a JS app process;
 *   100 subscribers: 100 local apps via one dsd vs 100 JS connections:
 *     server CPU and RSS, client-side RSS, deliveries/s;
 *   dsd alone: fan-out to 1, 100, 1,000 local subscribers spread over
 *     several reader processes; flush of 100,000 queued emits; memory with
 *     1,000,000 queued 100-byte emits (RSS growth per message, less the
 *     frame's own bytes).
 *   The ingest ceiling (dsd against a trivial WebSocket sink, no server in
 *   the way) has no JS counterpart: tests/bench/count-emit.sh measures it.
 *
 * It judges no speed: it fails only when a figure would be meaningless
 * (events lost or out of order, a process that did not start or crashed).
 * BENCH_QUICK=1 runs small sizes once each (under 2 minutes): what CI may
 * run.  dsd never runs with -v here.
 *
 *   meson test -C build --benchmark -v side-by-side        # full
 *   BENCH_QUICK=1 DSD_BUILD_DIR=build node tests/bench/side-by-side.js
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd, buildDir, binaries } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { sleep, waitUntil, withTimeout } = require(path.join(lib, 'util'));
const { memory, pssKiB, cpuMs, runTool } = require(path.join(__dirname, 'bench-lib'));

function envInt(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: want a positive integer`);
  return n;
}

const QUICK = process.env.BENCH_QUICK === '1';
const REPS = envInt('BENCH_REPS', QUICK ? 1 : 3);
const SIZES = QUICK
  ? { pub64: 5000, pub1k: 2000, rtt: 200, sub100: 200, fanout: { 1: 2000, 100: 100, 1000: 20 }, flush: 10000,
    queued: 100000 }
  : { pub64: 50000, pub1k: 20000, rtt: 1000, sub100: 2000, fanout: { 1: 20000, 100: 2000, 1000: 300 },
    flush: 100000, queued: 1000000 };
const RTT_WARMUP = 50;
const TOTAL_BUDGET_MS = envInt('BENCH_BUDGET_MS', QUICK ? 115000 : 1500000);

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');
const RTT = path.join(buildDir(), 'tests', 'bench', 'dsipc-rtt');
const JSPEER = path.join(__dirname, 'js-peer.js');

// Limits raised so that the figures are about speed, not the defaults.
const DSD_OPTS = {
  verbose: false,
  queue: { maxMessages: 2 * Math.max(SIZES.queued, SIZES.flush), maxBytes: 1024 * 1024 * 1024 },
  ipc: { clientBuffer: 64 * 1024 * 1024, clientBufferTotal: 1024 * 1024 * 1024 },
};

// The data of event i padded to about `bytes` as JSON: {"i":k,"pad":"x..."}
// (dsipc-load emit and js-peer.js emit write the same text).
const padFor = (bytes, n) => Math.max(0, bytes - 20 - String(n - 1).length);

/* -- helpers -- */

const perSec = (n, ms) => Math.round((n * 1000) / ms);
const per10k = (cpu, n) => Math.round(((cpu * 10000) / n) * 10) / 10;
const load = (d, ...args) => runTool(LOAD, ['-s', d.socket, ...args], 600000);
const peer = (...args) => runTool(process.execPath, [JSPEER, ...args], 600000, { stdin: true });

async function withServer(fn) {
  const s = await startServer({ auth: 'open', logLevel: 'WARN' });
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

async function withDsd(s, fn) {
  const d = await startDsd({ url: s.url, ...DSD_OPTS });
  try {
    await d.waitState('OPEN');
    return await fn(d);
  } finally {
    await d.stop(10000);
  }
}

// Counts {i: k} events on name at a JS client, checking their order.
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

async function jsEmitMany(c, name, n) {
  for (let i = 0; i < n; i++) {
    c.emit(name, { i });
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
}

async function untilAcked(d) {
  return waitUntil(
    async () => {
      const st = await d.status();
      return st.subscriptions.names > 0 && st.subscriptions.acked === st.subscriptions.names;
    },
    { timeoutMs: 30000, intervalMs: 20, what: 'dsd subscriptions acked upstream' });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/* -- publish -- */

async function publishDsd(n, bytes) {
  return withServer(async (s) => {
    const sub = await js.connect(s.url, { auth: { username: 'bench-sub' } });
    try {
      return await withDsd(s, async (d) => {
        const st = await jsCounter(sub, 'bench/pub');
        const cpu0 = cpuMs(d.pid);
        const t0 = performance.now();
        const l = load(d, 'emit', 'bench/pub', String(n), String(padFor(bytes, n)));
        await st.waitFor(n, 300000);
        const ms = st.lastAt - t0;
        const cpu = cpuMs(d.pid) - cpu0;
        const e = await l.result();
        if (!st.inOrder || e.sent + e.queued !== n) throw new Error(`publish: in order ${st.inOrder}, ${JSON.stringify(e)}`);
        return { eventsPerSec: perSec(n, ms), cpuMsPer10k: per10k(cpu, n) };
      });
    } finally {
      sub.close();
    }
  });
}

async function publishJs(n, bytes) {
  return withServer(async (s) => {
    const sub = await js.connect(s.url, { auth: { username: 'bench-sub' } });
    const p = peer('emit', s.url, 'bench/pub', String(n), String(padFor(bytes, n)));
    try {
      const st = await jsCounter(sub, 'bench/pub');
      await p.ready();
      const cpu0 = cpuMs(p.pid);
      const t0 = performance.now();
      p.go();
      await st.waitFor(n, 300000);
      const ms = st.lastAt - t0;
      const cpu = cpuMs(p.pid) - cpu0;
      if (!st.inOrder) throw new Error('publish (JS): events out of order');
      return { eventsPerSec: perSec(n, ms), cpuMsPer10k: per10k(cpu, n) };
    } finally {
      await p.stop();
      sub.close();
    }
  });
}

/* -- round trip -- */

// The platform side of a round trip: echoes OUT to BACK.
async function echoer(s) {
  const c = await js.connect(s.url, { auth: { username: 'bench-echo' } });
  c.client.event.subscribe('bench/rtt/out', (data) => c.emit('bench/rtt/back', data));
  await c.sync();
  return c;
}

function rttFigures(us, cpu, n) {
  const s = [...us].sort((a, b) => a - b);
  return {
    p50Us: Math.round(percentile(s, 50)),
    p99Us: Math.round(percentile(s, 99)),
    maxUs: Math.round(s[s.length - 1]),
    cpuUsPerRtt: Math.round((cpu * 1000) / n),
  };
}

async function rttDsd(n) {
  return withServer(async (s) => {
    const echo = await echoer(s);
    try {
      return await withDsd(s, async (d) => {
        const cpu0 = cpuMs(d.pid);
        const r = await runTool(RTT, ['-s', d.socket, 'bench/rtt/out', 'bench/rtt/back', String(n),
          String(RTT_WARMUP), '2000'], 300000).result();
        const cpu = cpuMs(d.pid) - cpu0;
        if (r.samples !== n) throw new Error(`round trip: ${JSON.stringify(r)}`);
        return { p50Us: r.p50Us, p99Us: r.p99Us, maxUs: r.maxUs, cpuUsPerRtt: Math.round((cpu * 1000) / (n + RTT_WARMUP)) };
      });
    } finally {
      echo.close();
    }
  });
}

async function rttJs(n) {
  return withServer(async (s) => {
    const echo = await echoer(s);
    const p = peer('rtt', s.url, 'bench/rtt/out', 'bench/rtt/back', String(n), String(RTT_WARMUP));
    try {
      await p.ready();
      const cpu0 = cpuMs(p.pid);
      const r = await p.json(300000);
      const cpu = cpuMs(p.pid) - cpu0;
      if (r.samples !== n) throw new Error(`round trip (JS): ${r.samples} samples`);
      return rttFigures(r.us, cpu, n + RTT_WARMUP);
    } finally {
      await p.stop();
      echo.close();
    }
  });
}

/* -- idle memory -- */

async function idleDsd() {
  return withServer((s) =>
    withDsd(s, async (d) => {
      await sleep(500);
      return { rssKiB: memory(d.pid).rssKiB, pssKiB: pssKiB(d.pid) };
    }));
}

async function idleJs() {
  return withServer(async (s) => {
    const p = peer('idle', s.url);
    try {
      await p.ready();
      await sleep(500);
      return { rssKiB: memory(p.pid).rssKiB, pssKiB: pssKiB(p.pid) };
    } finally {
      await p.stop();
    }
  });
}

/* -- 100 subscribers -- */

async function manyDsd(n) {
  return withServer(async (s) => {
    const pub = await js.connect(s.url, { auth: { username: 'bench-pub' } });
    try {
      return await withDsd(s, async (d) => {
        const l = load(d, 'subscribe', 'bench/many', '100', String(n), '300000');
        await l.ready();
        await untilAcked(d);
        const appRss = memory(l.pid).rssKiB;
        const srv0 = cpuMs(s.pid);
        const t0 = performance.now();
        await jsEmitMany(pub, 'bench/many', n);
        const r = await l.result();
        const ms = r.exitAt - t0;
        if (r.min !== n || !r.inOrder) throw new Error(`100 subscribers: ${JSON.stringify(r)}`);
        return {
          serverCpuMs: cpuMs(s.pid) - srv0,
          serverRssKiB: memory(s.pid).rssKiB,
          clientRssKiB: memory(d.pid).rssKiB + appRss,
          deliveredPerSec: perSec(r.total, ms),
        };
      });
    } finally {
      pub.close();
    }
  });
}

async function manyJs(n) {
  return withServer(async (s) => {
    const pub = await js.connect(s.url, { auth: { username: 'bench-pub' } });
    const p = peer('subscribe', s.url, 'bench/many', '100', String(n));
    try {
      await p.ready(120000);
      const srv0 = cpuMs(s.pid);
      const t0 = performance.now();
      await jsEmitMany(pub, 'bench/many', n);
      const r = await p.json(300000);
      const ms = performance.now() - t0;
      if (r.min !== n || !r.inOrder) throw new Error(`100 subscribers (JS): ${JSON.stringify(r)}`);
      return {
        serverCpuMs: cpuMs(s.pid) - srv0,
        serverRssKiB: memory(s.pid).rssKiB,
        clientRssKiB: memory(p.pid).rssKiB,
        deliveredPerSec: perSec(r.total, ms),
      };
    } finally {
      await p.stop();
      pub.close();
    }
  });
}

/* -- dsd alone -- */

// k local subscribers over several reader processes, so that the readers
// are not what is measured.
async function fanout(k) {
  const n = SIZES.fanout[k];
  const procs = k === 1 ? 1 : Math.min(8, Math.max(2, Math.round(k / 125)));
  return withServer(async (s) => {
    const pub = await js.connect(s.url, { auth: { username: 'bench-pub' } });
    try {
      return await withDsd(s, async (d) => {
        const name = `bench/fan/${k}`;
        const readers = [];
        for (let i = 0; i < procs; i++) {
          const share = Math.floor(k / procs) + (i < k % procs ? 1 : 0);
          readers.push(load(d, 'subscribe', name, String(share), String(n), '300000'));
        }
        for (const r of readers) await r.ready(120000);
        await untilAcked(d);
        const cpu0 = cpuMs(d.pid);
        const t0 = performance.now();
        await jsEmitMany(pub, name, n);
        const rs = [];
        for (const r of readers) rs.push(await r.result());
        const ms = Math.max(...rs.map((r) => r.exitAt)) - t0;
        const cpu = cpuMs(d.pid) - cpu0;
        const total = rs.reduce((a, r) => a + r.total, 0);
        if (rs.some((r) => r.min !== n || !r.inOrder)) throw new Error(`fan-out to ${k}: ${JSON.stringify(rs)}`);
        return {
          events: n,
          readers: procs,
          eventsPerSec: perSec(n, ms),
          deliveredPerSec: perSec(total, ms),
          cpuMsPer10kDelivered: per10k(cpu, total),
        };
      });
    } finally {
      pub.close();
    }
  });
}

// Paused, N emits of about `bytes` queued; RSS growth; then, resumed, the
// time and CPU until a JS subscriber has them all.
async function queued(n, bytes, timeFlush) {
  return withServer(async (s) => {
    const sub = await js.connect(s.url, { auth: { username: 'bench-sub' } });
    try {
      return await withDsd(s, async (d) => {
        const st = await jsCounter(sub, 'bench/q');
        await sleep(300);
        const before = memory(d.pid).rssKiB;
        if ((await d.dsctl('pause')).code !== 0) throw new Error('dsctl pause failed');
        await d.waitState('OFFLINE');
        const e = await load(d, 'emit', 'bench/q', String(n), String(padFor(bytes, n))).result();
        if (e.queued !== n) throw new Error(`queueing ${n}: ${JSON.stringify(e)}`);
        await sleep(300);
        const after = memory(d.pid).rssKiB;
        const q = (await d.status()).queue;
        const perMsg = ((after - before) * 1024) / n;
        const out = {
          rssBeforeKiB: before,
          rssQueuedKiB: after,
          frameBytes: Math.round((q.bytes / q.messages) * 10) / 10,
          rssPerMessage: Math.round(perMsg * 10) / 10,
          overheadPerMessage: Math.round((perMsg - q.bytes / q.messages) * 10) / 10,
        };
        if (!timeFlush) return out;
        const cpu0 = cpuMs(d.pid);
        const t0 = performance.now();
        if ((await d.dsctl('resume')).code !== 0) throw new Error('dsctl resume failed');
        await st.waitFor(n, 300000);
        const ms = st.lastAt - t0;
        if (!st.inOrder) throw new Error('queue flush: events out of order');
        return { ...out, eventsPerSec: perSec(n, ms), cpuMsPer10k: per10k(cpuMs(d.pid) - cpu0, n) };
      });
    } finally {
      sub.close();
    }
  });
}

/* -- running and reporting -- */

const stats = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (s.length === 0) return null;
  return { median: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s[s.length - 1], runs: xs };
};

// Runs the pair interleaved REPS times; figures per key.
async function pair(name, dsdFn, jsFn) {
  const runs = { dsd: [], js: [] };
  for (let r = 0; r < REPS; r++) {
    runs.dsd.push(await dsdFn());
    if (jsFn) runs.js.push(await jsFn());
    process.stderr.write(`bench: ${name} rep ${r + 1}/${REPS} done\n`);
  }
  const keys = Object.keys(runs.dsd[0]);
  const fig = {};
  for (const k of keys) {
    fig[k] = { dsd: stats(runs.dsd.map((x) => x[k])) };
    if (jsFn) fig[k].js = stats(runs.js.map((x) => x[k]));
  }
  return fig;
}

const fmt = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));
const spread = (st) => (st ? `${fmt(st.median)} (${fmt(st.min)}..${fmt(st.max)})` : '-');
const ratio = (a, b) => (a && b && b.median ? (a.median / b.median).toFixed(2) : '-');

function report(f) {
  const rows = [['figure', 'dsd median (min..max)', 'JS direct median (min..max)', 'dsd/JS']];
  const row = (label, fig) => {
    if (fig) rows.push([label, spread(fig.dsd), spread(fig.js), ratio(fig.dsd, fig.js)]);
  };
  const none = {};
  const { publish64 = none, publish1k = none, rtt = none, idle = none, many = none, flush = none, queue = none } = f;
  row('publish 64 B, events/s', publish64.eventsPerSec);
  row('CPU per 10k 64-B events, ms (dsd vs JS publisher)', publish64.cpuMsPer10k);
  row('publish 1 KiB, events/s', publish1k.eventsPerSec);
  row('CPU per 10k 1-KiB events, ms', publish1k.cpuMsPer10k);
  row('round trip p50, us', rtt.p50Us);
  row('round trip p99, us', rtt.p99Us);
  row('round trip max, us', rtt.maxUs);
  row('CPU per round trip, us', rtt.cpuUsPerRtt);
  row('idle RSS, KiB', idle.rssKiB);
  row('idle PSS, KiB', idle.pssKiB);
  row('100 subscribers: server CPU, ms', many.serverCpuMs);
  row('100 subscribers: server RSS, KiB', many.serverRssKiB);
  row('100 subscribers: client-side RSS, KiB', many.clientRssKiB);
  row('100 subscribers: deliveries/s', many.deliveredPerSec);
  for (const k of Object.keys(f.fanout || {})) {
    const x = f.fanout[k];
    row(`fan-out to ${k} (${x.readers.dsd.median} readers): deliveries/s`, x.deliveredPerSec);
    row(`fan-out to ${k}: dsd CPU per 10k deliveries, ms`, x.cpuMsPer10kDelivered);
  }
  row(`flush of ${fmt(SIZES.flush)} queued: events/s`, flush.eventsPerSec);
  row(`flush of ${fmt(SIZES.flush)} queued: dsd CPU per 10k, ms`, flush.cpuMsPer10k);
  row(`${fmt(SIZES.queued)} queued 100-B emits: RSS per message, B`, queue.rssPerMessage);
  row('  of which overhead (RSS less frame bytes), B', queue.overheadPerMessage);
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ')} |`;
  const rule = `|${w.map((n, i) => (i === 0 ? '-'.repeat(n + 2) : `${'-'.repeat(n + 1)}:`)).join('|')}|`;
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join('\n');
}

function gitRevision() {
  try {
    const rev = execFileSync('git', ['-C', __dirname, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', __dirname, 'status', '--porcelain', '--untracked-files=no'],
      { encoding: 'utf8' }).trim();
    return dirty ? `${rev}+dirty` : rev;
  } catch {
    return 'unknown';
  }
}

function versions() {
  const v = { node: process.version };
  for (const p of ['@deepstream/client', '@deepstream/server']) {
    try {
      v[p] = require(path.join(__dirname, '..', 'peer', 'node_modules', p, 'package.json')).version;
    } catch {
      v[p] = 'unknown';
    }
  }
  try {
    v.dsd = execFileSync(binaries().dsd, ['-V'], { encoding: 'utf8' }).trim();
  } catch {
    v.dsd = 'unknown';
  }
  return v;
}

async function main() {
  const started = performance.now();
  const budget = setTimeout(() => {
    console.error(`bench: over the ${TOTAL_BUDGET_MS} ms budget, giving up`);
    process.exit(1);
  }, TOTAL_BUDGET_MS);
  binaries();
  for (const b of [LOAD, RTT]) {
    if (!fs.existsSync(b)) throw new Error(`${b} not found: build it (ninja -C ${buildDir()}) or set DSD_BUILD_DIR`);
  }
  const f = {
    date: new Date().toISOString(),
    quick: QUICK,
    reps: REPS,
    git: gitRevision(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0] ? os.cpus()[0].model : '', loadavg: os.loadavg() },
    versions: versions(),
    buildDir: buildDir(),
    sizes: SIZES,
  };
  // BENCH_ONLY=publish,rtt,idle,many,fanout,flush,queue picks scenarios.
  const only = (process.env.BENCH_ONLY || '').split(',').filter(Boolean);
  const want = (k) => only.length === 0 || only.includes(k);
  if (want('publish')) {
    f.publish64 = await pair('publish 64 B', () => publishDsd(SIZES.pub64, 64), () => publishJs(SIZES.pub64, 64));
    f.publish1k = await pair('publish 1 KiB', () => publishDsd(SIZES.pub1k, 1024), () => publishJs(SIZES.pub1k, 1024));
  }
  if (want('rtt')) f.rtt = await pair('round trip', () => rttDsd(SIZES.rtt), () => rttJs(SIZES.rtt));
  if (want('idle')) f.idle = await pair('idle', idleDsd, idleJs);
  if (want('many')) f.many = await pair('100 subscribers', () => manyDsd(SIZES.sub100), () => manyJs(SIZES.sub100));
  if (want('fanout')) {
    f.fanout = {};
    for (const k of [1, 100, 1000]) f.fanout[k] = await pair(`fan-out to ${k}`, () => fanout(k));
  }
  if (want('flush')) f.flush = await pair('flush', () => queued(SIZES.flush, 30, true));
  if (want('queue')) f.queue = await pair('queued memory', () => queued(SIZES.queued, 100, false));
  f.machine.loadavgAfter = os.loadavg();
  f.elapsedMs = Math.round(performance.now() - started);
  clearTimeout(budget);
  const out = process.env.BENCH_JSON || path.join(buildDir(), 'side-by-side.json');
  fs.writeFileSync(out, `${JSON.stringify(f, null, 1)}\n`);
  console.log(`dsd vs the JS client direct, ${f.date}, git ${f.git}, ${f.machine.cpus} CPU(s) ${f.machine.cpu}, ` +
    `${REPS} rep(s)${QUICK ? ' (quick)' : ''}, load ${f.machine.loadavg.map((x) => x.toFixed(1)).join(' ')}`);
  console.log(report(f));
  console.log(`\n(whole run ${fmt(f.elapsedMs)} ms; every figure in ${out})`);
}

main().then(() => process.exit(0), (e) => {
  console.error(`bench: ${e.stack || e.message}`);
  process.exit(1);
});
