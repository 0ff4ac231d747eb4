'use strict';
// The metrics: dsd's status in Prometheus' text format, scraped
// over HTTP ([metrics] listen) and printed by `dsctl metrics`. Both outputs
// pass `promtool check metrics` (Debian's prometheus package), carry the
// same families, and follow the daemon: a pause shows as the OFFLINE gauge,
// emits move the counters, a queued emit shows in the queue and per app.
// The listener serves GET /metrics and nothing else, within its bounds.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const net = require('node:net');
const { execFile, spawn } = require('node:child_process');

const js = require('./lib/jsclient');
const { startDsd, binaries, buildDir } = require('./lib/dsd');
const { runTool } = require('./lib/run');
const { track } = require('./lib/children');
const { freePort, waitUntil, waitExit, makeTempDir } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, server, dsd } = scope();
const PROMTOOL = process.env.DSD_PROMTOOL || '/usr/bin/promtool';
const PROMETHEUS = process.env.DSD_PROMETHEUS || '/usr/bin/prometheus';

function promtool(text) {
  return new Promise((resolve) => {
    const p = execFile(PROMTOOL, ['check', 'metrics'], { encoding: 'utf8', timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, out: `${stdout}${stderr}` });
    });
    p.stdin.end(text);
  });
}

// One HTTP request; resolves {status, headers, body}.
function request(port, { method = 'GET', path = '/metrics', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        data += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// "name{labels} value" lines into a Map of "name{labels}" -> number.
function parse(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

function families(text) {
  return text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
}

// Every family the renderer has for a dsd without a spool, not in ERROR.
const EXPECTED = [
  'dsd_connection_state', 'dsd_connection_transitions_total', 'dsd_platform_info',
  'dsd_connection_state_seconds', 'dsd_connection_attempt', 'dsd_connection_attempts_total',
  'dsd_connection_opens_total', 'dsd_connection_losses_total', 'dsd_connection_frames_received_total',
  'dsd_connection_pings_total', 'dsd_clients', 'dsd_clients_dropped_total', 'dsd_clients_refused_total',
  'dsd_clients_dropped_over_buffer_total', 'dsd_client_buffered_bytes', 'dsd_client_buffer_limit_bytes',
  'dsd_requests_denied_total', 'dsd_subscriptions', 'dsd_subscription_names',
  'dsd_subscription_names_pending', 'dsd_subscription_names_denied', 'dsd_subscription_denials_total',
  'dsd_queue_messages', 'dsd_queue_bytes', 'dsd_queue_unconfirmed_messages', 'dsd_queue_unconfirmed_bytes',
  'dsd_queue_apps', 'dsd_queue_max_messages', 'dsd_queue_max_bytes', 'dsd_send_window_bytes',
  'dsd_send_window_messages', 'dsd_confirm_rate_bytes_per_second', 'dsd_confirm_rate_messages_per_second',
  'dsd_emits_accepted_total',
  'dsd_emits_sent_total', 'dsd_emits_queued_total', 'dsd_emits_confirmed_total', 'dsd_emits_resent_total',
  'dsd_emits_requeued_total', 'dsd_emits_dropped_total', 'dsd_emits_rejected_total',
  'dsd_emits_denied_total', 'dsd_events_received_total', 'dsd_events_delivered_total',
  'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_virtual_memory_bytes',
  'process_open_fds', 'process_max_fds', 'process_start_time_seconds',
  'dsd_queue_app_messages', 'dsd_queue_app_bytes',
];

test('promtool and prometheus are installed', () => {
  for (const bin of [PROMTOOL, PROMETHEUS]) {
    assert.ok(fs.existsSync(bin), `${bin} is missing: install Debian's prometheus package (tools/bootstrap)`);
  }
});

test('the HTTP scrape and dsctl metrics pass promtool and follow state and counters', async () => {
  const s = await server({ auth: 'open' });
  const port = await freePort();
  const d = await dsd({ url: s.url, heartbeatInterval: 1000, extra: `[metrics]\nlisten = 127.0.0.1:${port}` });
  await d.waitState('OPEN');
  const scrape = async () => {
    const r = await request(port);
    assert.equal(r.status, 200, r.body);
    return r;
  };

  // Both outputs pass promtool, with the same families.
  const r = await scrape();
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  let p = await promtool(r.body);
  assert.equal(p.code, 0, `promtool on the HTTP scrape:\n${p.out}\n${r.body}`);
  const cli = await d.dsctl('metrics');
  assert.equal(cli.code, 0, cli.stderr);
  p = await promtool(cli.stdout);
  assert.equal(p.code, 0, `promtool on dsctl metrics:\n${p.out}\n${cli.stdout}`);
  assert.deepEqual(families(cli.stdout), families(r.body));
  for (const f of EXPECTED.filter((n) => !n.startsWith('dsd_queue_app_'))) {
    assert.ok(families(r.body).includes(f), `family ${f} missing:\n${r.body}`);
  }

  let m = parse(r.body);
  assert.equal(m.get('dsd_connection_state{state="OPEN"}'), 1);
  assert.equal(m.get('dsd_connection_state{state="OFFLINE"}'), 0);
  assert.equal(m.get('dsd_connection_transitions_total{state="OPEN"}'), 1);
  assert.equal(m.get(`dsd_platform_info{url="${s.url}",configured_url="${s.url}"}`), 1);
  // Nothing confirmed yet: the send window at its floor, no rate known.
  assert.equal(m.get('dsd_send_window_bytes'), 16384);
  assert.equal(m.get('dsd_send_window_messages'), 128);
  assert.equal(m.get('dsd_confirm_rate_bytes_per_second'), 0);
  assert.equal(m.get('dsd_confirm_rate_messages_per_second'), 0);
  assert.ok(m.get('process_resident_memory_bytes') > 0);
  assert.ok(m.get('process_open_fds') > 0);
  const start = m.get('process_start_time_seconds');
  assert.ok(Math.abs(start - Date.now() / 1000) < 120, `start time ${start}`);

  // Emits while OPEN move accepted and sent; a platform event moves
  // received and delivered (to one local subscriber).
  const c = await js.connect(s.url, { auth: { username: 'js' } });
  later(async () => c.close());
  const got = await c.subscribe('metrics/out');
  const before = m;
  for (let i = 0; i < 3; i++) {
    const e = await d.dsctl('emit', 'metrics/out', `{"i":${i}}`);
    assert.equal(e.code, 0, e.stderr);
  }
  await got.waitFor(3);
  m = parse((await scrape()).body);
  assert.equal(m.get('dsd_emits_accepted_total') - before.get('dsd_emits_accepted_total'), 3);
  assert.equal(m.get('dsd_emits_sent_total') - before.get('dsd_emits_sent_total'), 3);

  const sub = track(spawn(binaries().dsctl, ['-s', d.socket, 'subscribe', '-n', '1', 'metrics/in'],
    { stdio: 'ignore' }));
  later(async () => sub.kill('SIGTERM'));
  await waitUntil(async () => (await d.status()).subscriptions.acked === 1, { what: 'the subscription' });
  m = parse((await scrape()).body);
  assert.equal(m.get('dsd_subscriptions'), 1);
  const received = m.get('dsd_events_received_total');
  const delivered = m.get('dsd_events_delivered_total');
  c.emit('metrics/in', { x: 1 });
  await waitUntil(async () => parse((await scrape()).body).get('dsd_events_delivered_total') === delivered + 1,
    { what: 'dsd_events_delivered_total to move' });
  m = parse((await scrape()).body);
  assert.equal(m.get('dsd_events_received_total'), received + 1);

  // A pause is the OFFLINE gauge; an emit then is queued, in the queue
  // and in its app's queue.
  let e = await d.dsctl('pause');
  assert.equal(e.code, 0, e.stderr);
  await d.waitState('OFFLINE');
  const queuer = track(spawn(binaries().dsctl, ['-s', d.socket, 'emit', 'metrics/out', '{"q":1}'],
    { stdio: 'ignore' }));
  await new Promise((resolve) => queuer.once('exit', resolve));
  const body = (await scrape()).body;
  m = parse(body);
  assert.equal(m.get('dsd_connection_state{state="OFFLINE"}'), 1, body);
  assert.equal(m.get('dsd_connection_state{state="OPEN"}'), 0);
  assert.equal(m.get('dsd_connection_transitions_total{state="OFFLINE"}'), 1);
  assert.equal(m.get('dsd_queue_messages'), 1);
  assert.ok(m.get('dsd_queue_bytes') > 0);
  assert.equal(m.get('dsd_emits_queued_total') - before.get('dsd_emits_queued_total'), 1);
  const apps = [...m].filter(([k]) => k.startsWith('dsd_queue_app_messages{client="'));
  assert.deepEqual(apps.map(([, v]) => v), [1], body);
  p = await promtool(body);
  assert.equal(p.code, 0, `promtool while OFFLINE with a queue:\n${p.out}\n${body}`);
  // That app has gone: its uid and name are unknown. One still connected
  // is labelled with both.
  assert.match(apps[0][0], /,uid="",comm=""}$/);
  const steady = runTool(later, path.join(buildDir(), 'tests', 'dsipc-load'),
    ['-s', d.socket, 'steady', 'metrics/steady', '1', '200', '60000']);
  const uid = process.getuid();
  const mine = await waitUntil(async () => {
    const found = [...parse((await scrape()).body)].find(([k, v]) =>
      k.startsWith('dsd_queue_app_messages{') && k.endsWith(`,uid="${uid}",comm="dsipc-load"}`) && v > 0);
    return found;
  }, { what: 'the steady app in dsd_queue_app_messages', detail: () => steady.stderr });
  assert.match(mine[0], /^dsd_queue_app_messages\{client="\d+",/);
  steady.child.kill('SIGTERM');
  await steady.exited;

  e = await d.dsctl('resume');
  assert.equal(e.code, 0, e.stderr);
  await d.waitState('OPEN');
  await got.waitFor(4);
  await waitUntil(async () => parse((await scrape()).body).get('dsd_queue_messages') === 0,
    { what: 'the queue to drain after resume' });
  m = parse((await scrape()).body);
  assert.equal(m.get('dsd_connection_state{state="OPEN"}'), 1);
  assert.equal(m.get('dsd_connection_transitions_total{state="OPEN"}'), 2);
});

test('the listener serves GET /metrics and nothing else', async () => {
  const s = await server({ auth: 'open' });
  const port = await freePort();
  await dsd({ url: s.url, extra: `[metrics]\nlisten = 127.0.0.1:${port}` });

  assert.equal((await request(port, { path: '/' })).status, 404);
  assert.equal((await request(port, { path: '/metrics/../etc' })).status, 404);
  // Methods other than GET: 501 (libevent's answer to a method it was
  // told not to serve).
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    assert.equal((await request(port, { method })).status, 501, method);
  }
  // No request body is read at all.
  assert.equal((await request(port, { method: 'POST', body: 'x=1' })).status, 413);
  // A request with headers over the 8 KiB limit is refused, not buffered.
  const big = await request(port, { headers: { 'X-Big': 'a'.repeat(16 * 1024) } }).catch((err) => err);
  assert.ok(big instanceof Error || big.status >= 400, `oversized headers: ${big.status}`);
  // Still serving after all that.
  assert.equal((await request(port)).status, 200);

  // An idle connection is closed by dsd (10 s), not kept forever.
  const t0 = Date.now();
  await new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', reject);
    sock.on('close', resolve);
    sock.setTimeout(30000, () => reject(new Error('dsd kept an idle connection for 30 s')));
  });
  const idle = Date.now() - t0;
  assert.ok(idle >= 8000 && idle < 20000, `idle connection closed after ${idle} ms`);
});

test('[metrics] listen changes only on restart: a reload warns and keeps the listener', async () => {
  const s = await server({ auth: 'open' });
  const port = await freePort();
  const d = await dsd({ url: s.url, extra: `[metrics]\nlisten = 127.0.0.1:${port}` });
  const other = await freePort();
  const conf = fs.readFileSync(d.configFile, 'utf8');
  fs.writeFileSync(d.configFile, conf.replace(`listen = 127.0.0.1:${port}`, `listen = 127.0.0.1:${other}`));
  const r = await d.dsctl('reload');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => d.lines.some((l) => /\[metrics\] listen changes only on restart/.test(l)),
    { what: 'the reload warning', detail: () => d.logTail() });
  assert.equal((await request(port)).status, 200);
  await assert.rejects(request(other), /ECONNREFUSED/);
});

test('an address that cannot be bound stops dsd at start', async () => {
  const s = await server({ auth: 'open' });
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve));
  later(async () => taken.close());
  const { port } = taken.address();
  await assert.rejects(
    startDsd({ url: s.url, extra: `[metrics]\nlisten = 127.0.0.1:${port}` }),
    /cannot serve metrics on 127\.0\.0\.1:\d+: Address already in use/);
});

// GET on Prometheus' HTTP API; resolves the parsed "data".
async function promApi(port, what) {
  const r = await request(port, { path: `/api/v1/${what}` });
  assert.equal(r.status, 200, r.body);
  const j = JSON.parse(r.body);
  assert.equal(j.status, 'success', r.body);
  return j.data;
}

test('a real Prometheus server scrapes dsd (OpenMetrics) and sees the state', async () => {
  const s = await server({ auth: 'open' });
  const port = await freePort();
  const d = await dsd({ url: s.url, extra: `[metrics]\nlisten = 127.0.0.1:${port}` });
  await d.waitState('OPEN');

  // What a scraper that asks for OpenMetrics gets.
  const om = await request(port, { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } });
  assert.equal(om.status, 200);
  assert.match(om.headers['content-type'], /^application\/openmetrics-text; version=1\.0\.0/);
  assert.match(om.body, /\n# EOF\n$/);
  assert.match(om.body, /^# TYPE dsd_platform info$/m);

  const dir = makeTempDir('prometheus');
  const web = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  scrape_timeout: 1s',
    'scrape_configs:', '  - job_name: dsd', '    static_configs:', `      - targets: ['127.0.0.1:${port}']`, '',
  ].join('\n'));
  const prom = runTool(later, PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${web}`]);
  later(async () => {
    if (prom.child.exitCode === null) prom.child.kill('SIGTERM');
    await waitExit(prom.child, 10000).catch(() => {});
  });

  // The target is up, without a scrape error...
  let targets;
  await waitUntil(async () => {
    targets = await promApi(web, 'targets').catch(() => null);
    const t = targets && targets.activeTargets.find((a) => a.labels.job === 'dsd');
    return t && t.health === 'up' && t.lastError === '';
  }, { timeoutMs: 30000, intervalMs: 200, what: 'Prometheus to scrape dsd',
    detail: () => `targets: ${JSON.stringify(targets)}\nprometheus: ${prom.stderr.slice(-2000)}` });
  // ...read as OpenMetrics: only there is the platform an info family.
  await waitUntil(async () => {
    const md = await promApi(web, 'metadata?metric=dsd_platform');
    return md.dsd_platform && md.dsd_platform[0].type === 'info';
  }, { timeoutMs: 10000, intervalMs: 200, what: 'the info metadata of dsd_platform' });

  // The state as Prometheus stored it, and a pause seen by the next scrapes.
  const value = async (q) => {
    const r = await promApi(web, `query?query=${encodeURIComponent(q)}`);
    return r.result.length ? Number(r.result[0].value[1]) : undefined;
  };
  assert.equal(await value('dsd_connection_state{state="OPEN"}'), 1);
  assert.equal(await value(`dsd_platform_info{url="${s.url}"}`), 1);
  const e = await d.dsctl('pause');
  assert.equal(e.code, 0, e.stderr);
  await waitUntil(async () => (await value('dsd_connection_state{state="OFFLINE"}')) === 1,
    { timeoutMs: 15000, intervalMs: 200, what: 'Prometheus to see OFFLINE' });
  assert.equal(await value('dsd_connection_state{state="OPEN"}'), 0);
  assert.equal(await value('dsd_connection_transitions_total{state="OFFLINE"}'), 1);
});
