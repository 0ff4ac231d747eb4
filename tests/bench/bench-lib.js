'use strict';
/*
 * What the benchmark scripts share: /proc readings (RSS, PSS, CPU time) and
 * a driver process run to completion.  Processes are started through the
 * integration helpers (tracked, stopped by PID).
 */
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const lib = path.join(__dirname, '..', 'integration', 'lib');
const { track } = require(path.join(lib, 'children'));
const { waitUntil, withTimeout } = require(path.join(lib, 'util'));

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// VmRSS and VmHWM in KiB.
function memory(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => {
    const m = text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]);
  };
  return { rssKiB: kb('VmRSS'), hwmKiB: kb('VmHWM') };
}

// PSS in KiB (shared pages divided among the processes mapping them).
function pssKiB(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const m = text.match(/^Pss:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// Where a process's resident pages are, from /proc/PID/smaps, in KiB:
// fileKiB, pages of mapped files (the program and its shared libraries:
// code, read-only data; the same pages serve every process using them);
// anonKiB, private memory that is not the heap (the libraries' relocated
// and written data, thread stacks, anonymous mmaps such as a thread's
// malloc arena); heapKiB, the main malloc heap ([heap]); stackKiB, the main
// stack; and libs, the resident KiB of each mapped file, its anonymous
// pages included when they follow its own mappings (its .bss).
function rssBreakdown(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return null;
  }
  const out = { fileKiB: 0, anonKiB: 0, heapKiB: 0, stackKiB: 0, libs: {} };
  let name = null;
  let lastFile = null;
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      name = head[2];
      if (name.startsWith('/')) lastFile = path.basename(name);
      else if (name !== '') lastFile = null;
      continue;
    }
    const m = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const kb = Number(m[2]);
    if (m[1] === 'Rss') {
      if (name === '[heap]') out.heapKiB += kb;
      else if (name === '[stack]') out.stackKiB += kb;
      if (lastFile && (name.startsWith('/') || name === '')) out.libs[lastFile] = (out.libs[lastFile] || 0) + kb;
    } else if (name !== '[heap]' && name !== '[stack]') out.anonKiB += kb;
  }
  // File-backed = resident less every anonymous page.
  let rss = 0;
  for (const m of text.matchAll(/^Rss:\s+(\d+) kB/gm)) rss += Number(m[1]);
  out.rssKiB = rss;
  out.fileKiB = rss - out.anonKiB - out.heapKiB - out.stackKiB;
  return out;
}

// utime + stime in milliseconds.  The command name may hold spaces and
// parentheses, so the fields are counted from after its closing one.
function cpuMs(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime 15.
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

// CPU time of all the process's threads in nanoseconds, from the
// scheduler's own count (/proc/PID/task/TID/schedstat, first field): exact,
// where utime and stime come in clock ticks (10 ms).  Threads that already
// exited are not counted.
function cpuNs(pid) {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited meanwhile
    }
  }
  return ns;
}

// utime and stime apart, in milliseconds.
function cpuSplitMs(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { userMs: (Number(f[11]) * 1000) / CLK_TCK, sysMs: (Number(f[12]) * 1000) / CLK_TCK };
}

// A driver run to completion: its stdout lines, exit code and exit time.
// With stdin, go() writes a line to it.  A driver that stays after its
// JSON line (js-peer.js) is stopped with stop().
function runTool(bin, args, timeoutMs, { stdin = false } = {}) {
  const child = track(spawn(bin, args, { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] }));
  const lines = [];
  let stderr = '';
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.on('data', (b) => {
    stderr += b;
  });
  const done = new Promise((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, at: performance.now() })));
  const name = path.basename(bin);
  const json = () => {
    const last = lines[lines.length - 1];
    return last && last[0] === '{' ? JSON.parse(last) : null;
  };
  return {
    pid: child.pid,
    lines,
    go: () => child.stdin.write('go\n'),
    // The JSON line of a driver that stays (js-peer.js).
    json: (ms = 120000) =>
      waitUntil(json, { timeoutMs: ms, intervalMs: 5, what: `${name} result`, detail: () => stderr }),
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return done;
    },
    ready: (ms = 60000) =>
      waitUntil(() => lines.includes('ready'), {
        timeoutMs: ms,
        intervalMs: 5,
        what: `${name} ready`,
        detail: () => stderr,
      }),
    async result() {
      let r;
      try {
        r = await withTimeout(done, timeoutMs, `${name} ${args.slice(2).join(' ')} to finish`);
      } catch (e) {
        child.kill('SIGKILL');
        throw e;
      }
      const last = lines[lines.length - 1];
      if (r.code !== 0 || !last || last[0] !== '{') {
        throw new Error(`${name} exited ${r.code}/${r.signal}: stdout ${lines.join(' | ')} stderr ${stderr}`);
      }
      return { ...JSON.parse(last), exitAt: r.at };
    },
  };
}

module.exports = { CLK_TCK, memory, pssKiB, cpuMs, cpuNs, cpuSplitMs, rssBreakdown, runTool };
