'use strict';
/*
 * Runs the C daemon for a test. Contract (the daemon and dsctl are written
 * to it): binaries $DSD_BUILD_DIR/daemon/dsd and $DSD_BUILD_DIR/tools/dsctl
 * (DSD_BUILD_DIR defaults to <repo>/build); `dsd -f -v -c FILE` runs in the
 * foreground; `dsctl -s SOCK status --json` prints one JSON object and exits
 * 0 once the daemon answers; `dsctl -s SOCK watch --json` prints one line
 * {"state":..,"reason":..,"at":<unix ms>} per connection state transition.
 *
 * DSD_WRAPPER: a command (words split on blanks) that dsd is run under, e.g.
 * "valgrind --error-exitcode=99 ...". valgrind keeps dsd's pid, so signals
 * still reach dsd. Its report goes to dsd's stderr; stop() fails on it.
 */
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFile } = require('node:child_process');
const { REPO_DIR } = require('./peer');
const { track } = require('./children');
const { sleep, makeTempDir, waitExit, waitUntil } = require('./util');

function buildDir() {
  return path.resolve(process.env.DSD_BUILD_DIR || path.join(REPO_DIR, 'build'));
}

function binaries() {
  const b = buildDir();
  const bins = { dsd: path.join(b, 'daemon', 'dsd'), dsctl: path.join(b, 'tools', 'dsctl') };
  for (const [name, p] of Object.entries(bins)) {
    if (!fs.existsSync(p)) {
      throw new Error(`${name} not found at ${p}: build first (ninja -C ${b}) or set DSD_BUILD_DIR`);
    }
  }
  return bins;
}

// INI value for a JS value: objects become one-line JSON (the auth key).
function iniValue(v) {
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function section(name, pairs) {
  const lines = Object.entries(pairs)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k} = ${iniValue(v)}`);
  return `[${name}]\n${lines.join('\n')}\n`;
}

function configIni(o, socketPath) {
  let ini = section('platform', {
    url: o.url,
    auth: o.auth,
    caFile: o.caFile,
    certFile: o.certFile,
    keyFile: o.keyFile,
    proxy: o.proxy,
    reconnectIntervalIncrement: o.reconnectIntervalIncrement,
    maxReconnectInterval: o.maxReconnectInterval,
    maxReconnectAttempts: o.maxReconnectAttempts,
    heartbeatInterval: o.heartbeatInterval,
    restartAfterError: o.restartAfterError,
  });
  ini += `\n${section('ipc', { socket: socketPath, ...(o.ipc || {}) })}`;
  const q = o.queue || {};
  // Tests stop dsd many times with the platform away and emits held: one
  // second of flushing at SIGTERM (the product waits 5 s), unless a test
  // says otherwise.
  ini += `\n${section('queue', {
    maxMessages: q.maxMessages,
    maxBytes: q.maxBytes,
    overflow: q.overflow,
    shutdownTimeout: q.shutdownTimeout ?? 1000,
  })}`;
  if (o.extra) ini += `\n${o.extra}\n`;
  return ini;
}

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;
// valgrind memcheck's closing count (leaks of the kinds made errors by
// --errors-for-leak-kinds are counted in it).
const VALGRIND = /^==\d+== ERROR SUMMARY: [1-9]/;

function wrapper() {
  return (process.env.DSD_WRAPPER || '').split(/\s+/).filter(Boolean);
}

function runDsctl(dsctl, socket, args, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const child = execFile(dsctl, ['-s', socket, ...args], { timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        let code = 0;
        if (err) code = typeof err.code === 'number' ? err.code : err.killed ? 'timeout' : -1;
        resolve({ code, stdout, stderr });
      });
    // An empty stdin: `dsctl emit NAME` reads its data from a stdin that is
    // not a terminal, and would wait for this pipe's end.
    child.stdin.end();
  });
}

/*
 * A live `dsctl watch --json`: transitions collects every parsed line;
 * waitFor(pred or state, timeoutMs) resolves with the first match.
 */
function startWatch(dsctl, socket) {
  const transitions = [];
  const junk = [];
  const child = track(spawn(dsctl, ['-s', socket, 'watch', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      transitions.push(JSON.parse(line));
    } catch {
      junk.push(line);
    }
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return {
    transitions,
    junk,
    get stderr() {
      return stderr;
    },
    waitFor(want, timeoutMs = 10000, from = 0) {
      const pred = typeof want === 'function' ? want : (t) => t.state === want;
      return waitUntil(() => transitions.slice(from).find(pred), {
        timeoutMs,
        intervalMs: 10,
        what: `dsctl watch: ${typeof want === 'function' ? 'a matching transition' : `state ${want}`}`,
        detail: () => `transitions: ${JSON.stringify(transitions)}\nstderr: ${stderr}`,
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM');
      await waitExit(child, 5000, `dsctl watch (pid ${child.pid}) to exit`);
    },
  };
}

/*
 * opts: url, auth (object), caFile, certFile, keyFile, proxy,
 * env (more environment variables for dsd), reconnectIntervalIncrement,
 * maxReconnectInterval, maxReconnectAttempts, heartbeatInterval,
 * restartAfterError, queue {maxMessages, maxBytes, overflow}, ipc {extra
 * [ipc] keys}, extra (raw INI text appended), startTimeoutMs (10000),
 * waitReady (true: wait until dsctl status answers), dir (the directory of a
 * stopped dsd: start again with its dsd.conf, socket and log, as a service
 * manager restarts it; the other opts are then ignored), verbose (true: -v;
 * the benchmarks say false, a debug line costs time), wrapper (an argv
 * array to run dsd under instead of DSD_WRAPPER's).
 */
async function startDsd(opts = {}) {
  const o = { startTimeoutMs: 10000, waitReady: true, verbose: true, ...opts };
  const bins = binaries();
  const dir = o.dir || makeTempDir('dsd');
  const socket = path.join(dir, 'dsd.sock');
  const configFile = path.join(dir, 'dsd.conf');
  const logFile = path.join(dir, 'dsd.log');
  if (!o.dir) fs.writeFileSync(configFile, configIni(o, socket));

  const lines = [];
  const logFd = fs.openSync(logFile, 'a');
  const wrap = o.wrapper || wrapper();
  const argv = o.verbose ? ['-f', '-v', '-c', configFile] : ['-f', '-c', configFile];
  const spawnOpts = { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(o.env || {}) } };
  const child = track(wrap.length
    ? spawn(wrap[0], [...wrap.slice(1), bins.dsd, ...argv], spawnOpts)
    : spawn(bins.dsd, argv, spawnOpts));
  const collect = (stream, tag) => {
    readline.createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      try {
        fs.writeSync(logFd, `${tag} ${line}\n`);
      } catch {
        // log file is best-effort debugging output
      }
    });
  };
  collect(child.stdout, 'out');
  collect(child.stderr, 'err');
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => {
    // let readline drain before closing the fd
    setTimeout(() => fs.closeSync(logFd), 100);
  });

  const watchers = [];
  const logTail = (n = 40) => lines.slice(-n).join('\n');
  const alive = () => child.exitCode === null && child.signalCode === null;

  const h = {
    pid: child.pid,
    socket,
    dir,
    configFile,
    logFile,
    lines,
    exited,
    logTail,
    get running() {
      return alive();
    },
    dsctl: (...args) => runDsctl(bins.dsctl, socket, args),
    async status() {
      const r = await runDsctl(bins.dsctl, socket, ['status', '--json']);
      if (r.code !== 0) throw new Error(`dsctl status --json exited ${r.code}: ${r.stderr.trim()}`);
      try {
        return JSON.parse(r.stdout);
      } catch {
        throw new Error(`dsctl status --json printed no JSON: ${JSON.stringify(r.stdout)}`);
      }
    },
    // Polls status until status().state === state.
    async waitState(state, timeoutMs = 10000) {
      let last;
      return waitUntil(
        async () => {
          last = await h.status();
          return last.state === state && last;
        },
        {
          timeoutMs,
          intervalMs: 20,
          what: `dsd state ${state}`,
          detail: () => `last status: ${JSON.stringify(last)}\ndsd log tail:\n${logTail()}`,
        });
    },
    watch() {
      const w = startWatch(bins.dsctl, socket);
      watchers.push(w);
      return w;
    },
    // SIGTERM, wait for exit (SIGKILL after graceMs); resolves {code, signal}.
    // Throws when dsd died of, or printed, a sanitizer report (the suite
    // also runs under ASan + UBSan: a leak at exit must fail the test).
    async stop(graceMs = 5000) {
      for (const w of watchers.splice(0)) await w.stop().catch(() => {});
      if (alive()) process.kill(child.pid, 'SIGTERM');
      try {
        const r = alive()
          ? await waitExit(child, graceMs, `dsd (pid ${child.pid}) to exit after SIGTERM`)
          : { code: child.exitCode, signal: child.signalCode };
        await sleep(50); // the last lines
        const report = lines.find((l) => SANITIZER.test(l));
        if (report) throw new Error(`dsd sanitizer report: ${report}\n${logTail(60)}`);
        const vg = lines.find((l) => VALGRIND.test(l));
        if (vg) throw new Error(`dsd sanitizer report (valgrind memcheck): ${vg}\n${logTail(200)}`);
        // Only memcheck (valgrind's default tool) prints an ERROR SUMMARY.
        const memcheck = !wrap.some((w) => w.startsWith('--tool=') && w !== '--tool=memcheck');
        if (memcheck && wrap.some((w) => path.basename(w) === 'valgrind')) {
          // No summary means valgrind did not finish its checks: not a pass.
          const sums = lines.filter((l) => /^==\d+== .*(SUMMARY|in use at exit|lost:|All heap blocks)/.test(l));
          if (!h.summaryShown) process.stderr.write(`dsd (pid ${child.pid}) under valgrind:\n${sums.join('\n')}\n`);
          h.summaryShown = true;
          if (!sums.some((l) => /ERROR SUMMARY: 0 errors/.test(l))) {
            throw new Error(`dsd sanitizer report (valgrind memcheck): no ERROR SUMMARY\n${logTail(60)}`);
          }
        }
        return r;
      } catch (e) {
        if (!alive()) throw e;
        process.kill(child.pid, 'SIGKILL');
        await waitExit(child, 5000);
        throw new Error(`${e.message}; killed it. dsd log tail:\n${logTail()}`);
      }
    },
    async kill(signal = 'SIGKILL') {
      for (const w of watchers.splice(0)) await w.stop().catch(() => {});
      if (!alive()) return { code: child.exitCode, signal: child.signalCode };
      process.kill(child.pid, signal);
      return waitExit(child, 5000, `dsd (pid ${child.pid}) to exit after ${signal}`);
    },
  };

  if (o.waitReady) {
    const deadline = Date.now() + o.startTimeoutMs;
    for (;;) {
      if (!alive()) {
        await sleep(50); // let the last lines arrive
        throw new Error(
          `dsd exited during start-up (code ${child.exitCode}, signal ${child.signalCode}); ` +
            `config ${configFile}:\n${fs.readFileSync(configFile, 'utf8')}\nlog:\n${logTail()}`);
      }
      if (fs.existsSync(socket)) {
        const r = await runDsctl(bins.dsctl, socket, ['status', '--json'], 2000);
        if (r.code === 0) break;
      }
      if (Date.now() >= deadline) {
        await h.kill();
        throw new Error(
          `dsd did not answer \`dsctl status --json\` on ${socket} within ${o.startTimeoutMs} ms; ` +
            `log:\n${logTail()}`);
      }
      await sleep(20);
    }
  }
  return h;
}

module.exports = { startDsd, buildDir, binaries, configIni };
