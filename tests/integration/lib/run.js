'use strict';
// A test tool process (dsctl, dsipc-load, ipc-raw): its stdout lines, its
// stderr, and its exit; killed at the end of the test file if still running.
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { track } = require('./children');
const { waitUntil } = require('./util');

// opts.input: text written to the tool's stdin, which is then closed
// (without it, stdin is /dev/null).
function runTool(later, bin, args, opts = {}) {
  const input = opts.input !== undefined;
  const child = track(spawn(bin, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] }));
  if (input) {
    child.stdin.on('error', () => {}); // the tool may exit before reading it all
    child.stdin.end(opts.input);
  }
  const lines = [];
  let stderr = '';
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.on('data', (b) => {
    stderr += b;
  });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const h = {
    child,
    lines,
    get stderr() {
      return stderr;
    },
    exited,
    async ready(timeoutMs = 15000) {
      await waitUntil(() => lines.includes('ready'), { timeoutMs, what: `${path.basename(bin)} ready`,
        detail: () => stderr });
    },
    // The last stdout line, parsed, once the tool has exited.
    async result(timeoutMs = 60000) {
      await waitUntil(() => child.exitCode !== null, { timeoutMs, what: `${path.basename(bin)} to finish`,
        detail: () => `stdout: ${lines.join('\n')}\nstderr: ${stderr}` });
      return JSON.parse(lines[lines.length - 1]);
    },
  };
  later(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return h;
}

module.exports = { runTool };
