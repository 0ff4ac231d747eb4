'use strict';
// dsd's own WebSocket handling (a ws:// connection without a proxy is
// carried raw by libwebsockets; dsd speaks the upgrade and reads the frames
// itself) against a real WebSocket server, the `ws` library under the
// scripted platform, doing what deepstream 7.0.2 never does on its own:
// PINGs, fragmented messages, a close with its own code, a masked frame.
// Where ws would not misbehave enough, a test takes the socket over
// (takeOver: silent after dsd's close frame, a close code no endpoint may
// send, a paused reader) or speaks the upgrade by hand (handServer).
const { test } = require('node:test');
const assert = require('node:assert/strict');

const { startScripted } = require('./lib/scripted');
const { binaries } = require('./lib/dsd');
const pb = require('./lib/pb');
const { waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');
const { runTool } = require('./lib/run');
const net = require('node:net');
const crypto = require('node:crypto');

const { later, dsd } = scope();

async function openOn(opts = {}) {
  const sp = await startScripted(opts);
  later(() => sp.close());
  const d = await dsd({ url: sp.url, heartbeatInterval: 30000, ...opts.dsd });
  await d.waitState('OPEN');
  return { sp, d };
}

const EMIT = 2;
function emitFrame(name, data) {
  return pb.encodeFrame(pb.TOPIC.EVENT, [[1, 'varint', EMIT], [6, 'bytes', name], [2, 'bytes', data]]);
}

test('a PING from the server is answered with a PONG carrying its payload', async () => {
  const { sp } = await openOn();
  const ws = sp.live();
  const pongs = [];
  ws.on('pong', (b) => pongs.push(b.toString()));
  ws.ping('are you there');
  await waitUntil(() => pongs.length === 1, { what: 'the first PONG' });
  ws.ping('');
  await waitUntil(() => pongs.length === 2, { what: 'the second PONG' });
  assert.deepEqual(pongs, ['are you there', '']);
  // Two PINGs before dsd answers: RFC 6455 allows one PONG for the last.
  ws.ping('a');
  ws.ping('b');
  await waitUntil(() => pongs.at(-1) === 'b', { what: 'the PONG of the last PING' });
});

test('a message in fragments, with a PING between them, arrives whole and in order', async () => {
  const { sp, d } = await openOn();
  const local = runTool(later, binaries().dsctl, ['-s', d.socket, 'subscribe', '--json', 'frag']);
  await waitUntil(async () => (await d.status()).subscriptions.local === 1, { what: 'the local subscriber' });
  const ws = sp.live();
  const big = JSON.stringify({ s: 'x'.repeat(100000) });
  const frame = emitFrame('frag', big);
  // Three fragments of one binary message, a PING inside, then a small
  // message in one frame that must come after it.
  const cut1 = 7, cut2 = 60000;
  ws.send(frame.subarray(0, cut1), { binary: true, fin: false });
  ws.ping('mid');
  ws.send(frame.subarray(cut1, cut2), { binary: true, fin: false });
  ws.send(frame.subarray(cut2), { binary: true, fin: true });
  ws.send(emitFrame('frag', '{"after":1}'), { binary: true });
  await waitUntil(() => local.lines.length === 2, { what: 'two local events' });
  const got = local.lines.map((l) => JSON.parse(l));
  assert.equal(got[0].data.s.length, 100000);
  assert.deepEqual(got[1], { name: 'frag', data: { after: 1 } });
});

test('the server closes with its own code: dsd answers with it and says why', async () => {
  const { sp, d } = await openOn();
  const w = d.watch();
  sp.live().close(4000, 'maintenance');
  const t = await w.waitFor('RECONNECTING', 5000);
  assert.match(t.reason, /closed by server \(code 4000, "maintenance"\)/);
  // The ws library reports the code of the close frame dsd sent back.
  await waitUntil(() => sp.closes.length >= 1, { what: 'the close at the server' });
  assert.equal(sp.closes[0].code, 4000);
});

test('a masked frame from the server is a protocol error: dsd closes with 1002', async () => {
  const { sp, d } = await openOn();
  const w = d.watch();
  // A server must never mask; written under the ws library, as raw bytes.
  sp.live()._socket.write(Buffer.from([0x82, 0x81, 1, 2, 3, 4, 0x78 ^ 1]));
  const t = await w.waitFor('RECONNECTING', 5000);
  assert.match(t.reason, /masked frame from the server/);
  await waitUntil(() => sp.closes.length >= 1, { what: 'the close at the server' });
  assert.equal(sp.closes[0].code, 1002);
});

test('dsd closes deliberately (pause) with a close frame of code 1000', async () => {
  const { sp, d } = await openOn();
  const r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OFFLINE');
  await waitUntil(() => sp.closes.length >= 1, { what: 'the close at the server' });
  assert.equal(sp.closes[0].code, 1000);
});

// Takes the newest connection away from the ws library: from here on the
// test reads dsd's frames itself (unmasked into {op, payload}) and writes
// raw bytes, so it can do what ws never would (stay silent after dsd's close
// frame, send a close code no endpoint may send).
function takeOver(sp) {
  const sock = sp.live()._socket;
  sock.removeAllListeners('data');
  // Still a deepstream platform: a PING (dsd sends one after emits, to
  // learn they arrived) gets its PONG.
  const pong = pb.connectionFrame(pb.CONNECTION.PONG);
  return readFrames(sock, undefined, (f) => {
    if (f.op !== 2) return;
    try {
      const m = pb.decodeFrame(f.payload);
      if (m.topic === pb.TOPIC.CONNECTION && m.action === pb.CONNECTION.PING) {
        sock.write(Buffer.concat([Buffer.from([0x82, pong.length]), pong]));
      }
    } catch {
      // not a deepstream message: nothing to answer
    }
  });
}

// dsd's frames on sock, from now on, and a way to write raw bytes to it.
function readFrames(sock, head = Buffer.alloc(0), onFrame = null) {
  const frames = [];
  let buf = Buffer.alloc(0);
  let ended = false;
  sock.on('end', () => { ended = true; });
  sock.on('close', () => { ended = true; });
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = buf[1] & 0x80;
      if (buf.length < off + (masked ? 4 : 0) + len) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      off += masked ? 4 : 0;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (mask) for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
      frames.push({ op: buf[0] & 0x0f, payload });
      buf = buf.subarray(off + len);
      if (onFrame) onFrame(frames.at(-1));
    }
  };
  sock.on('data', onData);
  if (head.length) onData(head);
  return {
    frames,
    closes: () => frames.filter((f) => f.op === 8),
    ended: () => ended,
    write: (bytes) => sock.write(Buffer.from(bytes)),
  };
}

test('after its own close frame dsd waits for the server\'s, even when a PING comes first', async () => {
  const { sp, d } = await openOn();
  const raw = takeOver(sp);
  const r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => raw.closes().length === 1, { what: 'dsd\'s close frame' });
  assert.equal(raw.closes()[0].payload.readUInt16BE(0), 1000);
  // The server had not seen the close yet when it pinged.
  raw.write([0x89, 0x01, 0x70]);
  await new Promise((res) => setTimeout(res, 500));
  assert.equal(raw.ended(), false, 'dsd dropped the connection before the server\'s close frame');
  raw.write([0x88, 0x02, 0x03, 0xe8]);
  await waitUntil(() => raw.ended(), { what: 'dsd to end the connection after the close handshake' });
  assert.equal(raw.closes().length, 1, 'one close frame from dsd');
});

test('a close frame with a code no endpoint may send (1005) is a protocol error, not echoed', async () => {
  const { sp, d } = await openOn();
  const w = d.watch();
  const raw = takeOver(sp);
  raw.write([0x88, 0x02, 0x03, 0xed]);
  await waitUntil(() => raw.closes().length === 1, { what: 'dsd\'s close frame' });
  assert.equal(raw.closes()[0].payload.readUInt16BE(0), 1002);
  // A failed connection is not held open for the server's answer (which
  // dsd would no longer read): the TCP connection ends at once, not after
  // the 5 s a close handshake gets.
  await waitUntil(() => raw.ended(), { timeoutMs: 2500, what: 'dsd to end the connection' });
  const t = await w.waitFor('RECONNECTING', 5000);
  assert.match(t.reason, /close frame with the invalid code 1005/);
});

// A WebSocket server by hand (node:net): it reads dsd's upgrade request and
// hands the socket, the Sec-WebSocket-Accept it must answer and whatever
// came after the request to onRequest.
async function handServer(onRequest) {
  const socks = new Set();
  const srv = net.createServer((sock) => {
    socks.add(sock);
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const key = /^sec-websocket-key:\s*(\S+)/im.exec(buf.subarray(0, end).toString('latin1'))[1];
      const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      onRequest(sock, accept, buf.subarray(end + 4));
    };
    sock.on('data', onData);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  later(async () => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return `ws://127.0.0.1:${srv.address().port}/deepstream`;
}

function answer101(accept) {
  return Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
    `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1');
}

test('frames in the same write as the 101, and a 101 that comes a byte at a time', async () => {
  for (const pieces of [false, true]) {
    let raw = null;
    let server = null;
    const url = await handServer((sock, accept, rest) => {
      server = sock;
      raw = readFrames(sock, rest);
      const bytes = Buffer.concat([answer101(accept), Buffer.from([0x89, 0x03, 0x61, 0x62, 0x63])]);
      if (!pieces) {
        sock.write(bytes);
        return;
      }
      let i = 0;
      const next = () => {
        if (i < bytes.length && !sock.destroyed) {
          sock.write(bytes.subarray(i, ++i));
          setTimeout(next, 1);
        }
      };
      next();
    });
    const d = await dsd({ url, heartbeatInterval: 30000 });
    await waitUntil(() => raw && raw.frames.some((f) => f.op === 0xa), { what: 'the PONG' });
    assert.equal(raw.frames.find((f) => f.op === 0xa).payload.toString(), 'abc');
    // This server answers no close frame: dsd would wait for it.
    server.destroy();
    await d.stop();
  }
});

test('paused while the server has not answered the upgrade: the connection ends at once', async () => {
  let raw = null;
  const url = await handServer((sock) => {
    raw = readFrames(sock);
  });
  const d = await dsd({ url, heartbeatInterval: 30000 });
  await waitUntil(() => raw !== null, { what: 'the upgrade request' });
  const r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await d.waitState('OFFLINE', 3000);
  await waitUntil(() => raw.ended(), { timeoutMs: 3000, what: 'dsd to end the connection' });
  assert.deepEqual(raw.frames, [], 'no frame before the upgrade');
  const st = await d.status();
  assert.equal(st.state, 'OFFLINE');
});

test('a PING while dsd\'s writes are choked: the PONG goes between whole frames, nothing is lost or reordered', async () => {
  const { sp, d } = await openOn();
  const raw = takeOver(sp);
  const sock = sp.live()._socket;
  sock.pause();
  const N = 40;
  // One at a time, so they are queued in order; a dsctl that waits for
  // room in the send backlog is left running.
  const runs = [];
  for (let i = 0; i < N; i++) {
    const run = d.dsctl('emit', 'flood', JSON.stringify({ i, pad: 'y'.repeat(100000) }));
    runs.push(run);
    await Promise.race([run, new Promise((res) => setTimeout(res, 200))]);
  }
  raw.write([0x89, 0x04, 0x70, 0x69, 0x6e, 0x67]);
  await new Promise((res) => setTimeout(res, 300));
  sock.resume();
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
  const emits = () => raw.frames.filter((f) => f.op === 2).map((f) => pb.decodeFrame(f.payload))
    .filter((m) => m.topic === pb.TOPIC.EVENT)
    .map((m) => JSON.parse(m.inner[2][0].toString()).i);
  await waitUntil(() => emits().length >= N && raw.frames.some((f) => f.op === 0xa),
    { timeoutMs: 15000, what: 'every emit and the PONG' });
  assert.equal(raw.frames.find((f) => f.op === 0xa).payload.toString(), 'ping');
  assert.deepEqual(emits(), [...Array(N).keys()]);
});

test('a server that never answers dsd\'s close frame: the connection ends after the grace period', async () => {
  const { sp, d } = await openOn();
  const raw = takeOver(sp);
  const t0 = Date.now();
  const r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => raw.closes().length === 1, { what: 'dsd\'s close frame' });
  await waitUntil(() => raw.ended(), { timeoutMs: 10000, what: 'dsd to give up on the close handshake' });
  // CLOSE_GRACE_SECS is 5: not at once, and not never.
  assert.ok(Date.now() - t0 >= 3000, `ended after ${Date.now() - t0} ms`);
  assert.equal((await d.status()).state, 'OFFLINE');
});

test('a bad frame after dsd\'s own close frame: no second close frame, the connection ends', async () => {
  const { sp, d } = await openOn();
  const raw = takeOver(sp);
  const r = await d.dsctl('pause');
  assert.equal(r.code, 0, r.stderr);
  await waitUntil(() => raw.closes().length === 1, { what: 'dsd\'s close frame' });
  // A masked frame: a protocol error, but dsd has said goodbye already
  // (RFC 6455, 5.5.1: one close frame per endpoint).
  raw.write([0x82, 0x81, 1, 2, 3, 4, 0x78 ^ 1]);
  await waitUntil(() => raw.ended(), { timeoutMs: 2500, what: 'dsd to end the connection' });
  assert.deepEqual(raw.closes().map((f) => f.payload.readUInt16BE(0)), [1000]);
});
