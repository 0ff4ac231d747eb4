'use strict';
/*
 * The "JS client direct" side of the side-by-side benchmark: what an app
 * does when it uses @deepstream/client 7.0.5 itself instead of dsd.  Run as
 * its own process so its CPU time and memory can be read from /proc.
 *
 *   node js-peer.js emit URL NAME COUNT PAD    emits {"i":k,"pad":"x..."},
 *                                              k = 0..COUNT-1, then idles
 *   node js-peer.js idle URL                   logs in and idles
 *   node js-peer.js subscribe URL NAME CLIENTS COUNT
 *                                              CLIENTS connections, each
 *                                              subscribed to NAME, until
 *                                              each has COUNT events
 *   node js-peer.js rtt URL OUT BACK SAMPLES WARMUP
 *                                              emits {"i":k} on OUT, waits
 *                                              for it on BACK, one at a time
 *
 * Prints "ready" once logged in (and subscribed), and one JSON line when
 * its work is done; then it waits for SIGTERM, so the benchmark reads its
 * CPU time and memory while it is still there.  emit starts emitting when
 * a line comes on stdin.
 */
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const js = require(path.join(__dirname, '..', 'integration', 'lib', 'jsclient'));

const [mode, url, ...rest] = process.argv.slice(2);

function pad(n) {
  return 'x'.repeat(n);
}

const idleForever = () => new Promise(() => {});
const tick = () => new Promise((resolve) => setImmediate(resolve));

async function emit(name, count, padLen) {
  const c = await js.connect(url, { auth: { username: 'peer-emit' } });
  const p = pad(padLen);
  console.log('ready');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  for (let i = 0; i < count; i++) {
    c.emit(name, { i, pad: p });
    if (i % 500 === 499) await tick();
  }
  console.log(JSON.stringify({ emitted: count }));
  await idleForever();
}

async function subscribe(name, clients, count) {
  const subs = [];
  for (let k = 0; k < clients; k++) {
    const c = await js.connect(url, { auth: { username: `peer-sub-${k}` } });
    const st = { c, got: 0, next: 0, inOrder: true };
    c.client.event.subscribe(name, (data) => {
      if (!data || data.i !== st.next) st.inOrder = false;
      st.next = data ? data.i + 1 : -1;
      st.got += 1;
    });
    subs.push(st);
  }
  for (const s of subs) await s.c.sync();
  console.log('ready');
  while (subs.some((s) => s.got < count)) await new Promise((resolve) => setTimeout(resolve, 5));
  const got = subs.map((s) => s.got);
  console.log(JSON.stringify({
    clients, min: Math.min(...got), total: got.reduce((a, b) => a + b, 0), inOrder: subs.every((s) => s.inOrder),
  }));
  await idleForever();
}

async function rtt(out, back, samples, warmup) {
  const c = await js.connect(url, { auth: { username: 'peer-rtt' } });
  let lastI = -1;
  let wake = () => {};
  c.client.event.subscribe(back, (data) => {
    lastI = data ? data.i : -1;
    wake();
  });
  await c.sync();
  console.log('ready');
  // The echo of i, or false after 2 s (the upstream subscription may still
  // be on its way for the first ones: that one is emitted again).
  const echoOf = (i) =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      wake = () => {
        if (lastI === i) {
          clearTimeout(t);
          resolve(true);
        }
      };
    });
  const us = [];
  for (let i = 0; i < samples + warmup; ) {
    const t0 = performance.now();
    const got = echoOf(i);
    c.emit(out, { i });
    if (!(await got)) continue;
    if (i >= warmup) us.push((performance.now() - t0) * 1000);
    i += 1;
  }
  console.log(JSON.stringify({ samples: us.length, us }));
  await idleForever();
}

async function main() {
  if (mode === 'emit') return emit(rest[0], Number(rest[1]), Number(rest[2] || 0));
  if (mode === 'idle') {
    await js.connect(url, { auth: { username: 'peer-idle' } });
    console.log('ready');
    return idleForever();
  }
  if (mode === 'subscribe') return subscribe(rest[0], Number(rest[1]), Number(rest[2]));
  if (mode === 'rtt') return rtt(rest[0], rest[1], Number(rest[2]), Number(rest[3]));
  throw new Error(`usage: see the comment at the top of ${__filename}`);
}

main().catch((e) => {
  console.error(`js-peer: ${e.stack || e.message}`);
  process.exit(1);
});
