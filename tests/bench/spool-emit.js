'use strict';
/*
 * The durable spool in the daemon: prints figures, judges nothing.
 *
 * For the memory queue, [queue] spool with spoolSync = normal and with
 * full, measured the same way in one run, each on a fresh dsd against the
 * real deepstream server on loopback:
 *   accept: `dsipc-load emit` of COUNT events while dsd is paused (every
 *           emit answered "queued"; with a spool, once on disk);
 *   e2e:    `dsctl resume` until the JS subscriber has all COUNT, in order.
 * The spool file goes to $TMPDIR (else /var/tmp): that disk's fsync is what
 * `full` pays.  COUNT: $DSD_BENCH_SPOOL_COUNT, default 20000.
 */
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { startServer } = require(path.join(lib, 'server'));
const { startDsd, buildDir } = require(path.join(lib, 'dsd'));
const js = require(path.join(lib, 'jsclient'));
const { track } = require(path.join(lib, 'children'));
const { waitUntil } = require(path.join(lib, 'util'));

const COUNT = Number(process.env.DSD_BENCH_SPOOL_COUNT || 20000);
const LOAD = path.join(buildDir(), 'tests', 'dsipc-load');

function load(d, ...args) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(LOAD, ['-s', d.socket, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const lines = [];
    readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(lines[lines.length - 1]));
      } catch (e) {
        reject(e);
      }
    });
  });
}

async function one(s, mode) {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || '/var/tmp', 'dsd-spool-bench-'));
  const extra = mode === 'memory' ? '' : `[queue]\nspool = ${path.join(dir, 'spool.db')}\nspoolSync = ${mode}\n`;
  const d = await startDsd({ url: s.url, verbose: false, queue: { maxMessages: 10 * COUNT }, extra });
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  try {
    const sub = await c.subscribe(`bench-${mode}`);
    await d.waitState('OPEN');
    await d.dsctl('pause');
    await d.waitState('OFFLINE');
    let t = performance.now();
    const e = await load(d, 'emit', `bench-${mode}`, String(COUNT));
    const acceptMs = performance.now() - t;
    if (e.queued !== COUNT) throw new Error(`${mode}: ${JSON.stringify(e)}`);
    t = performance.now();
    await d.dsctl('resume');
    await waitUntil(() => sub.events.length >= COUNT, { timeoutMs: 120000, intervalMs: 5, what: 'all events' });
    const e2eMs = performance.now() - t;
    const inOrder = sub.data.every((x, i) => x.i === i);
    if (!inOrder) throw new Error(`${mode}: out of order`);
    return { mode, acceptMs, e2eMs };
  } finally {
    c.close();
    await d.stop(20000);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const s = await startServer({ auth: 'open' });
  const rows = [];
  try {
    for (const mode of ['memory', 'normal', 'full']) rows.push(await one(s, mode));
  } finally {
    await s.stop();
  }
  let fsType = '?';
  try {
    fsType = execFileSync('stat', ['-f', '-c', '%T', process.env.TMPDIR || '/var/tmp'], { encoding: 'utf8' }).trim();
  } catch {
    // only a label
  }
  const base = rows[0];
  console.log(`spool in the daemon: ${COUNT} emits of {"i":k}, spool on ${fsType}`);
  console.log('mode     accept (ms)  accept/s   vs mem   e2e (ms)   e2e/s    vs mem');
  for (const r of rows) {
    console.log(`${r.mode.padEnd(8)} ${r.acceptMs.toFixed(0).padStart(10)} ${(COUNT / r.acceptMs * 1000).toFixed(0).padStart(9)}` +
      `   ${(r.acceptMs / base.acceptMs).toFixed(2).padStart(5)}x ${r.e2eMs.toFixed(0).padStart(9)} ` +
      `${(COUNT / r.e2eMs * 1000).toFixed(0).padStart(8)}   ${(r.e2eMs / base.e2eMs).toFixed(2).padStart(5)}x`);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
