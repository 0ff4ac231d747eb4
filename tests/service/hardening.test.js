'use strict';
/*
 * dsd.service's hardening is something dsd has to survive, and systemd is
 * not PID 1 here, so the unit cannot simply be started. Instead dsd runs a
 * realistic session under strace, and every system call it made is checked
 * against what the unit declares: SystemCallFilter= (expanded by
 * systemd-analyze itself), RestrictAddressFamilies=, MemoryDenyWriteExecute=,
 * NoNewPrivileges= with an empty CapabilityBoundingSet=, LockPersonality=
 * and SystemCallArchitectures=native. The rules are read from the unit, so
 * a change to the unit changes what is checked. The checker is tested first
 * on fabricated strace lines, so a rule that never fires would show.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFile, execFileSync } = require('node:child_process');

const LIB = path.join(__dirname, '..', 'integration', 'lib');
const { binaries, buildDir, configIni } = require(path.join(LIB, 'dsd'));
const js = require(path.join(LIB, 'jsclient'));
const { makeCerts } = require(path.join(LIB, 'certs'));
const { track } = require(path.join(LIB, 'children'));
const { sleep, waitUntil, makeTempDir, waitExit } = require(path.join(LIB, 'util'));
const { scope } = require(path.join(LIB, 'scope'));
const { runTool } = require(path.join(LIB, 'run'));
const chk = require('./strace_check');

const { later, server, proxy } = scope();

// DSD_HARDEN_UNIT: check another unit file (to see the test fail on purpose).
const UNIT = process.env.DSD_HARDEN_UNIT || path.join(__dirname, '..', '..', 'systemd', 'dsd.service.in');

function which(prog) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir || '.', prog);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function analyzeListing() {
  const bin = which('systemd-analyze');
  assert.ok(bin, 'systemd-analyze not found: it comes with the systemd package (tools/bootstrap installs it)');
  // It exits non-zero when it cannot list the kernel's unlisted calls, after
  // printing every group; only an empty listing is a failure.
  let out;
  try {
    out = execFileSync(bin, ['syscall-filter'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = e.stdout || '';
  }
  const groups = chk.parseFilterListing(out);
  assert.ok(groups.has('@system-service'), `systemd-analyze syscall-filter listed no @system-service:\n${out}`);
  return groups;
}

// The policy the unit declares, as sets the checker uses.
function unitPolicy() {
  const unit = chk.parseUnit(fs.readFileSync(UNIT, 'utf8'));
  assert.ok(unit.syscallFilter.length > 0, `${UNIT} has no SystemCallFilter=`);
  return {
    unit,
    allowed: chk.expandGroups(analyzeListing(), unit.syscallFilter),
    families: unit.addressFamilies,
    wx: unit.memoryDenyWriteExecute,
    noPrivilege: unit.noNewPrivileges && Array.isArray(unit.capabilityBoundingSet) &&
      unit.capabilityBoundingSet.length === 0,
  };
}

// A sanitizer runtime makes calls of its own (ptrace for the leak check,
// personality, ...) that no production build makes, and its leak check
// cannot attach to a traced process: the sandbox is checked on plain builds.
function sanitized() {
  try {
    const opts = JSON.parse(fs.readFileSync(path.join(buildDir(), 'meson-info', 'intro-buildoptions.json'), 'utf8'));
    const s = opts.find((o) => o.name === 'b_sanitize');
    return s && s.value !== 'none' ? s.value : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- checker

const FAKE_LISTING = `@default
    # System calls that are always permitted
    brk
    exit_group
    mmap
    mprotect
    execve

@net
    # network
    socket
    connect

@svc
    # both, and one more
    @default
    @net
    read
    openat
    bind
    unlinkat
# Not showing unlisted system calls, couldn't retrieve kernel system call list`;

function fakePolicy() {
  return {
    allowed: chk.expandGroups(chk.parseFilterListing(FAKE_LISTING), ['@svc']),
    families: ['AF_UNIX', 'AF_INET', 'AF_INET6'],
    wx: true,
    noPrivilege: true,
    writable: ['/run/dsd', '/var/lib/dsd'],
  };
}

function fakeCheck(text) {
  const { calls, events } = chk.parseStrace(text);
  return chk.checkSandbox(calls, events, fakePolicy());
}

test('checker: syscall-filter groups expand, nested and repeated', () => {
  const groups = chk.parseFilterListing(FAKE_LISTING);
  assert.deepEqual([...groups.keys()], ['@default', '@net', '@svc']);
  assert.deepEqual([...chk.expandGroups(groups, ['@svc', '@net'])].sort(),
    ['bind', 'brk', 'connect', 'execve', 'exit_group', 'mmap', 'mprotect', 'openat', 'read', 'socket', 'unlinkat']);
  assert.throws(() => chk.expandGroups(groups, ['@nope']), /unknown syscall group @nope/);
});

test('checker: the real @system-service, as systemd-analyze lists it', () => {
  const { allowed } = unitPolicy();
  for (const n of ['read', 'epoll_wait', 'connect', 'clone', 'mmap', 'execve']) assert.ok(allowed.has(n), `${n} allowed`);
  for (const n of ['ptrace', 'mount', 'reboot', 'init_module', 'kexec_load', 'swapon', 'bpf']) {
    assert.ok(!allowed.has(n), `${n} refused by @system-service`);
  }
});

test('checker: the unit parser reads the hardening keys', () => {
  const u = chk.parseUnit('[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=foo bar\n' +
    'RestrictAddressFamilies=AF_UNIX AF_INET\nMemoryDenyWriteExecute=yes\nNoNewPrivileges=true\nCapabilityBoundingSet=\n');
  assert.deepEqual(u.syscallFilter, ['@system-service', 'foo', 'bar']);
  assert.deepEqual(u.addressFamilies, ['AF_UNIX', 'AF_INET']);
  assert.equal(u.memoryDenyWriteExecute, true);
  assert.equal(u.noNewPrivileges, true);
  assert.deepEqual(u.capabilityBoundingSet, []);
  assert.throws(() => chk.parseUnit('SystemCallFilter=~@mount\n'), /deny-list/);
});

test('checker: a clean log passes, unfinished calls are joined', () => {
  const r = fakeCheck([
    '100 execve("/usr/sbin/dsd", ["dsd"], 0x7ffd /* 3 vars */) = 0',
    '100 brk(NULL)                               = 0x55d1',
    '100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00',
    '100 mmap(0x7f10, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000) = 0x7f10',
    '100 mprotect(0x7f20, 4096, PROT_READ)    = 0',
    '100 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3',
    '100 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 4',
    '100 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
    '100 openat(AT_FDCWD, "/dev/urandom", O_RDONLY) = 3',
    '100 bind(6, {sa_family=AF_UNIX, sun_path="/run/dsd/dsd.sock"}, 110) = 0',
    '100 unlinkat(AT_FDCWD, "/run/dsd/dsd.sock", 0) = 0',
    '100 read(3,  <unfinished ...>',
    '100 --- SIGHUP {si_signo=SIGHUP, si_code=SI_USER, si_pid=1, si_uid=0} ---',
    '100 <... read resumed>"x", 1)            = 1',
    '100 exit_group(0)                           = ?',
    '100 +++ exited with 0 +++',
  ].join('\n'));
  assert.deepEqual(r.violations, []);
  assert.deepEqual(r.syscalls, ['bind', 'brk', 'execve', 'exit_group', 'mmap', 'mprotect', 'openat', 'read', 'socket',
    'unlinkat']);
  assert.deepEqual(r.families, ['AF_INET6', 'AF_UNIX']);
});

test('checker: every rule fires on a line that breaks it', () => {
  const cases = [
    ['SystemCallFilter', '7 ptrace(PTRACE_TRACEME) = 0'],
    ['SystemCallFilter', '7 <... keyctl resumed>) = 0'],
    ['RestrictAddressFamilies', '7 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 5'],
    ['RestrictAddressFamilies', '7 socket(AF_NETLINK, SOCK_RAW <unfinished ...>\n8 read(3, "", 1) = 0\n7 <... socket resumed>, 0) = 3'],
    ['RestrictAddressFamilies', '7 socket(AF_PACKET, SOCK_RAW, 768) = -1 EPERM (Operation not permitted)'],
    ['MemoryDenyWriteExecute', '7 mmap(NULL, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00'],
    ['MemoryDenyWriteExecute', '7 mmap(NULL, 4096, 0x6 /* PROT_??? */, MAP_PRIVATE, -1, 0) = 0x7f00'],
    ['MemoryDenyWriteExecute', '7 mprotect(0x7f00, 4096, PROT_READ|PROT_EXEC) = 0'],
    ['MemoryDenyWriteExecute', '7 mprotect(0x7ffd, 4096, PROT_READ|PROT_WRITE|PROT_EXEC|PROT_GROWSDOWN) = 0'],
    ['NoNewPrivileges', '7 execve("/usr/sbin/dsd", ["dsd"], 0x1 /* 1 var */) = 0\n7 execve("/bin/sh", ["sh"], 0x1) = 0'],
    ['CapabilityBoundingSet', '7 setuid(0) = -1 EPERM (Operation not permitted)'],
    ['CapabilityBoundingSet', '7 capset({version=_LINUX_CAPABILITY_VERSION_3, pid=0}, {}) = 0'],
    ['LockPersonality', '7 personality(PER_LINUX32) = 0'],
    ['SystemCallArchitectures', '[ Process PID=7 runs in 32 bit mode. ]'],
    ['ProtectSystem', '7 openat(AT_FDCWD, "/etc/dsd/dsd.conf", O_WRONLY|O_TRUNC) = 3'],
    ['ProtectSystem', '7 openat(AT_FDCWD, "dsd.pid", O_RDWR|O_CREAT, 0644) = 3'],
    ['ProtectSystem', '7 bind(3, {sa_family=AF_UNIX, sun_path="/tmp/dsd.sock"}, 110) = 0'],
    ['ProtectSystem', '7 renameat2(AT_FDCWD, "/run/dsd/a", AT_FDCWD, "/var/tmp/b", 0) = 0'],
    ['ProtectHome', '7 openat(AT_FDCWD, "/home/ann/.dsd", O_RDONLY) = 3'],
    ['PrivateDevices', '7 openat(AT_FDCWD, "/dev/sda", O_RDONLY) = 3'],
  ];
  for (const [rule, text] of cases) {
    const r = fakeCheck(text);
    assert.ok(r.violations.some((v) => v.rule === rule), `${rule} should fire on ${text}: ${JSON.stringify(r.violations)}`);
  }
  // The query is not a change of personality.
  assert.deepEqual(fakeCheck('7 personality(0xffffffff) = 0 (PER_LINUX)').violations
    .filter((v) => v.rule === 'LockPersonality'), []);
});

// ---------------------------------------------------------------- dsd

// A long-running tool (dsctl subscribe, notify-sink): stdout lines.
const run = (bin, args) => runTool(later, bin, args);

/*
 * dsd under `strace -f`, started the way startDsd() starts it (same config
 * format) but wrapped; signals go to dsd itself, not to strace. Resolves
 * once dsd answers dsctl status.
 */
async function startTraced(strace, opts, env) {
  const bins = binaries();
  const dir = makeTempDir('dsd-harden');
  const socket = path.join(dir, 'dsd.sock');
  const configFile = path.join(dir, 'dsd.conf');
  const traceFile = path.join(dir, 'strace.log');
  fs.writeFileSync(configFile, configIni(opts, socket));
  const child = track(spawn(strace, ['-f', '-qq', '-s', '256', '-e', 'trace=all', '-o', traceFile,
    bins.dsd, '-f', '-v', '-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  }));
  const lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  readline.createInterface({ input: child.stderr }).on('line', (l) => lines.push(l));
  const logTail = () => lines.slice(-40).join('\n');
  const alive = () => child.exitCode === null && child.signalCode === null;

  // strace forks short-lived probes of its own before dsd: dsd is the
  // child whose executable is the dsd binary (after its execve).
  const dsdExe = fs.realpathSync(bins.dsd);
  const pid = await waitUntil(() => {
    if (!alive()) throw new Error(`strace exited (${child.exitCode}) before dsd started:\n${logTail()}`);
    let kids = [];
    try {
      kids = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/);
    } catch {
      return 0;
    }
    return Number(kids.find((k) => {
      try {
        return k && fs.readlinkSync(`/proc/${k}/exe`) === dsdExe;
      } catch {
        return false;
      }
    }) || 0);
  }, { timeoutMs: 10000, what: 'strace to start dsd' });

  const dsctl = (...args) => new Promise((resolve) => {
    execFile(bins.dsctl, ['-s', socket, ...args], { timeout: 10000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
  const h = {
    pid,
    dir,
    socket,
    configFile,
    traceFile,
    lines,
    logTail,
    dsctl,
    async status() {
      const r = await dsctl('status', '--json');
      if (r.code !== 0) throw new Error(`dsctl status --json exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async waitStatus(pred, what, timeoutMs = 15000) {
      let last;
      return waitUntil(async () => {
        last = await h.status();
        return pred(last) && last;
      }, { timeoutMs, intervalMs: 50, what, detail: () => `last status: ${JSON.stringify(last)}\nlog:\n${logTail()}` });
    },
    signal(sig) {
      process.kill(pid, sig);
    },
    // strace exits as its tracee did: its status is dsd's.
    async stop() {
      if (alive()) process.kill(pid, 'SIGTERM');
      return waitExit(child, 15000, `dsd (pid ${pid}, traced) to exit after SIGTERM`);
    },
  };
  later(async () => {
    if (alive()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      await waitExit(child, 5000).catch(() => {});
    }
  });
  await waitUntil(async () => {
    if (!alive()) throw new Error(`dsd exited during start-up under strace:\n${logTail()}`);
    return (await dsctl('status', '--json')).code === 0;
  }, { timeoutMs: 20000, intervalMs: 50, what: 'traced dsd to answer dsctl status', detail: logTail });
  return h;
}

test('dsd stays inside the sandbox dsd.service declares, through a whole session', async (t) => {
  const san = sanitized();
  if (san) {
    t.skip(`b_sanitize=${san}: the sanitizer runtime's own calls are not dsd's; checked on the plain build`);
    return;
  }
  const strace = which('strace');
  assert.ok(strace, 'strace not found: this test needs it (add `strace` to APT_PACKAGES in tools/bootstrap)');
  const policy = unitPolicy();

  const certs = makeCerts();
  const s = await server({ auth: 'open' });
  const p = await proxy({ target: { port: s.port }, tls: certs.tls });

  // systemd's side of Type=notify and WatchdogSec=, as service.test.js does it.
  const notifyDir = makeTempDir('harden-notify');
  const notifySock = path.join(notifyDir, 'notify.sock');
  const sink = run(path.join(buildDir(), 'tests', 'notify-sink'), [notifySock]);
  await waitUntil(() => sink.lines.includes('ready'), { what: 'the notify sink', detail: () => sink.stderr });

  // caFile is read at start only (a reload keeps the TLS context).
  // By name, as an operator would write it: the lookup goes through NSS
  // (nsswitch.conf, /etc/hosts) like in production. The test certificate
  // is valid for localhost.
  const byName = (url) => url.replace('127.0.0.1', 'localhost');
  const opts = { url: byName(s.url), caFile: certs.caFile, heartbeatInterval: 200, reconnectIntervalIncrement: 200 };
  const d = await startTraced(strace, opts, { NOTIFY_SOCKET: notifySock, WATCHDOG_USEC: '1000000' });
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());

  // Plain ws://, open auth: OPEN, pings, a local subscriber and both emits.
  await d.waitStatus((st) => st.state === 'OPEN', 'state OPEN');
  const local = run(binaries().dsctl, ['-s', d.socket, 'subscribe', '--json', 'harden/ev']);
  await d.waitStatus((st) => st.subscriptions.acked === 1 && st.subscriptions.local === 1, 'the subscription acked');
  const remote = await c.subscribe('harden/ev');
  let r = await d.dsctl('emit', 'harden/ev', '{"from":"dsctl"}');
  assert.equal(r.code, 0, r.stderr);
  await remote.waitFor(1);
  c.emit('harden/ev', { from: 'js' });
  await waitUntil(() => local.lines.length >= 2, { what: 'both events at the local subscriber',
    detail: () => local.lines.join('\n') + local.stderr });
  assert.deepEqual(local.lines.map((l) => JSON.parse(l).data), [{ from: 'dsctl' }, { from: 'js' }]);
  const pings0 = (await d.status()).connection.pings;
  await d.waitStatus((st) => st.connection.pings >= pings0 + 3, 'three heartbeat PINGs');

  // Pause and resume: a close and a fresh connection.
  assert.equal((await d.dsctl('pause')).code, 0);
  await d.waitStatus((st) => st.state === 'OFFLINE', 'state OFFLINE after pause');
  assert.equal((await d.dsctl('resume')).code, 0);
  await d.waitStatus((st) => st.state === 'OPEN', 'state OPEN after resume');

  // SIGHUP with a new URL: wss:// through the TLS proxy with the test CA.
  fs.writeFileSync(d.configFile, configIni({ ...opts, url: byName(p.url) }, d.socket));
  d.signal('SIGHUP');
  await d.waitStatus((st) => st.state === 'OPEN' && st.url === byName(p.url), 'OPEN over wss:// after SIGHUP');
  assert.ok(p.connections >= 1, 'dsd went through the TLS proxy');
  r = await d.dsctl('emit', 'harden/ev', '{"over":"tls"}');
  assert.equal(r.code, 0, r.stderr);
  await remote.waitFor(2);
  c.emit('harden/ev', { back: 'tls' });
  await waitUntil(() => local.lines.length >= 4, { what: 'the events over wss://', detail: () => local.lines.join('\n') });
  const pings1 = (await d.status()).connection.pings;
  await d.waitStatus((st) => st.connection.pings >= pings1 + 3, 'three PINGs over wss://');
  assert.ok(sink.lines.some((l) => /WATCHDOG=1/.test(l)), `WATCHDOG=1 sent: ${sink.lines.join('\n')}`);

  const exit = await d.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `dsd exit under strace; log:\n${d.logTail()}`);

  const text = fs.readFileSync(d.traceFile, 'utf8');
  const { calls, events } = chk.parseStrace(text);
  assert.ok(calls.length > 100, `strace logged ${calls.length} calls: ${d.traceFile}`);
  assert.match(calls[0].line, /execve\(/, 'the trace starts at dsd\'s execve');
  // The test's directory stands in for RuntimeDirectory=dsd (/run/dsd):
  // the socket is dsd's only file, and nothing else may be written.
  const res = chk.checkSandbox(calls, events, { ...policy, writable: [d.dir] });
  t.diagnostic(`syscalls used (${res.syscalls.length}): ${res.syscalls.join(' ')}`);
  t.diagnostic(`socket families: ${res.families.join(' ')}`);
  const report = res.violations.map((v) => `${v.rule}: ${v.why}\n    ${v.line}`).join('\n');
  assert.deepEqual(res.violations, [], `dsd left the sandbox of ${path.basename(UNIT)}:\n${report}\ntrace: ${d.traceFile}`);

  // RestrictNamespaces= cannot inspect clone3()'s flags, so systemd makes
  // clone3 fail with ENOSYS and glibc starts threads with clone() instead:
  // that one has to be allowed as well.
  if (policy.unit.restrictNamespaces && res.syscalls.includes('clone3')) {
    assert.ok(policy.allowed.has('clone'), 'clone3 is refused under RestrictNamespaces=: clone must be allowed');
  }
  // The log was really read: the same trace breaks a narrower sandbox.
  const narrower = chk.checkSandbox(calls, events, {
    allowed: new Set([...policy.allowed].filter((n) => n !== 'connect')),
    families: ['AF_UNIX'],
  });
  assert.ok(narrower.violations.some((v) => v.rule === 'SystemCallFilter' && /^connect /.test(v.why)));
  assert.ok(narrower.violations.some((v) => v.rule === 'RestrictAddressFamilies' && /AF_INET/.test(v.why)));
});
