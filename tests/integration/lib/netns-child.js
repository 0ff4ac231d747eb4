'use strict';
/*
 * Run by netns.test.js inside a network namespace of its own (unshare -rn:
 * a user namespace maps us to root there, so `ip link` works without being
 * root outside). Loopback is the only link: the server and dsd talk over
 * it, and taking it down is "the cable pulled". Prints one JSON line:
 *   {down: ms from `ip link set lo down` to dsd leaving OPEN (null: not
 *    within the wait), reason, up: ms from `ip link set lo up` to OPEN again
 *    (null: not within the wait)}
 * argv[2]: "yes" or "no", dsd's followNetwork.
 */
const { execFileSync } = require('node:child_process');
const { startServer } = require('./server');
const { startDsd } = require('./dsd');
const { sleep } = require('./util');

const ip = (...args) => execFileSync('ip', args, { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
const WAIT = 3000;

async function main() {
  const follow = process.argv[2] || 'yes';
  ip('link', 'set', 'lo', 'up');
  const s = await startServer({ auth: 'open' });
  // The defaults: a heartbeat would notice after 60 s, the backoff after
  // a failure is 4 s and more.
  const d = await startDsd({ url: s.url, maxReconnectAttempts: 'infinity', extra: `[platform]\nfollowNetwork = ${follow}` });
  const out = { down: null, reason: null, up: null };
  try {
    const w = d.watch();
    await w.waitFor('OPEN', 15000);
    await sleep(300);
    const t = Date.now();
    ip('link', 'set', 'lo', 'down');
    const left = await w.waitFor((x) => x.state !== 'OPEN' && x.at >= t, WAIT).catch(() => null);
    if (left) {
      out.down = left.at - t;
      out.reason = left.reason;
    }
    await sleep(500);
    const back = Date.now();
    ip('link', 'set', 'lo', 'up');
    const open = await w.waitFor((x) => x.state === 'OPEN' && x.at >= back, WAIT).catch(() => null);
    if (open) out.up = open.at - back;
    await w.stop();
  } finally {
    ip('link', 'set', 'lo', 'up');
    await d.stop().catch(() => {});
    await s.stop().catch(() => {});
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
