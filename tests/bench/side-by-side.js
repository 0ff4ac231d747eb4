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
 *   dsd alone, no deepstream server in the way: its ingest ceiling, one app
 *     emitting 64 B and 1 KiB as fast as it can into ws-sink (events/s at
 *     the sink, dsd's CPU per emit);
 *   instruction counts (callgrind, full run only: they take minutes under
 *     valgrind and do not depend on the load): per 64-B and 1-KiB emit
 *     (count-emit.sh) and per event delivered to one local subscriber
 *     (count-deliver.js).
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
const { execFileSync, spawn } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd, buildDir, binaries } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { sleep, waitUntil, withTimeout } = require(path.join(lib, 'util'));
const { track } = require(path.join(lib, 'children'));
const { memory, pssKiB, cpuMs, cpuNs, cpuSplitMs, rssBreakdown, runTool } = require(path.join(__dirname, 'bench-lib'));

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
    queued: 100000, ingest: 20000 }
  : { pub64: 50000, pub1k: 20000, rtt: 1000, sub100: 2000, fanout: { 1: 20000, 100: 2000, 1000: 300 },
    flush: 100000, queued: 1000000, ingest: 200000 };
const RTT_WARMUP = 50;
// A counted round trip not back after this long is lost (a hang, not a
// slow machine: the p99 is in milliseconds).
const RTT_TIMEOUT_MS = 30000;
// A guard against a hang, not a timing: the quick run takes about a minute
// and the full one about ten, but the machine may be shared.
const TOTAL_BUDGET_MS = envInt('BENCH_BUDGET_MS', QUICK ? 600000 : 3600000);
// Waits for dsd's state: as generous, for the same reason.
const STATE_WAIT_MS = 60000;

const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');
const RTT = path.join(buildDir(), 'tests', 'bench', 'dsipc-rtt');
const JSPEER = path.join(__dirname, 'js-peer.js');
const SINK = path.join(buildDir(), 'tests', 'bench', 'ws-sink');
const HANDOFF = path.join(buildDir(), 'tests', 'bench', 'handoff-cost');
const FLOOR = path.join(buildDir(), 'tests', 'bench', 'idle-floor');
const FLOOR_NOSYSTEMD = path.join(buildDir(), 'tests', 'bench', 'idle-floor-nosystemd');
const COUNT_EMIT = path.join(__dirname, 'count-emit.sh');
const COUNT_DELIVER = path.join(__dirname, 'count-deliver.js');

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
    await d.waitState('OPEN', STATE_WAIT_MS);
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
    { timeoutMs: STATE_WAIT_MS, intervalMs: 20, what: 'dsd subscriptions acked upstream' });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/* -- publish -- */

// A process's CPU now: the scheduler's exact count and the user and system
// ticks.
const cpuSample = (pid) => ({ ns: cpuNs(pid), ...cpuSplitMs(pid) });

// CPU since c0 per 10k events: the total from the scheduler's count (exact),
// user and system time from the kernel's ticks (10 ms each: the two need a
// run of some hundreds of ms to mean much).
function cpuSince(pid, c0, n) {
  const c1 = cpuSample(pid);
  return {
    cpuMsPer10k: per10k((c1.ns - c0.ns) / 1e6, n),
    userMsPer10k: per10k(c1.userMs - c0.userMs, n),
    sysMsPer10k: per10k(c1.sysMs - c0.sysMs, n),
  };
}

async function publishDsd(n, bytes) {
  return withServer(async (s) => {
    const sub = await js.connect(s.url, { auth: { username: 'bench-sub' } });
    try {
      return await withDsd(s, async (d) => {
        const st = await jsCounter(sub, 'bench/pub');
        const c0 = cpuSample(d.pid);
        const t0 = performance.now();
        const l = load(d, 'emit', 'bench/pub', String(n), String(padFor(bytes, n)));
        await st.waitFor(n, 300000);
        const ms = st.lastAt - t0;
        const cpu = cpuSince(d.pid, c0, n);
        const e = await l.result();
        if (!st.inOrder || e.sent + e.queued !== n) throw new Error(`publish: in order ${st.inOrder}, ${JSON.stringify(e)}`);
        return { eventsPerSec: perSec(n, ms), ...cpu };
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
      const c0 = cpuSample(p.pid);
      const t0 = performance.now();
      p.go();
      await st.waitFor(n, 300000);
      const ms = st.lastAt - t0;
      const cpu = cpuSince(p.pid, c0, n);
      if (!st.inOrder) throw new Error('publish (JS): events out of order');
      return { eventsPerSec: perSec(n, ms), ...cpu };
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

// CPU per round trip from the scheduler's count (cpuNs), in µs.
function rttFigures(us, cpuNsUsed, n) {
  const s = [...us].sort((a, b) => a - b);
  return {
    p50Us: Math.round(percentile(s, 50)),
    p99Us: Math.round(percentile(s, 99)),
    maxUs: Math.round(s[s.length - 1]),
    cpuUsPerRtt: Math.round(cpuNsUsed / n / 100) / 10,
  };
}

// handoff-cost (this folder): the CPU an isolated round trip's system calls
// cost on this machine with no dsd code, single-threaded and with dsd's
// three thread hand-offs; run right after dsd's round trips, in the same
// conditions.
async function rttFloors() {
  const r = await runTool(HANDOFF, [String(QUICK ? 300 : 2000)], 600000).result();
  return {
    floorSingleUs: r.singleUsPerRtt,
    floorThreadedUs: r.threadedUsPerRtt,
    floorNoFenceUs: r.noFenceUsPerRtt,
    handoffUs: r.handoffUs,
  };
}

async function rttDsd(n) {
  const own = await withServer(async (s) => {
    const echo = await echoer(s);
    try {
      return await withDsd(s, async (d) => {
        const cpu0 = cpuNs(d.pid);
        const r = await runTool(RTT, ['-s', d.socket, 'bench/rtt/out', 'bench/rtt/back', String(n),
          String(RTT_WARMUP), String(RTT_TIMEOUT_MS)], 600000).result();
        const cpu = cpuNs(d.pid) - cpu0;
        if (r.samples !== n || r.lost !== 0) throw new Error(`round trip: ${JSON.stringify(r)}`);
        return { p50Us: r.p50Us, p99Us: r.p99Us, maxUs: r.maxUs,
          cpuUsPerRtt: Math.round(cpu / (n + RTT_WARMUP) / 100) / 10 };
      });
    } finally {
      echo.close();
    }
  });
  return { ...own, ...(await rttFloors()) };
}

async function rttJs(n) {
  return withServer(async (s) => {
    const echo = await echoer(s);
    const p = peer('rtt', s.url, 'bench/rtt/out', 'bench/rtt/back', String(n), String(RTT_WARMUP));
    try {
      await p.ready();
      const cpu0 = cpuNs(p.pid);
      const r = await p.json(300000);
      const cpu = cpuNs(p.pid) - cpu0;
      if (r.samples !== n) throw new Error(`round trip (JS): ${r.samples} samples`);
      return rttFigures(r.us, cpu, n + RTT_WARMUP);
    } finally {
      await p.stop();
      echo.close();
    }
  });
}

/* -- system calls per round trip (strace, full run only) -- */

// strace -f -c attached to dsd (all its threads) around one dsipc-rtt run:
// calls per system call name.  strace detaches and writes its table on
// SIGINT.
async function straceCounts(pid, fn) {
  const out = path.join(os.tmpdir(), `dsd-strace-${process.pid}-${Date.now()}.txt`);
  const st = track(spawn('strace', ['-f', '-c', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  st.stderr.on('data', (b) => (err += b));
  const done = new Promise((resolve) => st.once('close', resolve));
  await waitUntil(() => /attached/.test(err), { timeoutMs: 10000, intervalMs: 10, what: 'strace to attach',
    detail: () => err });
  await sleep(200);
  try {
    await fn();
  } finally {
    st.kill('SIGINT');
    await done;
  }
  const calls = {};
  for (const line of fs.readFileSync(out, 'utf8').split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m && m[2] !== 'total') calls[m[2]] = Number(m[1]);
  }
  fs.unlinkSync(out);
  return calls;
}

// System calls dsd makes per isolated round trip: two dsipc-rtt runs of
// different lengths on one dsd, each under strace; the difference divided
// by the difference in round trips, so that connecting and subscribing
// cancel out.  Per system call name, and in all.
async function rttSyscalls() {
  const [short, long] = [100, 300];
  return withServer(async (s) => {
    const echo = await echoer(s);
    try {
      return await withDsd(s, async (d) => {
        const once = (n) => straceCounts(d.pid, async () => {
          const r = await runTool(RTT, ['-s', d.socket, 'bench/rtt/out', 'bench/rtt/back', String(n), '20',
            String(RTT_TIMEOUT_MS)], 600000).result();
          if (r.samples !== n || r.lost !== 0) throw new Error(`round trip: ${JSON.stringify(r)}`);
        });
        const a = await once(short);
        const b = await once(long);
        const per = {};
        let total = 0;
        for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
          const v = Math.round((((b[k] || 0) - (a[k] || 0)) / (long - short)) * 100) / 100;
          if (v > 0.005) per[k] = v;
          total += (b[k] || 0) - (a[k] || 0);
        }
        return { syscallsPerRtt: Math.round((total / (long - short)) * 10) / 10, bySyscall: per };
      });
    } finally {
      echo.close();
    }
  });
}

/* -- idle memory -- */

// RSS and PSS, and where the resident pages are: pages of the program's
// and its libraries' files, anonymous memory outside the heap (the
// libraries' relocated data, thread stacks, a thread's malloc arena), the
// malloc heap.
function idleMemory(pid) {
  const b = rssBreakdown(pid) || {};
  return { rssKiB: memory(pid).rssKiB, pssKiB: pssKiB(pid), fileKiB: b.fileKiB, anonKiB: b.anonKiB,
    heapKiB: b.heapKiB };
}

// idle-floor (this folder): dsd's shared libraries, a libevent base, an lws
// context and its service thread, nothing else; idle-floor-nosystemd the
// same without libsystemd.  What dsd's RSS cannot go below with these
// libraries and this thread structure.
async function idleFloor(bin) {
  const p = runTool(bin, [], 60000);
  try {
    await p.ready();
    await sleep(500);
    const m = idleMemory(p.pid);
    return { rssKiB: m.rssKiB, pssKiB: m.pssKiB };
  } finally {
    await p.stop();
  }
}

async function idleDsd() {
  const own = await withServer((s) =>
    withDsd(s, async (d) => {
      await sleep(500);
      return idleMemory(d.pid);
    }));
  const floor = await idleFloor(FLOOR);
  const noSd = await idleFloor(FLOOR_NOSYSTEMD);
  return { ...own, floorRssKiB: floor.rssKiB, floorPssKiB: floor.pssKiB, floorNoSystemdRssKiB: noSd.rssKiB,
    aboveFloorKiB: own.rssKiB - floor.rssKiB };
}

async function idleJs() {
  return withServer(async (s) => {
    const p = peer('idle', s.url);
    try {
      await p.ready();
      await sleep(500);
      return idleMemory(p.pid);
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
        await d.waitState('OFFLINE', STATE_WAIT_MS);
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

/* -- dsd alone: its ingest ceiling, no deepstream server in the way -- */

// ws-sink (this folder) plays just enough of the platform for dsd to reach
// OPEN and counts the EVENT messages it is sent: a JSON line every `block`
// of them, with the time from the block's first event to its last.
async function withSink(block, fn) {
  const sink = runTool(SINK, ['-n', String(block)], 600000);
  try {
    const port = await waitUntil(() => {
      const m = /^\{"port":(\d+)\}$/.exec(sink.lines[0] || '');
      return m && Number(m[1]);
    }, { timeoutMs: 10000, intervalMs: 10, what: 'ws-sink to listen' });
    const blocks = () => sink.lines.filter((l) => l.includes('"block_us"')).map((l) => JSON.parse(l));
    return await fn(port, blocks);
  } finally {
    await sink.stop();
  }
}

// One app (dsipc-load) emits n events of about `bytes` as fast as it can,
// twice: a warm-up block, then the measured one.  Events/s at the sink
// (first to last event of the block) and dsd's CPU per emit, until the
// store has them all confirmed.  The sink counts but does not read the
// data, so order is checked by the other scenarios, not here; the count
// is checked here: exactly n per block, nothing lost, nothing extra.
async function ingest(n, bytes) {
  return withSink(n, async (port, blocks) => {
    const d = await startDsd({ url: `ws://127.0.0.1:${port}/deepstream`, ...DSD_OPTS });
    try {
      await d.waitState('OPEN', STATE_WAIT_MS);
      const block = async (k) => {
        const e = await load(d, 'emit', 'bench/ingest', String(n), String(padFor(bytes, n))).result();
        if (e.sent + e.queued !== n) throw new Error(`ingest: ${JSON.stringify(e)}`);
        const b = await waitUntil(() => blocks()[k - 1], {
          timeoutMs: 300000, intervalMs: 5, what: `block ${k} (${n} events) at ws-sink`,
          detail: () => `sink printed: ${blocks().map((x) => JSON.stringify(x)).join(' ')}` });
        await waitUntil(async () => {
          const q = (await d.status()).queue;
          return q.messages === 0 && q.unconfirmed === 0;
        }, { timeoutMs: 60000, intervalMs: 10, what: 'the emits confirmed (store empty)' });
        if (b.events !== k * n) throw new Error(`ingest: the sink has ${b.events} events after block ${k} of ${n}`);
        return b;
      };
      await block(1);
      const c0 = cpuSample(d.pid);
      const b = await block(2);
      const c1 = cpuSample(d.pid);
      await sleep(200);
      const last = blocks();
      if (last.length !== 2 || (await d.status()).queue.messages !== 0) {
        throw new Error(`ingest: the sink reported ${last.length} blocks of ${n}, want 2`);
      }
      return {
        eventsPerSec: Math.round((n * 1e6) / Math.max(1, b.block_us)),
        cpuUsPerEmit: Math.round((c1.ns - c0.ns) / n) / 1000,
        userUsPerEmit: Math.round(((c1.userMs - c0.userMs) * 1e6) / n) / 1000,
        sysUsPerEmit: Math.round(((c1.sysMs - c0.sysMs) * 1e6) / n) / 1000,
      };
    } finally {
      await d.stop(10000);
    }
  });
}

/* -- instruction counts (callgrind): not timings, the load does not move them -- */

// A script run to completion: its stdout, or an error with its stderr.
function runScript(bin, args, env, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else {
        const name = path.basename(args[0] || bin);
        reject(new Error(`${name} exited ${code}/${signal}: ${out.slice(-1000)} ${err.slice(-2000)}`));
      }
    });
  });
}

// count-emit.sh (per 64-B and 1-KiB emit, dsd against ws-sink) and
// count-deliver.js (per event delivered to one local subscriber, against
// the real server), each with its default sizes.
async function instructionCounts() {
  const emitOut = await runScript('bash', [COUNT_EMIT, buildDir()], { SKIP_RATE: '1', SKIP_LOW: '1' }, 1200000);
  const perEmit = (size) => {
    const m = new RegExp(`instructions per\\s+${size}-B emit:\\s+(\\d+)\\s+\\((\\d+) emits`).exec(emitOut);
    if (!m) throw new Error(`count-emit.sh printed no ${size}-B count: ${emitOut}`);
    return { perEmit: Number(m[1]), emits: Number(m[2]) };
  };
  const deliverOut = await runScript(process.execPath, [COUNT_DELIVER], { DSD_BUILD_DIR: buildDir() }, 1200000);
  const line = deliverOut.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`count-deliver.js printed no JSON: ${deliverOut}`);
  const del = JSON.parse(line);
  return {
    emit64: perEmit(64),
    emit1k: perEmit(1024),
    deliver1: { perDelivery: del.perDelivery, events: del.events },
  };
}

/* -- the floor of dsd's CPU per emit against the JS publisher -- */

// From figures of this run: dsd's instructions per emit (callgrind,
// against ws-sink) turned into time at the rate dsd itself runs on this
// machine (those instructions over the user time per emit of the ingest
// row, the same work natively), plus the kernel time per emit; against
// the JS publisher's CPU per emit.  kernelUs is dsd's system time per
// emit in the publish row (at the server's pace, small batches);
// kernelBatchedUs that of the ingest row (large batches).  The ingest
// row's user and system times are means over its runs.  Needs the
// publish, ingest and instructions rows.
function publishFloor(f) {
  const med = (x, side = 'dsd') => (x && x[side] ? x[side].median : null);
  const out = {};
  for (const [size, pub, ic] of [['64', 'publish64', 'emit64'], ['1024', 'publish1k', 'emit1k']]) {
    const p = f[pub];
    const ing = f.ingest && f.ingest[size];
    const instr = f.instructions && f.instructions[ic] ? f.instructions[ic].perEmit : null;
    // The user/system split is sampled by clock ticks: the mean over all
    // runs (the same number of emits each) pools their ticks.
    const mean = (x) => {
      const v = x && x.dsd ? x.dsd.runs.filter((y) => typeof y === 'number') : [];
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    const userUs = ing ? mean(ing.userUsPerEmit) : null;
    const jsUs = p ? med(p.cpuMsPer10k, 'js') / 10 : null;
    const kernelUs = p ? med(p.sysMsPer10k) / 10 : null;
    if (!instr || !userUs || !jsUs || kernelUs === null) continue;
    const perUs = instr / userUs;
    const userFloorUs = instr / perUs;
    const kernelBatchedUs = mean(ing.sysUsPerEmit);
    const r = (x) => Math.round(x * 1000) / 1000;
    out[size] = {
      instructionsPerEmit: instr,
      instructionsPerUs: Math.round(perUs),
      userFloorUs: r(userFloorUs),
      kernelUs: r(kernelUs),
      kernelBatchedUs: r(kernelBatchedUs),
      jsUsPerEmit: r(jsUs),
      floorRatio: r((userFloorUs + kernelUs) / jsUs),
      floorRatioBatched: r((userFloorUs + kernelBatchedUs) / jsUs),
      userOnlyRatio: r(userFloorUs / jsUs),
    };
  }
  return Object.keys(out).length ? out : { skipped: 'needs the publish, ingest and instructions rows' };
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
  row('  of which user time (ticks), ms', publish64.userMsPer10k);
  row('  of which system time (ticks), ms', publish64.sysMsPer10k);
  row('publish 1 KiB, events/s', publish1k.eventsPerSec);
  row('CPU per 10k 1-KiB events, ms', publish1k.cpuMsPer10k);
  row('  of which user time (ticks), ms', publish1k.userMsPer10k);
  row('  of which system time (ticks), ms', publish1k.sysMsPer10k);
  row('round trip p50, us', rtt.p50Us);
  row('round trip p99, us', rtt.p99Us);
  row('round trip max, us', rtt.maxUs);
  row('CPU per round trip, us (scheduler count, all threads)', rtt.cpuUsPerRtt);
  row('  floor, no dsd code: its system calls, one thread (handoff-cost), us', rtt.floorSingleUs);
  row('  floor for wss:// and proxies (lws\'s thread): the same with 3 thread hand-offs, us', rtt.floorThreadedUs);
  row('  reference: one thread, no PING fence (2 wakeups, 7 calls), us', rtt.floorNoFenceUs);
  row('  one bare hand-off between two threads (eventfd), us', rtt.handoffUs);
  row('idle RSS, KiB', idle.rssKiB);
  row('idle PSS, KiB', idle.pssKiB);
  row('  idle RSS in file pages (program, libraries), KiB', idle.fileKiB);
  row('  idle RSS anonymous, not heap (relocated library data, stacks, arenas), KiB', idle.anonKiB);
  row('  idle RSS in the malloc heap, KiB', idle.heapKiB);
  row('idle RSS floor: same libraries, no work (idle-floor), KiB', idle.floorRssKiB);
  row('idle PSS floor: same libraries, no work, KiB', idle.floorPssKiB);
  row('idle RSS floor without libsystemd (idle-floor-nosystemd), KiB', idle.floorNoSystemdRssKiB);
  row('dsd idle RSS above the floor, KiB', idle.aboveFloorKiB);
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
  const sc = f.syscalls;
  if (sc && sc.skipped) rows.push([`system calls per round trip (strace): skipped (${sc.skipped})`, '-', '-', '-']);
  else if (sc) {
    const by = Object.entries(sc.bySyscall).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    rows.push(['system calls per round trip, dsd, all threads (strace)', fmt(sc.syscallsPerRtt), '-', '-']);
    rows.push([`  ${by}`, '', '', '']);
  }
  const ing = f.ingest || {};
  for (const [k, label] of [['64', '64 B'], ['1024', '1 KiB']]) {
    if (!ing[k]) continue;
    row(`ingest ceiling to ws-sink (no server), ${label}: events/s`, ing[k].eventsPerSec);
    row(`ingest ${label}: dsd CPU per emit, us`, ing[k].cpuUsPerEmit);
    row('  user time per emit (ticks), us', ing[k].userUsPerEmit);
    row('  system time per emit (ticks), us', ing[k].sysUsPerEmit);
  }
  const ic = f.instructions;
  if (ic && ic.skipped) rows.push([`instructions per emit / delivery (callgrind): skipped (${ic.skipped})`, '-', '-', '-']);
  else if (ic) {
    rows.push(['instructions per 64-B emit (callgrind, dsd)', fmt(ic.emit64.perEmit), '-', '-']);
    rows.push(['instructions per 1-KiB emit (callgrind, dsd)', fmt(ic.emit1k.perEmit), '-', '-']);
    rows.push(['instructions per event delivered to 1 subscriber', fmt(ic.deliver1.perDelivery), '-', '-']);
  }
  const pf = f.publishFloor;
  if (pf && pf.skipped) rows.push([`floor of CPU per emit vs the JS publisher: skipped (${pf.skipped})`, '-', '-', '-']);
  else if (pf) {
    for (const [k, label] of [['64', '64 B'], ['1024', '1 KiB']]) {
      const x = pf[k];
      if (!x) continue;
      rows.push([`floor, ${label} emit: ${fmt(x.instructionsPerEmit)} instructions at dsd's ${fmt(x.instructionsPerUs)}/us, us`,
        String(x.userFloorUs), '-', '-']);
      rows.push([`  + kernel time per emit, publish row / ingest row (batched), us`, `${x.kernelUs} / ${x.kernelBatchedUs}`,
        '-', '-']);
      rows.push([`  floor vs the JS publisher's ${x.jsUsPerEmit} us (user only: ${x.userOnlyRatio})`,
        `${x.floorRatio} / ${x.floorRatioBatched}`, '-', '-']);
    }
  }
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
  // The libwebsockets dsd was built against (pkg-config prints 4.1.6- for
  // Debian's 4.1.6).
  try {
    v.libwebsockets = execFileSync('pkg-config', ['--modversion', 'libwebsockets'], { encoding: 'utf8' }).trim();
  } catch {
    v.libwebsockets = 'unknown';
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
  for (const b of [LOAD, RTT, SINK, FLOOR, FLOOR_NOSYSTEMD, HANDOFF]) {
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
  // BENCH_ONLY=publish,rtt,syscalls,idle,many,fanout,flush,queue,ingest,instructions
  // picks scenarios.
  const only = (process.env.BENCH_ONLY || '').split(',').filter(Boolean);
  const want = (k) => only.length === 0 || only.includes(k);
  if (want('publish')) {
    f.publish64 = await pair('publish 64 B', () => publishDsd(SIZES.pub64, 64), () => publishJs(SIZES.pub64, 64));
    f.publish1k = await pair('publish 1 KiB', () => publishDsd(SIZES.pub1k, 1024), () => publishJs(SIZES.pub1k, 1024));
  }
  if (want('rtt')) f.rtt = await pair('round trip', () => rttDsd(SIZES.rtt), () => rttJs(SIZES.rtt));
  if (want('syscalls')) {
    let strace = null;
    try {
      strace = execFileSync('strace', ['-V'], { encoding: 'utf8' }).split('\n')[0].trim();
    } catch {
      strace = null;
    }
    f.versions.strace = strace;
    if (QUICK && !process.env.BENCH_ONLY) f.syscalls = { skipped: 'quick mode' };
    else if (!strace) f.syscalls = { skipped: 'strace not found' };
    else f.syscalls = await rttSyscalls();
  }
  if (want('idle')) f.idle = await pair('idle', idleDsd, idleJs);
  if (want('many')) f.many = await pair('100 subscribers', () => manyDsd(SIZES.sub100), () => manyJs(SIZES.sub100));
  if (want('fanout')) {
    f.fanout = {};
    for (const k of [1, 100, 1000]) f.fanout[k] = await pair(`fan-out to ${k}`, () => fanout(k));
  }
  if (want('flush')) f.flush = await pair('flush', () => queued(SIZES.flush, 30, true));
  if (want('queue')) f.queue = await pair('queued memory', () => queued(SIZES.queued, 100, false));
  if (want('ingest')) {
    f.ingest = {};
    for (const b of [64, 1024]) f.ingest[b] = await pair(`ingest ${b} B`, () => ingest(SIZES.ingest, b));
  }
  if (want('instructions')) {
    if (QUICK) f.instructions = { skipped: 'quick mode' };
    else {
      try {
        f.versions.valgrind = execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
      } catch {
        f.versions.valgrind = null;
      }
      if (f.versions.valgrind === null) f.instructions = { skipped: 'valgrind not found' };
      else {
        process.stderr.write('bench: instruction counts (callgrind, a few minutes)\n');
        f.instructions = await instructionCounts();
      }
    }
  }
  if (f.publish64 || f.publish1k) f.publishFloor = publishFloor(f);
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
