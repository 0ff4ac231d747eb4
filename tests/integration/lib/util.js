'use strict';
// Small shared helpers: bounded waits, temp dirs, free ports.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls pred() (sync or async) every intervalMs until it returns a truthy
// value, which is returned. Throws after timeoutMs with `what` and, if given,
// the text of detail() so a failure says what was being waited for.
async function waitUntil(pred, { timeoutMs = 5000, intervalMs = 20, what = 'condition', detail } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      let msg = `timed out after ${timeoutMs} ms waiting for ${what}`;
      if (lastErr) msg += `\nlast error: ${lastErr.message}`;
      if (detail) msg += `\n${detail()}`;
      throw new Error(msg);
    }
    await sleep(intervalMs);
  }
}

// Rejects with a clear message if promise does not settle within ms.
function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Temp dirs are removed when this process exits cleanly (code 0) and kept
// after a failure, or always with DSD_TEST_KEEP=1, for the logs inside.
const tempDirs = [];
process.on('exit', (code) => {
  if (code !== 0 || process.env.DSD_TEST_KEEP) return;
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});

function makeTempDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  tempDirs.push(d);
  return d;
}

// Asks the kernel for a free loopback port. Another process could take it
// before we bind it again; on loopback in a test run that is rare enough.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Resolves with {code, signal} once child has exited (at once if it has).
function waitExit(child, timeoutMs, what) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return withTimeout(
    new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    timeoutMs,
    what || `process ${child.pid} to exit`);
}

function tail(text, lines = 40) {
  return text.split('\n').slice(-lines).join('\n');
}

module.exports = { sleep, waitUntil, withTimeout, makeTempDir, freePort, waitExit, tail };
