'use strict';
// dsd as a system service: sd_notify (READY, STATUS, WATCHDOG, STOPPING),
// socket activation, credentials from $CREDENTIALS_DIRECTORY, and reload.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const { startDsd, buildDir, binaries } = require('./lib/dsd');
const { startScripted } = require('./lib/scripted');
const js = require('./lib/jsclient');
const { track } = require('./lib/children');
const { sleep, waitUntil, makeTempDir, waitExit } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd, proxy } = scope();

const TOOLS = path.join(buildDir(), 'tests');

// Starts dsd with extra environment variables (spawn copies process.env).
async function dsdWithEnv(env, opts) {
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    const d = await startDsd(opts);
    later(() => d.stop());
    return d;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function lines(child) {
  const out = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => out.push({ at: Date.now(), l }));
  return out;
}

test('sd_notify: READY=1 once listening, STATUS= tracks states, WATCHDOG=1, STOPPING=1', async () => {
  const s = await server({ auth: 'open' });
  const dir = makeTempDir('notify');
  const sockPath = path.join(dir, 'notify.sock');
  const sink = track(spawn(path.join(TOOLS, 'notify-sink'), [sockPath], { stdio: ['ignore', 'pipe', 'inherit'] }));
  later(async () => sink.kill('SIGTERM'));
  const got = lines(sink);
  await waitUntil(() => got.some((x) => x.l === 'ready'), { what: 'the notify sink' });

  const d = await dsdWithEnv({ NOTIFY_SOCKET: sockPath, WATCHDOG_USEC: '400000' }, { url: s.url });
  await d.waitState('OPEN');
  await waitUntil(() => got.some((x) => /STATUS=OPEN/.test(x.l)), { what: 'STATUS=OPEN' });
  const msgs = got.map((x) => x.l);
  const ready = msgs.findIndex((l) => /READY=1/.test(l));
  assert.ok(ready >= 0, `READY=1 sent: ${msgs}`);
  assert.ok(msgs.findIndex((l) => /STATUS=OPEN/.test(l)) > ready, 'STATUS tracks the state after READY');
  // READY does not wait for the platform: it comes before OPEN.
  assert.ok(msgs.slice(0, ready + 1).every((l) => !/STATUS=OPEN/.test(l)));
  assert.match(msgs.find((l) => /STATUS=OPEN/.test(l)), /queue 0/);

  const w0 = got.filter((x) => x.l.includes('WATCHDOG=1')).length;
  await sleep(1000);
  const w1 = got.filter((x) => x.l.includes('WATCHDOG=1')).length;
  assert.ok(w1 - w0 >= 3, `WATCHDOG=1 every half period (${w1 - w0} in 1 s)`);

  await d.dsctl('pause');
  await waitUntil(() => got.some((x) => /STATUS=OFFLINE/.test(x.l)), { what: 'STATUS=OFFLINE' });
  // The queue depth follows the queue, not only the state.
  for (let i = 0; i < 3; i++) await d.dsctl('emit', 'n', String(i));
  await waitUntil(() => got.some((x) => /STATUS=OFFLINE.*queue 3/.test(x.l)), { what: 'STATUS with queue 3' });
  const r = await d.stop();
  assert.equal(r.code, 0);
  await waitUntil(() => got.some((x) => /STOPPING=1/.test(x.l)), { what: 'STOPPING=1' });
});

test('socket activation: dsd serves dsctl on the passed socket', async () => {
  const s = await server({ auth: 'open' });
  const dir = makeTempDir('activate');
  const sock = path.join(dir, 'dsd.sock');
  const conf = path.join(dir, 'dsd.conf');
  fs.writeFileSync(conf, `[platform]\nurl = ${s.url}\n[ipc]\nsocket = ${sock}\n`);
  const child = track(spawn('systemd-socket-activate', ['-l', sock, binaries().dsd, '-f', '-c', conf],
    { stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  child.stderr.on('data', (b) => {
    log += b;
  });
  later(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await waitExit(child, 5000).catch(() => {});
  });
  await waitUntil(() => fs.existsSync(sock), { what: 'the activation socket' });
  // dsd starts on the first connection; dsctl's connection triggers it.
  const run = (...args) => new Promise((resolve) => {
    require('node:child_process').execFile(binaries().dsctl, ['-s', sock, ...args], { encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
  const st = await waitUntil(async () => {
    const r = await run('status', '--json');
    return r.code === 0 && JSON.parse(r.stdout).state === 'OPEN' && JSON.parse(r.stdout);
  }, { timeoutMs: 10000, what: 'dsd OPEN behind the passed socket', detail: () => log });
  assert.equal(st.url, s.url);
  assert.doesNotMatch(log, /cannot listen/);
  child.kill('SIGTERM');
  await waitExit(child, 5000);
  assert.equal(child.exitCode, 0);
  // The socket belongs to whoever passed it: dsd does not unlink it.
  assert.ok(fs.existsSync(sock));
});

test('credentials from $CREDENTIALS_DIRECTORY; the secret stays out of the log and the status', async () => {
  const s = await server({ auth: 'file' });
  const creds = makeTempDir('creds');
  const secret = 'alice-pw';
  fs.writeFileSync(path.join(creds, 'dsd-auth'), JSON.stringify({ username: 'alice', password: secret }));
  const d = await dsdWithEnv({ CREDENTIALS_DIRECTORY: creds },
    { url: s.url, extra: '' });
  // startDsd wrote no auth; point the config at the credential and reload.
  const ini = fs.readFileSync(d.configFile, 'utf8').replace('[platform]\n', '[platform]\nauthFile = dsd-auth\n');
  fs.writeFileSync(d.configFile, ini);
  process.kill(d.pid, 'SIGHUP');
  const st = await d.waitState('OPEN', 10000);
  const json = JSON.stringify(st);
  assert.ok(!json.includes(secret), 'no secret in dsctl status --json');
  const human = await d.dsctl('status');
  assert.ok(!human.stdout.includes(secret), 'no secret in dsctl status');
  assert.ok(!d.lines.join('\n').includes(secret), 'no secret in the log (with -v)');
});

test('reload: new credentials take effect without losing queued emits; a broken config is refused', async () => {
  const s = await server({ auth: 'file' });
  const p = await proxy({ target: { host: '127.0.0.1', port: s.port } });
  const d = await dsd({ url: p.url, auth: { username: 'carol', password: 'wrong' } });
  await d.waitState('AWAITING_AUTHENTICATION');
  const c = await js.connect(s.url, { auth: { username: 'bob', password: 'bob-pw' } });
  later(async () => c.close());
  const got = await c.subscribe('reload/q');
  // A local subscription made before the reload must survive it.
  const local = track(spawn(binaries().dsctl, ['-s', d.socket, 'subscribe', 'reload/back'],
    { stdio: ['ignore', 'pipe', 'ignore'] }));
  later(async () => local.kill('SIGTERM'));
  const localLines = lines(local);
  await waitUntil(async () => (await d.status()).subscriptions.local === 1, { what: 'the local subscription' });
  for (let i = 0; i < 50; i++) {
    const r = await d.dsctl('emit', 'reload/q', JSON.stringify({ i }));
    assert.equal(r.stdout.trim(), 'queued');
  }
  const good = fs.readFileSync(d.configFile, 'utf8');

  // A broken config is refused with file:line, and nothing changes.
  fs.writeFileSync(d.configFile, good.replace('[platform]\n', '[platform]\nmaxReconnectAttempts = lots\n'));
  let r = await d.dsctl('reload');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /dsd\.conf:\d+/);
  let st = await d.status();
  assert.equal(st.state, 'AWAITING_AUTHENTICATION');
  assert.equal(st.queue.messages, 50);
  // The same through SIGHUP: logged, kept.
  process.kill(d.pid, 'SIGHUP');
  await waitUntil(() => d.lines.some((l) => /reload refused/.test(l)), { what: 'the refusal in the log' });

  // The right credentials: a fresh connection instance logs in and flushes.
  fs.writeFileSync(d.configFile, good.replace('"wrong"', '"carol-pw"'));
  r = await d.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OPEN');
  await got.waitFor(50);
  assert.deepEqual(got.data.map((x) => x.i), Array.from({ length: 50 }, (_, k) => k));
  st = await d.status();
  assert.equal(st.queue.messages, 0);
  assert.equal(st.emits.sent, 50);
  await waitUntil(async () => (await d.status()).subscriptions.acked === 1, { what: 'the rebuilt subscription' });
  c.emit('reload/back', 7);
  await waitUntil(() => localLines.length === 1, { what: 'the local subscriber after the reload' });
  assert.equal(localLines[0].l, 'reload/back 7');
});

test('reload applies new timings at once (restartAfterError in a permanent ERROR)', async () => {
  const sp = await startScripted({ answer: 'reject' });
  later(() => sp.close());
  const d = await dsd({ url: sp.url, maxReconnectAttempts: 1, restartAfterError: 0 });
  await d.waitState('ERROR');
  await sleep(300);
  assert.equal(sp.connections, 1, 'a permanent ERROR waits for the operator');
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace(/restartAfterError = 0/, 'restartAfterError = 200'));
  assert.equal((await d.dsctl('reload')).code, 0);
  await waitUntil(() => sp.connections >= 2, { timeoutMs: 3000, what: 'a fresh instance after restartAfterError' });
});

test('reload applies new timings at once (the reconnect step in a transient ERROR)', async () => {
  const p = await proxy({ target: { host: '127.0.0.1', port: 9 } });
  await p.mode('reset');
  // An unreachable platform: ERROR for one step, here an hour.
  const d = await dsd({ url: p.url, maxReconnectAttempts: 1, reconnectIntervalIncrement: 3600000,
    maxReconnectInterval: 3600000 });
  const st = await d.waitState('ERROR');
  assert.equal(st.errorKind, 'transient');
  assert.ok(st.nextRetryMs > 3590000, `nextRetryMs ${st.nextRetryMs}`);
  await sleep(300);
  assert.equal(p.attempts.length, 1);
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace(/reconnectIntervalIncrement = 3600000/, 'reconnectIntervalIncrement = 200'));
  assert.equal((await d.dsctl('reload')).code, 0);
  await waitUntil(() => p.attempts.length >= 2, { timeoutMs: 3000, what: 'a fresh instance one (new) step after ERROR' });
});

test('repeated reconnect failures are rate-limited in the log', async () => {
  const p = await proxy({ target: { host: '127.0.0.1', port: 9 } });
  await p.mode('reset');
  const d = await dsd({ url: p.url, reconnectIntervalIncrement: 100, maxReconnectInterval: 100,
    maxReconnectAttempts: 'infinity' });
  await waitUntil(() => p.attempts.length >= 30, { timeoutMs: 10000, what: '30 attempts' });
  const failures = d.lines.filter((l) => /attempt \d+ failed/.test(l));
  assert.ok(failures.length >= 1, 'failed attempts are logged');
  assert.ok(failures.length <= 6, `${failures.length} lines for ${p.attempts.length} failures`);
});

test('dsctl exits 3 when dsd is unreachable, 2 on bad usage', async () => {
  const run = (...args) => new Promise((resolve) => {
    require('node:child_process').execFile(binaries().dsctl, args, { encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
  let r = await run('-s', '/nonexistent/dsd.sock', 'status');
  assert.equal(r.code, 3);
  assert.match(r.stderr, /dsd/);
  r = await run('frobnicate');
  assert.equal(r.code, 2);
});

test('under systemd (JOURNAL_STREAM) log lines carry sd-daemon priority prefixes; -f gives readable lines', async () => {
  const s = await server({ auth: 'open' });
  const dir = makeTempDir('journal');
  const conf = path.join(dir, 'dsd.conf');
  fs.writeFileSync(conf, `[platform]\nurl = ${s.url}\n[ipc]\nsocket = ${path.join(dir, 'dsd.sock')}\n`);
  // stderr goes to a file; JOURNAL_STREAM names that file, as systemd names
  // the journal's stream, or something else.
  const runFor = async (args, journal) => {
    const logPath = path.join(dir, `stderr-${args.length}-${journal}.log`);
    const fd = fs.openSync(logPath, 'w');
    const st = fs.fstatSync(fd);
    const env = { ...process.env, JOURNAL_STREAM: journal === 'match' ? `${st.dev}:${st.ino}` : '8:12345' };
    const child = track(spawn(binaries().dsd, args, { env, stdio: ['ignore', 'ignore', fd] }));
    fs.closeSync(fd);
    const text = () => fs.readFileSync(logPath, 'utf8');
    await waitUntil(() => /OPEN/.test(text()), { timeoutMs: 10000, what: 'dsd to log OPEN', detail: text });
    child.kill('SIGTERM');
    await waitExit(child, 5000);
    return text().trim().split('\n');
  };
  const journal = await runFor(['-c', conf], 'match');
  assert.ok(journal.every((l) => /^<[0-7]>/.test(l)), journal.join('\n'));
  assert.ok(journal.some((l) => /^<6>AUTHENTICATING -> OPEN/.test(l)), 'transitions at info (6)');
  const readable = /^\d{4}-\d\d-\d\dT\S+Z dsd \w+: /;
  const fg = await runFor(['-f', '-c', conf], 'match');
  assert.ok(fg.every((l) => readable.test(l)), fg.join('\n'));
  // An inherited JOURNAL_STREAM that is not our stderr: readable lines.
  const other = await runFor(['-c', conf], 'other');
  assert.ok(other.every((l) => readable.test(l)), other.join('\n'));
});
