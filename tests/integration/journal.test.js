'use strict';
// The journal: when dsd's stderr is the journal's stream
// ($JOURNAL_STREAM names it, as systemd sets it for a service), every state
// transition is a native journal entry with DSD_STATE=, DSD_PREVIOUS_STATE=,
// DSD_REASON=, DSD_URL= and a MESSAGE_ID= per state entered, so
// `journalctl DSD_STATE=ERROR` finds every failure.
//
// dsd is started by a shell that points stderr at a file and sets
// JOURNAL_STREAM to that file's device:inode, which is what dsd checks
// (log_target_detect()); the entries then go to journald through its
// native socket. Where no journald runs (a container without systemd),
// the journal test is skipped with the reason printed, and a second test
// checks what dsd does then: every line still reaches stderr, in the
// journal's "<N>" form.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');

const { binaries, configIni } = require('./lib/dsd');
const { track } = require('./lib/children');
const { makeTempDir, waitUntil, waitExit, freePort } = require('./lib/util');

const JOURNAL_SOCKET = '/run/systemd/journal/socket';
const ID_ERROR = 'af2293c44ddf4645bcf7f1775b8dda1f';
const ID_OFFLINE = '1c94609ad84e44bbb45d0f16aec0ec76';

// Why the journal cannot be used here, or null when it can.
function journalUnavailable() {
  if (!fs.existsSync(JOURNAL_SOCKET)) return `no journald here (${JOURNAL_SOCKET} is missing)`;
  try {
    execFileSync('journalctl', ['-q', '-n', '1', '--no-pager'], { stdio: 'ignore', timeout: 10000 });
  } catch (e) {
    return `journalctl cannot read the journal (${e.message.split('\n')[0]})`;
  }
  return null;
}

function journalEntries(match) {
  const out = execFileSync('journalctl', ['-q', '--no-pager', '-o', 'json', ...match],
    { encoding: 'utf8', timeout: 10000 });
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// dsd with stderr in a file that JOURNAL_STREAM names; its platform is a
// closed port, so it goes RECONNECTING, then ERROR after one attempt
// (for one reconnect step: 5 s).
async function startJournalDsd(t) {
  const dir = makeTempDir('dsd-journal');
  const socket = path.join(dir, 'dsd.sock');
  const conf = path.join(dir, 'dsd.conf');
  const log = path.join(dir, 'stderr');
  // A port nobody listens on: taken, then given back.
  const port = await freePort();
  fs.writeFileSync(conf, configIni({
    url: `ws://127.0.0.1:${port}/deepstream`,
    maxReconnectAttempts: 1,
    // ERROR after a failed attempt lasts one step: long enough to see.
    reconnectIntervalIncrement: 5000,
  }, socket));
  const script = 'exec 2>>"$1"; JOURNAL_STREAM=$(stat -c %d:%i "$1") exec "$2" -v -c "$3"';
  const child = track(spawn('/bin/sh', ['-c', script, 'sh', log, binaries().dsd, conf],
    { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, JOURNAL_STREAM: '' } }));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM');
    await waitExit(child, 5000).catch(() => {});
  });
  const stderr = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '');
  await waitUntil(() => fs.existsSync(socket), { what: 'the socket of dsd', detail: stderr });
  // SIGTERM; a clean exit, and no sanitizer report (the suite also runs
  // under ASan + UBSan).
  const stop = async () => {
    process.kill(child.pid, 'SIGTERM');
    const r = await waitExit(child, 5000, 'dsd to exit');
    assert.doesNotMatch(stderr(), /Sanitizer|runtime error:/);
    assert.deepEqual(r, { code: 0, signal: null }, stderr());
  };
  return { child, socket, stderr, stop, url: `ws://127.0.0.1:${port}/deepstream` };
}

function dsctl(socket, ...args) {
  return execFileSync(binaries().dsctl, ['-s', socket, ...args], { encoding: 'utf8', timeout: 10000 });
}

async function waitStatus(socket, state) {
  await waitUntil(() => JSON.parse(dsctl(socket, 'status', '--json')).state === state,
    { timeoutMs: 10000, what: `state ${state}` });
}

test('state transitions are journal entries with DSD_* fields and a MESSAGE_ID', async (t) => {
  const why = journalUnavailable();
  if (why) {
    process.stdout.write(`# skipped: ${why}\n`);
    t.skip(why);
    return;
  }
  const d = await startJournalDsd(t);
  await waitStatus(d.socket, 'ERROR');
  dsctl(d.socket, 'pause');
  await waitStatus(d.socket, 'OFFLINE');
  const pid = `_PID=${d.child.pid}`;

  const errors = await waitUntil(() => {
    const e = journalEntries([pid, 'DSD_STATE=ERROR']);
    return e.length > 0 && e;
  }, { timeoutMs: 10000, what: 'DSD_STATE=ERROR in the journal' });
  assert.equal(errors[0].MESSAGE_ID, ID_ERROR);
  assert.match(errors[0].DSD_PREVIOUS_STATE, /^[A-Z_]+$/);
  assert.equal(errors[0].DSD_URL, d.url);
  assert.equal(errors[0].DSD_ERROR_KIND, 'transient');
  assert.equal(errors[0].PRIORITY, '3');
  assert.match(errors[0].MESSAGE, /-> ERROR: /);
  assert.ok(errors[0].DSD_REASON.length > 0);

  // The same entry by its MESSAGE_ID; the pause by its own.
  assert.equal(journalEntries([pid, `MESSAGE_ID=${ID_ERROR}`]).length, errors.length);
  const off = await waitUntil(() => {
    const e = journalEntries([pid, `MESSAGE_ID=${ID_OFFLINE}`]);
    return e.length > 0 && e;
  }, { timeoutMs: 10000, what: 'the OFFLINE entry in the journal' });
  assert.equal(off[0].DSD_STATE, 'OFFLINE');
  assert.equal(off[0].DSD_PREVIOUS_STATE, 'ERROR');
  // Sent natively, so not a second time through the stream.
  assert.doesNotMatch(d.stderr(), /-> OFFLINE/);
  await d.stop();
  const closed = await waitUntil(() => {
    const e = journalEntries([pid, 'DSD_STATE=CLOSED']);
    return e.length > 0 && e;
  }, { timeoutMs: 10000, what: 'the CLOSED entry in the journal' });
  assert.equal(closed[0].DSD_PREVIOUS_STATE, 'OFFLINE');
});

test('without a journald, a journal stream still gets every line', async (t) => {
  if (!journalUnavailable()) {
    t.skip('journald runs here: the lines go to it (the test above)');
    return;
  }
  const d = await startJournalDsd(t);
  await waitStatus(d.socket, 'ERROR');
  dsctl(d.socket, 'pause');
  await waitStatus(d.socket, 'OFFLINE');
  // sd_journal_send() failed, so the line went to stderr in the stream's
  // form: a priority prefix, no timestamp.
  await waitUntil(() => /^<6>ERROR -> OFFLINE: /m.test(d.stderr()),
    { what: 'the OFFLINE line on stderr', detail: d.stderr });
  assert.match(d.stderr(), /^<3>[A-Z_]+ -> ERROR: .*\(transient; /m);
  await d.stop();
  assert.match(d.stderr(), /^<6>OFFLINE -> CLOSED: /m);
});
