'use strict';
// dsctl as a command-line tool: emit's data from an argument, stdin, a file
// or one event per line (--raw for text), what each command says about its
// usage, and readable output of status, watch and subscribe --json. The
// JS client on the platform side shows what was really emitted.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { binaries } = require('./lib/dsd');
const js = require('./lib/jsclient');
const { makeTempDir, sleep, waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');
const { runTool } = require('./lib/run');

const { later, server, dsd } = scope();

// A tool run to its end: {code, lines (stdout), stdout, stderr}. opts.input
// is written to its stdin (else stdin is /dev/null).
async function runToEnd(bin, args, opts = {}) {
  const h = runTool(later, bin, args, opts);
  const code = await h.exited;
  // Every stdout line read: the pipe closed, then readline's last 'line'.
  if (!h.child.stdout.closed) await new Promise((resolve) => h.child.stdout.once('close', resolve));
  await new Promise(setImmediate);
  return { code, lines: h.lines, stdout: h.lines.join('\n'), stderr: h.stderr };
}
const dsctl = (args, opts) => runToEnd(binaries().dsctl, args, opts);

// A dsd OPEN to a real server and a JS client subscribed to name there.
async function platform(name) {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());
  const got = await c.subscribe(name);
  return { s, d, c, got, on: (...args) => dsctl(['-s', d.socket, ...args]),
    with: (input, ...args) => dsctl(['-s', d.socket, ...args], { input }) };
}

test('emit reads its data from stdin, -f FILE, or the argument', async () => {
  const p = await platform('in');
  // Before: the piped data was ignored and an event without data went out.
  let r = await p.with('{"x":1}\n', 'emit', 'in');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines, ['confirmed']);
  await p.got.waitFor(1);
  assert.deepEqual(p.got.data[0], { x: 1 });

  const file = path.join(makeTempDir('dsctl'), 'data.json');
  fs.writeFileSync(file, '{\n  "from": "file",\n  "n": [1, 2]\n}\n');
  r = await p.on('emit', '-f', file, 'in');
  assert.equal(r.code, 0, r.stderr);
  r = await p.with('{"from":"dash"}', 'emit', '-f', '-', 'in');
  assert.equal(r.code, 0, r.stderr);
  r = await p.with('ignored: the argument wins', 'emit', 'in', '"arg"');
  assert.equal(r.code, 0, r.stderr);
  await p.got.waitFor(4);
  assert.deepEqual(p.got.data.slice(1, 4), [{ from: 'file', n: [1, 2] }, { from: 'dash' }, 'arg']);
});

test('emit: empty stdin, --no-data and /dev/null mean an event without data', async () => {
  const p = await platform('none');
  const local = runTool(later, binaries().dsctl, ['-s', p.d.socket, 'subscribe', '--json', 'none']);
  await waitUntil(async () => (await p.d.status()).subscriptions.local === 1, { what: 'the local subscriber' });
  assert.equal((await p.with('', 'emit', 'none')).code, 0);
  assert.equal((await p.with(' \n\n', 'emit', 'none')).code, 0);
  assert.equal((await p.on('emit', 'none')).code, 0); // stdin is /dev/null
  assert.equal((await p.with('{"never":"read"}', 'emit', '--no-data', 'none')).code, 0);
  assert.equal((await p.on('emit', 'none', 'null')).code, 0);
  await p.got.waitFor(5);
  assert.deepEqual(p.got.data.slice(0, 4), [undefined, undefined, undefined, undefined]);
  // subscribe --json tells "no data" (no key) apart from null data.
  await waitUntil(() => local.lines.length === 5, { what: 'five local events' });
  assert.deepEqual(local.lines.map((l) => JSON.parse(l)), [
    { name: 'none' }, { name: 'none' }, { name: 'none' }, { name: 'none' }, { name: 'none', data: null }]);
});

test('emit -l: one event per line, each reported, a bad line named and the rest sent', async () => {
  const p = await platform('lines');
  const input = '{"n":1}\n\n{"n":2,}\r\n  {"n":3}\n[4]';
  const r = await p.with(input, 'emit', '-l', 'lines');
  assert.equal(r.code, 1, 'one line failed: status 1');
  assert.deepEqual(r.lines, ['line 1: confirmed', 'line 4: confirmed', 'line 5: confirmed']);
  assert.match(r.stderr, /^dsctl: emit: line 3: invalid JSON at column 8: .+$/m);
  await p.got.waitFor(3);
  await sleep(200); // nothing else arrives
  assert.deepEqual(p.got.data, [{ n: 1 }, { n: 3 }, [4]]);
  const ok = await p.with('1\n2\n', 'emit', '--lines', 'lines');
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.lines, ['line 1: confirmed', 'line 2: confirmed']);
});

test('emit: bad JSON on stdin is refused with its line, nothing is sent', async () => {
  const p = await platform('bad');
  const r = await p.with('{\n  "a": 1,\n  "a": 2\n}\n', 'emit', 'bad');
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, []);
  assert.match(r.stderr, /dsctl: emit: stdin: invalid JSON at line 3, column \d+: duplicate object key/);
  const f = await p.with('{"a":', 'emit', 'bad');
  assert.match(f.stderr, /stdin: invalid JSON at line 1/);
  const arg = await p.on('emit', 'bad', '{x}');
  assert.equal(arg.code, 1);
  assert.match(arg.stderr, /argument: invalid JSON/);
  await sleep(300);
  assert.equal(p.got.data.length, 0);
  assert.equal((await p.d.status()).emits.accepted, 0);
});

test('emit --raw sends text as a JSON string', async () => {
  const p = await platform('raw');
  let r = await p.with('hello "world"\n', 'emit', '--raw', 'raw');
  assert.equal(r.code, 0, r.stderr);
  r = await p.on('emit', '-r', 'raw', '{not json}');
  assert.equal(r.code, 0, r.stderr);
  r = await p.with('a\n\nb\\c\n', 'emit', '-l', '--raw', 'raw');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines, ['line 1: confirmed', 'line 3: confirmed']);
  await p.got.waitFor(4);
  assert.deepEqual(p.got.data, ['hello "world"', '{not json}', 'a', 'b\\c']);
});

test('versions, help texts and usage errors', async () => {
  const bins = binaries();
  const v = await dsctl(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^dsctl \d+\.\d+\.\d+$/);
  const dv = await dsctl(['-V']);
  assert.equal(dv.stdout, v.stdout);
  const dsdV = await runToEnd(bins.dsd, ['--version']);
  assert.equal(dsdV.code, 0);
  assert.equal(dsdV.stdout, v.stdout.replace('dsctl', 'dsd'), 'dsd and dsctl are one version');
  const dsdH = await runToEnd(bins.dsd, ['--help']);
  assert.equal(dsdH.code, 0);
  assert.match(dsdH.stdout, /^usage: dsd .*\n.*-c FILE/);

  for (const cmd of ['status', 'watch', 'pause', 'resume', 'reload', 'emit', 'subscribe']) {
    const h = await dsctl([cmd, '--help']);
    assert.equal(h.code, 0, `${cmd} --help`);
    assert.match(h.lines[0], new RegExp(`^usage: dsctl \\[-s SOCKET\\] ${cmd}\\b`));
    assert.ok(!h.stdout.includes('Commands:'), `${cmd} --help is about ${cmd} only`);
    const viaHelp = await dsctl(['help', cmd]);
    assert.equal(viaHelp.stdout, h.stdout);
  }
  const missing = [
    [['emit'], /dsctl emit: missing NAME/],
    [['subscribe', '--json'], /dsctl subscribe: missing NAME/],
    [['pause', 'now'], /dsctl pause: unexpected argument: now/],
    [['emit', '-f'], /dsctl emit: option -f needs an argument/],
    [['status', '--raw'], /dsctl status: unknown option: --raw/],
    [['emit', '-l', 'x', '1'], /-l reads lines/],
    [['emit', '-f', '/dev/null', 'x', '1'], /DATA and -f FILE/],
    [[], /dsctl: missing COMMAND/],
  ];
  for (const [args, want] of missing) {
    const r = await dsctl(['-s', '/nonexistent/dsd.sock', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.match(r.stderr, /usage: dsctl/);
  }
});

// The label of a human status line ("  Attempts made:" -> "Attempts made").
const label = (line) => line.replace(/^\s*(- )?/, '').split(':')[0];

test('status: every line has a readable label, durations are human', async () => {
  const s = await server({ auth: 'open' });
  // A short heartbeat: the connection counts as held after 300 ms.
  const d = await dsd({ url: s.url, heartbeatInterval: 300, maxReconnectAttempts: 5 });
  await d.waitState('OPEN');
  await waitUntil(async () => (await d.status()).attempt === 0, { what: 'the connection to hold' });
  const st = await d.status();
  const r = await dsctl(['-s', d.socket, 'status']);
  assert.equal(r.code, 0, r.stderr);
  const keys = new Set();
  const walk = (o) => {
    for (const [k, v] of Object.entries(o)) {
      keys.add(k);
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v);
    }
  };
  walk(st);
  for (const line of r.lines) {
    const l = label(line);
    assert.match(line, /^\s*[A-Z][^:]*:( |$)/, `a label: ${line}`);
    assert.ok(!/[a-z][A-Z]/.test(l), `no camelCase key as a label: ${line}`);
    assert.ok(!keys.has(l) || /^[A-Z]/.test(l), `no raw key: ${line}`);
  }
  assert.match(r.stdout, /^Up for: +\d+(\.\d)?s$|^Up for: +\d+ms$/m);
  assert.match(r.stdout, /^State: +OPEN since \S+Z \(\d+(\.\d)?m?s ago\)$/m);
  // attempt 0 with maxAttempts 5 is not "0 of 5" (out of retries).
  assert.ok(!/0 of 5/.test(r.stdout), r.stdout);
  assert.match(r.stdout, /^Attempt: +none since the connection held \(up to 5 in a row\)$/m);
  assert.match(r.stdout, /^ {2}Limit, size: +64 MiB$/m);
  assert.match(r.stdout, /^ {2}Spool: +none \(memory only\)$/m);
  // ws:// without a proxy runs on dsd's main loop; nothing confirmed
  // yet: the send window at its floor, no rate measured.
  assert.equal(st.transport, 'main loop');
  assert.deepEqual(st.queue.window, { bytes: 16384, messages: 128,
    confirmedBytesPerSecond: 0, confirmedMessagesPerSecond: 0 });
  assert.match(r.stdout, /^URL: +\S+\nTransport: +main loop$/m);
  assert.match(r.stdout, /^ {2}Send window:\n {4}Size: +16 KiB\n {4}Messages: +128\n/m);
  assert.match(r.stdout, /^ {4}Confirmed, size: +not measured yet$/m);
  // Values line up in one column, nested or not.
  const cols = new Set(r.lines.filter((l) => /: +\S/.test(l) && !/^\s*- /.test(l))
    .map((l) => l.indexOf(l.match(/: +(\S)/)[1], l.indexOf(':'))));
  assert.equal(cols.size, 1, `one value column: ${[...cols]}\n${r.stdout}`);
});

test('watch: the reasons line up in one column', async () => {
  const s = await server({ auth: 'open' });
  const d = await dsd({ url: s.url });
  await d.waitState('OPEN');
  const w = runTool(later, binaries().dsctl, ['-s', d.socket, 'watch']);
  await waitUntil(() => w.lines.length === 1, { what: 'the first watch line' });
  assert.equal((await d.dsctl('pause')).code, 0);
  assert.equal((await d.dsctl('resume')).code, 0);
  await waitUntil(() => w.lines.some((l) => /\bOPEN\b/.test(l)) && w.lines.length >= 5,
    { what: 'OFFLINE, then back to OPEN', detail: () => w.lines.join('\n') });
  // "<time>  <STATE padded>  <reason>": the reason starts in one column.
  const starts = w.lines.map((l) => {
    const m = l.match(/^(\S+Z +[A-Z_]+ +)\S/);
    assert.ok(m, `time, state, reason: ${l}`);
    return m[1].length;
  });
  assert.equal(new Set(starts).size, 1, w.lines.join('\n'));
});
