'use strict';
/*
 * Instructions dsd spends per platform event delivered to one local
 * subscriber: a repeatable count under callgrind, not a timing.
 *
 * dsd (no -v) runs under `valgrind --tool=callgrind` against the real
 * deepstream server; one `dsipc-load subscribe` app subscribes to a name; a
 * JS client emits WARMUP events (connections, buffers and caches settle),
 * then the counters are zeroed (`callgrind_control -z`), the JS client emits
 * N more, and once the app has all WARMUP + N, in order, the counters are
 * dumped (`callgrind_control -d`).  The figure is the dump's total over all
 * of dsd's threads (the WebSocket thread included) divided by N.  The JS
 * client emits as fast as it can, so dsd reads the events in batches, as it
 * does under load.
 *
 *   DSD_BUILD_DIR=build-release node tests/bench/count-deliver.js [N]
 *
 * N defaults to 20,000.  COUNT_SUBSCRIBERS=1000 counts fan-out instead:
 * instructions per delivery with 1,000 local subscribers.  COUNT_KEEP=1 keeps the dumps (for
 * callgrind_annotate); COUNT_VERBOSE=1 runs dsd with -v, to see what the
 * debug log costs.
 *
 * Use a release build (meson setup build-release --buildtype=release):
 * the figure is about the code that ships.  Prints one line of text and
 * one JSON line; exits 1 when events were lost or reordered.
 */
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd, buildDir } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { runTool } = require(path.join(__dirname, 'bench-lib'));
const { sleep, waitUntil } = require(path.join(lib, 'util'));

const N = Number(process.argv[2] || process.env.COUNT_EVENTS || 20000);
// COUNT_SUBSCRIBERS=K: K local subscribers (over up to 8 reader
// processes); the figure is then per delivery (events x K).
const K = Number(process.env.COUNT_SUBSCRIBERS || 1);
const PROCS = K === 1 ? 1 : Math.min(8, Math.ceil(K / 125));
const WARMUP = K === 1 ? 1000 : 20;
const NAME = 'count/deliver';

// The total of a callgrind dump ("totals: <Ir>" or "summary: <Ir>").
function totalIr(file) {
  const text = fs.readFileSync(file, 'utf8');
  const m = text.match(/^(?:totals|summary):\s+(\d+)/m);
  if (!m) throw new Error(`${file}: no totals line`);
  return Number(m[1]);
}

async function emitMany(c, from, n) {
  for (let i = from; i < from + n; i++) {
    c.emit(NAME, { i });
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
}

async function main() {
  const s = await startServer({ auth: 'open', logLevel: 'WARN' });
  let d = null;
  let pub = null;
  let cleanup = () => {};
  try {
    const outDir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'count-deliver-'));
    const out = path.join(outDir, 'callgrind.out');
    d = await startDsd({
      url: s.url,
      verbose: process.env.COUNT_VERBOSE === '1', // -v only to show what it cost
      startTimeoutMs: 60000,
      // 1,000 clients hold 64 KiB of input buffer each: room for them all.
      ipc: { clientBuffer: 64 * 1024 * 1024, clientBufferTotal: 1024 * 1024 * 1024 },
      wrapper: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}.%p`, '--dump-instr=no'],
    });
    await d.waitState('OPEN', 60000);
    pub = await js.connect(s.url, { auth: { username: 'count-pub' } });
    const load = path.join(buildDir(), 'tests', 'dsipc-load');
    const subs = [];
    for (let i = 0; i < PROCS; i++) {
      const share = Math.floor(K / PROCS) + (i < K % PROCS ? 1 : 0);
      subs.push(runTool(load, ['-s', d.socket, 'subscribe', NAME, String(share), String(WARMUP + N), '600000'], 620000));
    }
    for (const sub of subs) await sub.ready(120000);
    await waitUntil(async () => (await d.status()).subscriptions.acked === 1, {
      timeoutMs: 30000, intervalMs: 50, what: 'the subscription acked upstream' });
    await emitMany(pub, 0, WARMUP);
    await waitUntil(async () => (await d.status()).events.delivered >= WARMUP * K, {
      timeoutMs: 60000, intervalMs: 100, what: 'the warm-up events delivered' });
    await sleep(200);
    execFileSync('callgrind_control', ['-z', String(d.pid)], { stdio: 'ignore' });
    await emitMany(pub, WARMUP, N);
    const rs = [];
    for (const sub of subs) rs.push(await sub.result());
    execFileSync('callgrind_control', ['-d', String(d.pid)], { stdio: 'ignore' });
    if (rs.some((r) => r.min !== WARMUP + N || !r.inOrder)) {
      throw new Error(`events lost or reordered: ${JSON.stringify(rs)}`);
    }
    await sleep(200);
    // The dump after zeroing is the second file of this pid (".1").
    const dumps = fs.readdirSync(outDir).filter((f) => /\.\d+\.\d+$/.test(f)).sort();
    if (dumps.length === 0) throw new Error(`no callgrind dump in ${outDir}`);
    const ir = totalIr(path.join(outDir, dumps[dumps.length - 1]));
    const per = Math.round(ir / (N * K));
    console.log(`dsd: ${per.toLocaleString('en-US')} instructions per event delivered to each of ${K} local ` +
      `subscriber(s) (${ir.toLocaleString('en-US')} for ${N.toLocaleString('en-US')} events, all threads, callgrind)`);
    console.log(JSON.stringify({ events: N, subscribers: K, warmup: WARMUP, instructions: ir, perDelivery: per }));
    if (process.env.COUNT_KEEP === '1') console.log(`dumps kept in ${outDir} (callgrind_annotate FILE)`);
    else cleanup = () => fs.rmSync(outDir, { recursive: true, force: true });
  } finally {
    if (pub) pub.close();
    if (d) await d.stop(20000).catch((e) => console.error(`dsd stop: ${e.message}`));
    await s.stop();
    cleanup();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(`count-deliver: ${e.stack || e.message}`);
  process.exit(1);
});
