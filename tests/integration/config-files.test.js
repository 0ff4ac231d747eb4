'use strict';
// Files dsd reads that are not regular files: a FIFO named as the config
// or as authFile must be refused at once. dsd reads its files on its only
// thread, so an open() that waits for a writer would hang `dsd -n` and, on
// a reload, freeze the running daemon (no IPC replies, no heartbeats).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile, execFileSync } = require('node:child_process');

const { binaries } = require('./lib/dsd');
const { waitUntil, makeTempDir } = require('./lib/util');
const { scope } = require('./lib/scope');

const { server, dsd } = scope();

function mkfifo(p) {
  execFileSync('mkfifo', ['-m', '600', p]);
  return p;
}

// Runs a program; resolves {code, stdout, stderr, ms}; kills it after timeoutMs.
function runTimed(bin, args, timeoutMs) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      let code = 0;
      if (err) code = err.killed ? 'timeout' : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

test('dsd -n -c FIFO exits non-zero at once: not a regular file', async () => {
  const fifo = mkfifo(path.join(makeTempDir('fifo'), 'dsd.conf'));
  const r = await runTimed(binaries().dsd, ['-n', '-c', fifo], 5000);
  assert.notEqual(r.code, 'timeout', 'dsd -n waited on the FIFO');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not a regular file/);
  assert.ok(r.stderr.includes(fifo), `the path in ${JSON.stringify(r.stderr)}`);
  assert.ok(r.ms < 3000, `took ${r.ms} ms`);
});

test('a reload naming a FIFO authFile is refused; dsd keeps answering', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const fifo = mkfifo(path.join(d.dir, 'auth.fifo'));
  const good = fs.readFileSync(d.configFile, 'utf8');
  fs.writeFileSync(d.configFile, good.replace('[platform]\n', `[platform]\nauthFile = ${fifo}\n`));

  // SIGHUP: refused, logged with the path, the daemon still answers.
  process.kill(d.pid, 'SIGHUP');
  const line = await waitUntil(() => d.lines.find((l) => /reload refused/.test(l)),
    { timeoutMs: 5000, what: 'the refusal in the log', detail: () => d.logTail() });
  assert.match(line, /not a regular file/);
  assert.ok(line.includes('auth.fifo'), line);
  const r = await runTimed(binaries().dsctl, ['-s', d.socket, 'status', '--json'], 3000);
  assert.equal(r.code, 0, `dsctl status after the refused reload: ${r.code} ${r.stderr}`);
  assert.equal(JSON.parse(r.stdout).state, 'OPEN');

  // The same through dsctl reload: the error comes back to the caller.
  const rr = await d.dsctl('reload');
  assert.equal(rr.code, 1);
  assert.match(rr.stderr, /not a regular file/);
  assert.equal((await d.status()).state, 'OPEN');
});
