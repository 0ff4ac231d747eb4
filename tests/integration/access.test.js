'use strict';
// Access control: dsctl run as unprivileged users (setpriv) against a dsd
// whose socket belongs to group "users".  Who may connect, pause, emit and
// subscribe, the per-uid quotas and the slots kept for admins, with the
// real deepstream server and the official JS client on the far side.
//
// Users and groups: nobody/nogroup and daemon (uid 1, group 1) and the
// group users (100), all present on Debian, so nothing is created.  The
// tests need root (to switch users); without it they are skipped, saying
// why.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { execFile, execFileSync } = require('node:child_process');

const { binaries } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { sleep, waitUntil, freePort } = require('./lib/util');
const { scope } = require('./lib/scope');
const { runTool } = require('./lib/run');

const { later, server, dsd } = scope();

function id(db, name) {
  try {
    return Number(execFileSync('getent', [db, name], { encoding: 'utf8' }).split(':')[2]);
  } catch {
    return undefined;
  }
}

const IDS = { nobody: id('passwd', 'nobody'), daemon: id('passwd', 'daemon'), nogroup: id('group', 'nogroup'),
  daemonGroup: id('group', 'daemon'), users: id('group', 'users') };
const SKIP = (() => {
  if (process.getuid() !== 0) return 'needs root to run dsctl as other users (setpriv)';
  const missing = Object.entries(IDS).filter(([, v]) => !Number.isInteger(v)).map(([k]) => k);
  if (missing.length) return `users/groups missing on this system: ${missing.join(', ')}`;
  try {
    execFileSync('setpriv', ['--version']);
  } catch {
    return 'setpriv (util-linux) not found';
  }
  return false;
})();
if (SKIP) console.log(`# access tests skipped: ${SKIP}`);

// Credentials for setpriv: no supplementary groups but those named.
const AS = {
  // not in the socket's group
  outsider: ['--reuid', `${IDS.nobody}`, '--regid', `${IDS.nogroup}`, '--clear-groups'],
  // in "users" (a supplementary group): may connect, nothing more
  member: ['--reuid', `${IDS.nobody}`, '--regid', `${IDS.nogroup}`, `--groups=${IDS.users}`],
  // in "users" and in the adminGroup "daemon"
  admin: ['--reuid', `${IDS.daemon}`, '--regid', `${IDS.nogroup}`, `--groups=${IDS.users},${IDS.daemonGroup}`],
};

// dsctl as a user; resolves {code, stdout, stderr}.
function dsctlAs(who, d, ...args) {
  const argv = [...AS[who], binaries().dsctl, '-s', d.socket, ...args];
  return new Promise((resolve) => {
    execFile('setpriv', argv, { timeout: 10000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

// A `dsctl watch --json` held open as a user: one connection slot.
async function holdAs(who, d) {
  const argv = who === 'root' ? [binaries().dsctl] : [...AS[who], binaries().dsctl];
  const h = runTool(later, who === 'root' ? argv[0] : 'setpriv', [...argv.slice(who === 'root' ? 1 : 0),
    '-s', d.socket, 'watch', '--json']);
  const { child, lines } = h;
  await waitUntil(() => lines.length > 0 || child.exitCode !== null, { what: `dsctl watch as ${who}` });
  assert.ok(lines.length > 0, `dsctl watch as ${who} did not get in: ${h.stderr}`);
  return child;
}

// dsd with its socket in group "users", reachable by other users.
async function startDsd(opts, extra = '') {
  const d = await dsd({ ...opts, ipc: { socketGroup: 'users', ...(opts.ipc || {}) }, extra });
  fs.chmodSync(d.dir, 0o755); // the socket's mode and group guard it, not the directory
  const st = fs.statSync(d.socket);
  assert.equal(st.gid, IDS.users, 'socketGroup applied');
  assert.equal(st.mode & 0o777, 0o660);
  return d;
}

function offlineUrl() {
  return freePort().then((p) => `ws://127.0.0.1:${p}/deepstream`);
}

test('outside the socket group: connect() is refused by the kernel (EACCES)', { skip: SKIP }, async () => {
  const d = await startDsd({ url: await offlineUrl() });
  const r = await dsctlAs('outsider', d, 'status');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Permission denied/);
  const ok = await dsctlAs('member', d, 'status', '--json');
  assert.equal(ok.code, 0, ok.stderr);
});

test('pause needs an admin: a member gets "permission denied" and nothing changes', { skip: SKIP }, async () => {
  const s = await server({ auth: 'open' });
  const d = await startDsd({ url: s.url, ipc: { adminGroup: 'daemon' } });
  await d.waitState('OPEN');
  const r = await dsctlAs('member', d, 'pause');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /permission denied: pause needs root or group daemon \(adminGroup\)/);
  for (const verb of ['resume', 'reload']) {
    const x = await dsctlAs('member', d, verb);
    assert.match(x.stderr, new RegExp(`permission denied: ${verb} needs root`));
  }
  await sleep(200);
  const st = await d.status();
  assert.equal(st.state, 'OPEN', 'still open');
  assert.equal(st.connection.transitions, (await d.status()).connection.transitions);
  // Logged with the peer's credentials, supplementary groups included.
  assert.ok(d.lines.some((l) => /refused PAUSE: permission denied/.test(l) &&
    l.includes(`uid ${IDS.nobody} gid ${IDS.nogroup} groups ${IDS.users}`)), d.logTail());
  // status and watch stay open to every member.
  assert.equal((await dsctlAs('member', d, 'status')).code, 0);
  // A member of adminGroup (a supplementary group here) may.
  const a = await dsctlAs('admin', d, 'pause');
  assert.equal(a.code, 0, a.stderr);
  await d.waitState('OFFLINE');
  assert.equal((await d.dsctl('resume')).code, 0);
});

test('[acl]: a denied emit never reaches the platform, an allowed one does', { skip: SKIP }, async () => {
  const s = await server({ auth: 'open' });
  const d = await startDsd({ url: s.url }, '[acl]\nemit = users:sensors/*\nsubscribe = users:sensors/*\n');
  await d.waitState('OPEN');
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());
  const secret = await c.subscribe('private/x');
  const sensors = await c.subscribe('sensors/t');

  const denied = await dsctlAs('member', d, 'emit', 'private/x', '{"leak":1}');
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /permission denied: \[acl\] emit allows no group of uid \d+ this name/);
  const sub = await dsctlAs('member', d, 'subscribe', 'private/x');
  assert.notEqual(sub.code, 0);
  assert.match(sub.stderr, /\[acl\] subscribe/);

  const allowed = await dsctlAs('member', d, 'emit', 'sensors/t', '{"t":21}');
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.stdout.trim(), 'confirmed');
  await sensors.waitFor(1);
  assert.deepEqual(sensors.data, [{ t: 21 }]);
  // Same connection, in order: had the denied emit been sent, it would be here.
  await c.sync();
  assert.equal(secret.events.length, 0, 'the denied emit reached the platform');
  const st = await d.status();
  assert.equal(st.emits.sent, 1);
  assert.equal(st.emits.queued, 0);
  assert.equal(st.subscriptions.names, 0, 'the denied subscribe subscribed nothing');
  assert.equal(st.clients.denied, 2, 'the emit and the subscribe');
  // root is not bound by [acl]
  assert.equal((await d.dsctl('emit', 'private/x', '2')).code, 0);
  await secret.waitFor(1);
});

test('per-uid queue quota: one user cannot fill the shared write queue', { skip: SKIP }, async () => {
  // No platform: every emit waits in the queue.
  const d = await startDsd({ url: await offlineUrl(), maxReconnectAttempts: 'infinity',
    queue: { maxBytes: 65536 } }, '[queue]\nmaxBytesPerUser = 4096\n');
  const data = JSON.stringify({ pad: 'x'.repeat(1500) });
  for (let i = 0; i < 2; i++) {
    const r = await dsctlAs('member', d, 'emit', 'q', data);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'queued');
  }
  const r = await dsctlAs('member', d, 'emit', 'q', data);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /quota: uid \d+ has \d+ bytes queued, \d+ more would pass maxBytesPerUser 4096/);
  // Another uid still has its own share.
  const root = await d.dsctl('emit', 'q', data);
  assert.equal(root.code, 0, root.stderr);
  assert.equal((await d.status()).queue.messages, 3);
});

test('per-uid clients quota and the slots reserved for admins', { skip: SKIP }, async () => {
  const d = await startDsd({ url: await offlineUrl(),
    ipc: { maxClients: 3, maxClientsPerUser: 2, reservedAdminClients: 1 } });
  await holdAs('member', d);
  await holdAs('member', d);
  const third = await dsctlAs('member', d, 'status');
  assert.notEqual(third.code, 0);
  assert.match(third.stderr, new RegExp(`too many clients for uid ${IDS.nobody} \\(maxClientsPerUser 2\\)`));
  // Another non-admin uid takes the last ordinary slot; then nobody else
  // but an admin gets in.
  await holdAs('admin', d); // daemon is not an admin here: no adminGroup
  const full = await dsctlAs('admin', d, 'status');
  assert.match(full.stderr, /too many clients \(max 3\)/);
  const r = await d.dsctl('status', '--json');
  assert.equal(r.code, 0, `root was refused: ${r.stderr}`);
  assert.equal(JSON.parse(r.stdout).clients.connected, 4, 'root in the reserved slot');
  // With the reserved slot held, root is refused too.
  await holdAs('root', d);
  const over = await d.dsctl('status');
  assert.match(over.stderr, /too many clients/);
  assert.ok(d.lines.some((l) => /local connection refused \(pid \d+ uid \d+ gid \d+ groups/.test(l)), d.logTail());
});
