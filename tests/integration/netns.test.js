'use strict';
/*
 * Following the network (dsd(8), FOLLOWING THE NETWORK) with a real link
 * going down and up: the server and dsd run in a network namespace of their
 * own (lib/netns-child.js under `unshare -rn`), where loopback is the only
 * link, and `ip link set lo down` pulls the cable. With followNetwork dsd
 * must leave OPEN at once (the heartbeat would take 60 s) and be OPEN again
 * at once when the link is back (the backoff would take 4 s); with
 * followNetwork = no, the same run must show neither (the control).
 *
 * Skipped, with the reason printed, where unprivileged user and network
 * namespaces are not available (some containers and CI runners).
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');

const { buildDir } = require('./lib/dsd');
const { track } = require('./lib/children');

const CHILD = path.join(__dirname, 'lib', 'netns-child.js');

function whyNot() {
  const r = spawnSync('unshare', ['-rn', 'sh', '-c', 'PATH=$PATH:/usr/sbin:/sbin ip link set lo up'], { encoding: 'utf8' });
  if (r.error) return `unshare cannot run: ${r.error.message}`;
  if (r.status !== 0) return `no unprivileged network namespace here: ${(r.stderr || '').trim() || `exit ${r.status}`}`;
  return null;
}

const SKIP = whyNot();
if (SKIP) process.stdout.write(`netns: skipped: ${SKIP}\n`);

function runChild(follow) {
  return new Promise((resolve, reject) => {
    const child = track(spawn('unshare', ['-rn', process.execPath, CHILD, follow], {
      env: { ...process.env, DSD_BUILD_DIR: buildDir() },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop();
      if (code !== 0) return reject(new Error(`netns child exited ${code}:\n${err}`));
      try {
        return resolve(JSON.parse(last));
      } catch {
        return reject(new Error(`netns child printed no result: ${out}\n${err}`));
      }
    });
  });
}

test('a link going down and up: dsd leaves OPEN and comes back at once', { skip: SKIP || false, timeout: 120000 },
  async () => {
    const on = await runChild('yes');
    const off = await runChild('no');
    process.stdout.write(`netns: followNetwork yes: link down -> left OPEN ${on.down} ms, link up -> OPEN ` +
      `${on.up} ms; followNetwork no: ${off.down === null ? 'still OPEN after 3 s' : `left OPEN ${off.down} ms`}, ` +
      `${off.up === null ? 'not OPEN again within 3 s' : `OPEN again ${off.up} ms`}\n`);
    assert.notEqual(on.down, null, 'dsd did not leave OPEN when the link went down');
    assert.match(on.reason, /^network: .*lo/);
    assert.notEqual(on.up, null, 'dsd was not OPEN again soon after the link came back');
    // The control: without it only the heartbeat (60 s) would notice.
    assert.equal(off.down, null, `without followNetwork dsd left OPEN: ${JSON.stringify(off)}`);
  });
