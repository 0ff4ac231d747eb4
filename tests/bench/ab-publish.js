'use strict';
/*
 * One flooding app's throughput through two builds of dsd, interleaved in
 * one run: is a change slower for a single app that emits as fast as it
 * can?  Wall-clock figures on a shared machine move with the load; taking
 * the two builds in turn, several times, in the same run is what makes
 * their ratio mean something.
 *
 *   node tests/bench/ab-publish.js BUILD_A BUILD_B
 *
 * Each run: a fresh deepstream server, a JS subscriber on it, dsd from the
 * build dir (no -v, the queue limits raised), and that build's
 * `dsipc-load emit` sending AB_EVENTS (50,000) events of about AB_BYTES
 * (64) bytes of JSON.  Events/s from the app's start to the last event at
 * the subscriber, and dsd's CPU per 10,000 events.  The order of the two
 * builds alternates from one rep to the next (A B, B A, ...), AB_REPS (3)
 * reps.  dsd's config is written here, with only keys every build since
 * the benchmark began knows (an older dsd refuses keys it does not know).
 * Prints the runs, the median of each build and B/A of the medians, then
 * one JSON line; fails only on events lost or out of order.
 */
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { makeTempDir, withTimeout } = require(path.join(lib, 'util'));
const { cpuMs, runTool } = require(path.join(__dirname, 'bench-lib'));

const builds = process.argv.slice(2, 4).map((b) => path.resolve(b));
if (builds.length !== 2) {
  console.error('usage: node tests/bench/ab-publish.js BUILD_A BUILD_B');
  process.exit(2);
}
const REPS = Number(process.env.AB_REPS || 3);
const N = Number(process.env.AB_EVENTS || 50000);
const BYTES = Number(process.env.AB_BYTES || 64);
const NAME = 'bench/ab';

function revision(build) {
  try {
    const src = fs.readFileSync(path.join(build, 'meson-info', 'meson-info.json'), 'utf8');
    const dir = JSON.parse(src).directories.source;
    return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function once(build) {
  const s = await startServer({ auth: 'open', logLevel: 'WARN' });
  const sub = await js.connect(s.url, { auth: { username: 'ab-sub' } });
  let d = null;
  try {
    const st = { n: 0, next: 0, inOrder: true, lastAt: 0, wake: null };
    sub.client.event.subscribe(NAME, (data) => {
      st.lastAt = performance.now();
      if (!data || data.i !== st.next) st.inOrder = false;
      st.next = data ? data.i + 1 : -1;
      st.n += 1;
      if (st.n >= N && st.wake) st.wake();
    });
    await sub.sync();
    const dir = makeTempDir('dsd-ab');
    fs.writeFileSync(path.join(dir, 'dsd.conf'), [
      '[platform]', `url = ${s.url}`,
      '[ipc]', `socket = ${path.join(dir, 'dsd.sock')}`, 'clientBuffer = 67108864',
      '[queue]', 'maxMessages = 1000000', 'maxBytes = 1073741824', ''].join('\n'));
    process.env.DSD_BUILD_DIR = build; // startDsd takes dsd and dsctl from there
    d = await startDsd({ dir, verbose: false });
    await d.waitState('OPEN', 60000);
    const pad = Math.max(0, BYTES - 20 - String(N - 1).length);
    const cpu0 = cpuMs(d.pid);
    const t0 = performance.now();
    const l = runTool(path.join(build, 'tests', 'dsipc-load'), ['-s', d.socket, 'emit', NAME, String(N), String(pad)],
      600000);
    const all = st.n >= N ? Promise.resolve() : new Promise((resolve) => (st.wake = resolve));
    await withTimeout(all, 600000, `${N} events at the subscriber (got ${st.n})`);
    const ms = st.lastAt - t0;
    const cpu = cpuMs(d.pid) - cpu0;
    const e = await l.result();
    if (!st.inOrder || st.n !== N || e.sent + e.queued !== N) {
      throw new Error(`lost or reordered: in order ${st.inOrder}, got ${st.n}, ${JSON.stringify(e)}`);
    }
    return { eventsPerSec: Math.round((N * 1000) / ms), cpuMsPer10k: Math.round((cpu * 10000) / N) };
  } finally {
    if (d) await d.stop(10000);
    sub.close();
    await s.stop();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const runs = [[], []];
  for (let r = 0; r < REPS; r++) {
    for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const x = await once(builds[i]);
      runs[i].push(x);
      console.log(`rep ${r + 1} ${'AB'[i]}: ${x.eventsPerSec} events/s, dsd CPU ${x.cpuMsPer10k} ms per 10k`);
    }
  }
  const out = { events: N, bytes: BYTES, reps: REPS, loadavg: require('node:os').loadavg() };
  builds.forEach((b, i) => {
    const eps = runs[i].map((x) => x.eventsPerSec);
    out['AB'[i]] = { build: b, git: revision(b), eventsPerSec: eps, cpuMsPer10k: runs[i].map((x) => x.cpuMsPer10k),
      median: median(eps) };
    console.log(`${'AB'[i]} (${b}, ${out['AB'[i]].git}): median ${median(eps)} events/s (${Math.min(...eps)}..` +
      `${Math.max(...eps)}), dsd CPU median ${median(out['AB'[i]].cpuMsPer10k)} ms per 10k`);
  });
  out.ratioBA = Math.round((out.B.median / out.A.median) * 100) / 100;
  console.log(`B/A of the medians: ${out.ratioBA}`);
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(`ab-publish: ${e.stack || e.message}`);
  process.exit(1);
});
