'use strict';
// Tests of the test infrastructure itself, with only the real deepstream
// server and the official JS client (no dsd): if these fail, the dsd
// integration tests cannot be trusted either.
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const tls = require('node:tls');
const http = require('node:http');

const { startServer } = require('./lib/server');
const js = require('./lib/jsclient');
const { startProxy } = require('./lib/proxy');
const { makeCerts } = require('./lib/certs');
const { startScripted } = require('./lib/scripted');
const { requirePeer } = require('./lib/peer');
const pb = require('./lib/pb');
const { sleep, waitUntil, withTimeout } = require('./lib/util');

const WebSocket = requirePeer('ws');

// Every client a test opens is closed at the end, pass or fail.
const clients = [];
async function client(url, opts) {
  const c = await js.connect(url, opts);
  clients.push(c);
  return c;
}

function httpGet(port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health-check', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
  });
}

// Opens a TCP connection; resolves 'connected', or the error code.
function tcpTry(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      // reset mode: the RST arrives right after accept
      s.once('error', (e) => resolve(e.code));
      s.once('close', () => resolve('closed'));
      setTimeout(() => {
        s.destroy();
        resolve('connected');
      }, 300);
    });
    s.once('error', (e) => resolve(e.code));
  });
}

// A raw ws-binary client: sends frames, collects what comes back.
async function rawWs(url) {
  const ws = new WebSocket(url);
  const frames = [];
  ws.on('message', (d) => frames.push(Buffer.from(d)));
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 5000, `raw WebSocket open ${url}`);
  return {
    ws,
    frames,
    send: (buf) => ws.send(buf, { binary: true }),
    waitFrames: (n) => waitUntil(() => frames.length >= n && frames, { timeoutMs: 5000, what: `${n} frame(s)` }),
    close: () => ws.terminate(),
  };
}

describe('real server + JS client', () => {
  let server;
  before(async () => {
    server = await startServer({ auth: 'file', heartbeatInterval: 2000 });
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    if (server) await server.stop();
  });

  test('health check answers on the chosen port and the pid is the server', async () => {
    assert.equal(await httpGet(server.port, 2000), 200);
    assert.ok(server.pid > 0);
    process.kill(server.pid, 0); // throws if no such process
  });

  test('file auth: clientData comes back, bad password is refused', async () => {
    const c = await client(server.url, { auth: { username: 'alice', password: 'alice-pw' } });
    assert.equal(c.state, 'OPEN');
    await assert.rejects(
      js.connect(server.url, { auth: { username: 'alice', password: 'wrong' } }),
      /login .* failed: .*INVALID_AUTHENTICATION_DETAILS/);
    const logged = await new Promise((resolve) => {
      const raw = js.create(server.url);
      raw.client.login({ username: 'alice', password: 'alice-pw' }, (ok, data) => {
        raw.close();
        resolve({ ok, data });
      });
    });
    assert.deepEqual(logged, { ok: true, data: { favouriteColor: 'red' } });
  });

  test('one client subscribes, another emits, data arrives in order', async () => {
    const a = await client(server.url, { auth: { username: 'alice', password: 'alice-pw' } });
    const b = await client(server.url, { auth: { username: 'bob', password: 'bob-pw' } });
    const sub = await a.subscribe('news/direct');
    for (let i = 0; i < 5; i++) b.emit('news/direct', { i, s: 'héllo' });
    const got = await sub.waitFor(5);
    assert.deepEqual(got.map((e) => e.data), [0, 1, 2, 3, 4].map((i) => ({ i, s: 'héllo' })));
    await sleep(100);
    assert.equal(sub.events.length, 5, 'no extra events');
  });

  test('the deny rule refuses secret/ events', async () => {
    const a = await client(server.url, { auth: { username: 'carol', password: 'carol-pw' } });
    await a.subscribe('secret/plans');
    const err = await a.waitError('MESSAGE_DENIED', 3000);
    assert.equal(err.topic, 'EVENT');
  });

  test('kill9 then restart on the same port: the JS client reconnects', async () => {
    const a = await client(server.url, {
      auth: { username: 'bob', password: 'bob-pw' },
      options: { reconnectIntervalIncrement: 200, maxReconnectInterval: 500, maxReconnectAttempts: 100 },
    });
    const oldPid = server.pid;
    const port = server.port;
    await server.kill9();
    assert.equal(server.running, false);
    await a.waitState('RECONNECTING', 5000);
    await server.restart();
    assert.equal(server.port, port);
    assert.notEqual(server.pid, oldPid);
    await a.waitState('OPEN', 10000);
  });
});

describe('fault proxy', () => {
  let server;
  let proxy;
  before(async () => {
    server = await startServer({ heartbeatInterval: 2000 });
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    if (proxy) await proxy.close();
    if (server) await server.stop();
  });

  test("'pass' forwards events both ways and counts connections", async () => {
    proxy = await startProxy({ target: { port: server.port } });
    assert.equal(proxy.connections, 0);
    const a = await client(proxy.url, { auth: { username: 'a' } });
    const b = await client(server.url, { auth: { username: 'b' } });
    assert.equal(proxy.connections, 1);
    const subA = await a.subscribe('p/x');
    const subB = await b.subscribe('p/y');
    b.emit('p/x', { to: 'a' });
    a.emit('p/y', { to: 'b' });
    assert.deepEqual((await subA.waitFor(1))[0].data, { to: 'a' });
    assert.deepEqual((await subB.waitFor(1))[0].data, { to: 'b' });
    a.close();
    b.close();
    await proxy.close();
    proxy = null;
  });

  test("'mute-server' starves the JS client's heartbeat; 'pass' lets it back", async () => {
    proxy = await startProxy({ target: { port: server.port } });
    const a = await client(proxy.url, {
      auth: { username: 'muted' },
      options: { heartbeatInterval: 300, reconnectIntervalIncrement: 100, maxReconnectAttempts: 1000 },
    });
    const before = proxy.connections;
    await proxy.mode('mute-server');
    const t0 = Date.now();
    await a.waitError('HEARTBEAT_TIMEOUT', 3000);
    const took = Date.now() - t0;
    // The rule is "silent for more than 2 intervals, checked every interval";
    // the last frame may have arrived up to one interval before the mute.
    assert.ok(took >= 250 && took <= 1500, `heartbeat timeout after ${took} ms`);
    await a.waitState('RECONNECTING', 2000);
    await proxy.mode('pass');
    await a.waitState('OPEN', 5000);
    assert.ok(proxy.connections > before, 'reconnected through the proxy');
    a.close();
    await proxy.close();
    proxy = null;
  });

  test("'reset' accepts and resets, recording each attempt; 'refuse' records nothing", async () => {
    proxy = await startProxy({ target: { port: server.port } });
    await proxy.mode('reset');
    const r1 = await tcpTry(proxy.port);
    const r2 = await tcpTry(proxy.port);
    assert.ok(['ECONNRESET', 'closed'].includes(r1), `got ${r1}`);
    assert.ok(['ECONNRESET', 'closed'].includes(r2), `got ${r2}`);
    assert.equal(proxy.connections, 2);
    assert.equal(proxy.attempts.length, 2);
    assert.ok(proxy.attempts[1].at >= proxy.attempts[0].at);
    assert.ok(proxy.attempts[1].mono > proxy.attempts[0].mono);

    await proxy.mode('refuse');
    assert.equal(await tcpTry(proxy.port), 'ECONNREFUSED');
    assert.equal(proxy.connections, 2, 'a refused connection is not recorded');

    await proxy.mode('pass');
    assert.equal(await httpGet(proxy.port, 2000), 200);
    assert.equal(proxy.connections, 3);
    await proxy.close();
    proxy = null;
  });

  test("'blackhole' keeps sockets open but silent; 'reset-all' kills them", async () => {
    proxy = await startProxy({ target: { port: server.port } });
    const a = await client(proxy.url, {
      auth: { username: 'bh' },
      options: { heartbeatInterval: 60000, reconnectIntervalIncrement: 100, maxReconnectAttempts: 1000 },
    });
    const b = await client(server.url, { auth: { username: 'bh2' } });
    const sub = await a.subscribe('bh/x');
    await proxy.mode('blackhole');
    b.emit('bh/x', 1);
    await assert.rejects(httpGet(proxy.port, 300), /http timeout/);
    assert.equal(sub.events.length, 0, 'nothing forwarded in blackhole');
    assert.equal(a.state, 'OPEN', 'socket still open');
    const beforeReset = proxy.connections;
    await proxy.mode('pass');
    await proxy.mode('reset-all');
    await a.waitState('RECONNECTING', 3000);
    await a.waitState('OPEN', 5000);
    assert.ok(proxy.connections > beforeReset);
    // After reconnecting the JS client re-subscribes on its own.
    await a.sync();
    b.emit('bh/x', 2);
    assert.deepEqual((await sub.waitFor(1)).map((e) => e.data), [2]);
    a.close();
    b.close();
    await proxy.close();
    proxy = null;
  });

  test('TLS proxy: wss:// with the test CA works, an unrelated CA is refused', async () => {
    const certs = makeCerts();
    proxy = await startProxy({ target: { port: server.port }, tls: certs.tls });
    assert.match(proxy.url, /^wss:\/\/127\.0\.0\.1:\d+\/deepstream$/);
    const a = await client(proxy.url, { auth: { username: 'tls' }, options: { socketOptions: { ca: certs.ca } } });
    const b = await client(server.url, { auth: { username: 'plain' } });
    const sub = await a.subscribe('tls/x');
    b.emit('tls/x', { secure: true });
    assert.deepEqual((await sub.waitFor(1))[0].data, { secure: true });
    a.close();
    b.close();

    const err = await new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: certs.otherCa, servername: 'localhost' });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(null);
      });
      s.once('error', resolve);
    });
    assert.ok(err, 'handshake with the wrong CA must fail');
    assert.match(err.code, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);

    // The right CA and the host name localhost (SAN DNS) also verify.
    const ok = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: certs.ca, servername: 'localhost' });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(s.authorized);
      });
      s.once('error', reject);
    });
    assert.equal(ok, true);
    await proxy.close();
    proxy = null;
  });
});

describe('scripted platform', () => {
  let server;
  let scripted;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    if (scripted) await scripted.close();
    if (server) await server.stop();
  });

  test('REDIRECT answers a hand-built CHALLENGE with action 7 and the url', async () => {
    scripted = await startScripted({ answer: 'redirect', redirectUrl: server.url });
    const c = await rawWs(scripted.url);
    c.send(pb.fromHex('06 10 02 1a 02 08 05'));
    const [frame] = await c.waitFrames(1);
    const m = pb.decodeFrame(frame);
    assert.equal(m.topic, pb.TOPIC.CONNECTION);
    assert.equal(m.action, pb.CONNECTION.REDIRECT);
    assert.equal(m.inner[5][0].toString(), server.url);
    const inner = Buffer.concat([Buffer.from([0x08, 0x07, 0x2a, server.url.length]), Buffer.from(server.url)]);
    const outer = Buffer.concat([Buffer.from([0x10, 0x02, 0x1a, inner.length]), inner]);
    assert.equal(pb.hex(frame), pb.hex(Buffer.concat([Buffer.from([outer.length]), outer])));
    assert.equal(scripted.challenges().length, 1);
    c.close();
    await scripted.close();
    scripted = null;
  });

  test('REJECT answers with action 6', async () => {
    scripted = await startScripted({ answer: 'reject' });
    const c = await rawWs(scripted.url);
    c.send(pb.fromHex('06 10 02 1a 02 08 05'));
    const [frame] = await c.waitFrames(1);
    assert.equal(pb.hex(frame), '06 10 02 1a 02 08 06');
    c.close();
    await scripted.close();
    scripted = null;
  });

  test('the JS client follows a scripted REDIRECT to the real server', async () => {
    scripted = await startScripted({ answer: 'redirect', redirectUrl: server.url });
    const a = await client(scripted.url, { auth: { username: 'redirected' } });
    assert.equal(a.state, 'OPEN');
    assert.ok(a.states.some((s) => s.state === 'REDIRECTING'));
    const [ch] = scripted.challenges();
    assert.equal(ch.url, scripted.url, 'the CHALLENGE carries the dialled url');
    const b = await client(server.url, { auth: { username: 'direct' } });
    const sub = await a.subscribe('r/x');
    b.emit('r/x', 'hi');
    assert.deepEqual((await sub.waitFor(1)).map((e) => e.data), ['hi']);
    await scripted.close();
    scripted = null;
  });

  test("'accept' lets a client reach OPEN on the scripted server", async () => {
    scripted = await startScripted({ answer: 'accept' });
    const a = await client(scripted.url, { auth: { username: 'x' } });
    assert.equal(a.state, 'OPEN');
    const auth = scripted.received.find((r) => r.topic === pb.TOPIC.AUTH);
    assert.deepEqual(JSON.parse(auth.data), { username: 'x' });
    a.close();
    await scripted.close();
    scripted = null;
  });
});
