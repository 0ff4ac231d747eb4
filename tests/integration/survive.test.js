'use strict';
/*
 * An app that leaves dsd restarts to libdsipc (dsipc_set_reconnect(),
 * tests/tools/dsipc-survivor.c) keeps emitting numbered events and stays
 * subscribed while dsd is restarted several times: a plain restart (stop,
 * a pause, start again, as `systemctl restart` does), and under socket
 * activation (tests/tools/activate.c holds the socket as systemd does with
 * dsd.socket, and the app's own reconnection starts the next dsd).
 *
 * It checks what an app that rides out restarts needs: every emit the
 * app was told dsd accepted reaches a JS subscriber on the platform
 * (duplicates are allowed: the library resends what dsd had not
 * answered), nothing was refused, and after each restart an event published on the platform reaches the app
 * again without the app doing anything.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const { startDsd, buildDir, binaries, configIni } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { runTool } = require('./lib/run');
const { track } = require('./lib/children');
const { sleep, waitUntil, makeTempDir, waitExit } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server } = scope();

const TOOLS = path.join(buildDir(), 'tests');
const SURVIVOR = path.join(TOOLS, 'dsipc-survivor');
const ACTIVATE = path.join(TOOLS, 'activate');
const OUT = 'survive/out';
const IN = 'survive/in';
const RESTARTS = 3;

// The app's stdout, read as it comes.
function appBooks(tool) {
  const accepted = new Set();
  const refused = [];
  const events = [];
  let ups = 0;
  let seen = 0;
  const take = () => {
    for (; seen < tool.lines.length; seen++) {
      const l = tool.lines[seen];
      let m;
      if ((m = /^accepted (\d+) /.exec(l))) accepted.add(Number(m[1]));
      else if (l.startsWith('refused ')) refused.push(l);
      else if (l.startsWith('event ')) events.push(JSON.parse(l.slice(6)));
      else if (/^link 2 /.test(l)) ups += 1;
    }
  };
  return {
    accepted,
    refused,
    events,
    get ups() {
      take();
      return ups;
    },
    update: take,
  };
}

async function setUp() {
  const s = await server({ auth: 'open' });
  const sub = await js.connect(s.url, { auth: { username: 'subscriber' } });
  later(async () => sub.close());
  const got = await sub.subscribe(OUT);
  return { s, sub, got };
}

// After a restart: the app's link is up again (a new UP), and an event
// published on the platform reaches its subscription again.
async function checkBack(books, sub, round, upsBefore, detail) {
  await waitUntil(() => books.ups > upsBefore, {
    timeoutMs: 20000,
    what: `the app's link to dsd up again (round ${round})`,
    detail,
  });
  await waitUntil(
    () => {
      sub.emit(IN, { round });
      books.update();
      return books.events.some((e) => e && e.round === round);
    },
    { timeoutMs: 15000, intervalMs: 100, what: `the app's subscription delivering again (round ${round})`, detail });
}

async function finish(app, books, got, detail) {
  app.child.kill('SIGTERM');
  const summary = await app.result(40000);
  books.update();
  assert.equal(app.child.exitCode, 0, `the app exited 0: ${app.stderr}`);
  assert.deepEqual(books.refused, [], 'no emit was refused');
  assert.equal(summary.unanswered, 0, 'every emit was answered');
  assert.equal(summary.accepted, books.accepted.size);
  assert.ok(summary.emitted > 200, `the app emitted throughout (${summary.emitted})`);
  // Every accepted number reaches the platform subscriber.
  const missing = () => [...books.accepted].filter((n) => !received.has(n));
  const received = new Set();
  await waitUntil(
    () => {
      for (const d of got.data) received.add(d.n);
      return missing().length === 0;
    },
    {
      timeoutMs: 20000,
      what: 'every accepted emit at the JS subscriber',
      detail: () => `${missing().length} missing, first ${missing().slice(0, 20)}\n${detail()}`,
    });
  const dups = got.data.length - received.size;
  process.stdout.write(
    `# emitted ${summary.emitted}, accepted ${summary.accepted}, received ${received.size} ` +
      `(+${dups} duplicates), most buffered in the app ${summary.maxBuffered}\n`);
  return summary;
}

test('plain restarts: every accepted emit arrives, the subscription keeps delivering', async () => {
  const { s, sub, got } = await setUp();
  let d = await startDsd({ url: s.url });
  later(() => d.stop());
  await d.waitState('OPEN');
  const app = runTool(later, SURVIVOR, [d.socket, OUT, IN, '3']);
  await app.ready(10000);
  const books = appBooks(app);
  const detail = () => `app stderr: ${app.stderr}\napp tail: ${app.lines.slice(-15).join('\n')}\ndsd: ${d.logTail(20)}`;
  await checkBack(books, sub, 0, 0, detail);
  for (let round = 1; round <= RESTARTS; round++) {
    await sleep(300);
    const ups = books.ups;
    assert.equal((await d.stop()).code, 0);
    // dsd is away for a while: the app goes on emitting into its buffer.
    await sleep(400);
    d = await startDsd({ dir: d.dir });
    later(() => d.stop());
    await checkBack(books, sub, round, ups, detail);
  }
  const summary = await finish(app, books, got, detail);
  assert.ok(summary.maxBuffered > 0, 'emits were buffered in the app while dsd was away');
});

test('socket activation: restarts behind a held socket; the app starts the next dsd', async () => {
  const { s, sub, got } = await setUp();
  const dir = makeTempDir('survive-act');
  const sock = path.join(dir, 'dsd.sock');
  const conf = path.join(dir, 'dsd.conf');
  fs.writeFileSync(conf, configIni({ url: s.url }, sock));
  const act = track(spawn(ACTIVATE, [sock, binaries().dsd, '-f', '-v', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const actLines = [];
  let actErr = '';
  readline.createInterface({ input: act.stdout }).on('line', (l) => actLines.push(l));
  act.stderr.on('data', (b) => {
    actErr = (actErr + b).slice(-20000);
  });
  later(async () => {
    if (act.exitCode === null) act.kill('SIGTERM');
    await waitExit(act, 10000).catch(() => {});
  });
  await waitUntil(() => actLines.includes('listening'), { what: 'the activation socket', detail: () => actErr });
  const dsdPid = () => {
    const last = actLines.filter((l) => l.startsWith('started ') || l.startsWith('exited ')).pop();
    return last && last.startsWith('started ') ? Number(last.split(' ')[1]) : null;
  };
  // No dsd runs yet: the app's own connection starts the first one.
  assert.equal(dsdPid(), null);
  const app = runTool(later, SURVIVOR, [sock, OUT, IN, '3']);
  await app.ready(15000);
  const books = appBooks(app);
  const detail = () =>
    `app stderr: ${app.stderr}\napp tail: ${app.lines.slice(-15).join('\n')}\n` +
    `activate: ${actLines.join(', ')}\ndsd: ${actErr.split('\n').slice(-20).join('\n')}`;
  await checkBack(books, sub, 0, 0, detail);
  for (let round = 1; round <= RESTARTS; round++) {
    await sleep(300);
    const ups = books.ups;
    const pid = dsdPid();
    assert.ok(pid, `dsd runs (${actLines})`);
    process.kill(pid, 'SIGTERM');
    await waitUntil(() => actLines.includes(`exited ${pid} 0`), {
      timeoutMs: 10000,
      what: `dsd ${pid} to stop cleanly`,
      detail,
    });
    // Nobody starts dsd but the app's next try.
    await checkBack(books, sub, round, ups, detail);
    assert.notEqual(dsdPid(), pid);
  }
  await finish(app, books, got, detail);
  assert.doesNotMatch(actErr, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
});
