'use strict';
/*
 * A subscriber process of its own, so the time it measures is not spent
 * in the test's busy event loop: connects the official JS client to URL,
 * subscribes to NAME, and for each event {i, t} (t: the sender's unix
 * time in microseconds) records now - t.  After COUNT events (or 60 s) it
 * prints one JSON line: {n, p50, p90, p99, max, inOrder} in milliseconds.
 *
 *   node latency-sub.js URL NAME COUNT
 */
const { performance } = require('node:perf_hooks');
const { requirePeer } = require('./peer');

const { DeepstreamClient } = requirePeer('@deepstream/client');
const [url, name, countText] = process.argv.slice(2);
const count = Number(countText);
const lat = [];
let last = -1;
let inOrder = true;

function report() {
  const s = [...lat].sort((a, b) => a - b);
  const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
  const r = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  process.stdout.write(`${JSON.stringify({
    n: lat.length, p50: r(q(0.5)), p90: r(q(0.9)), p99: r(q(0.99)), max: r(s[s.length - 1] ?? null), inOrder,
  })}\n`);
  process.exit(0);
}

const c = new DeepstreamClient(url, { subscriptionInterval: 0 });
c.login({ username: 'latency' }, (ok) => {
  if (!ok) {
    process.stderr.write('login failed\n');
    process.exit(1);
  }
  c.event.subscribe(name, (d) => {
    const nowUs = (performance.timeOrigin + performance.now()) * 1000;
    lat.push((nowUs - d.t) / 1000);
    if (d.i <= last) inOrder = false;
    last = d.i;
    if (lat.length >= count) report();
  });
  // The server has the subscription once a round trip came back.
  c.presence.getAll().then(() => process.stdout.write('ready\n'));
});
setTimeout(report, 60000);
