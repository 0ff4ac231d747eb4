'use strict';
// dsd's own WebSocket handling (a ws:// connection without a proxy is
// carried raw by libwebsockets; dsd speaks the upgrade and reads the frames
// itself) against a real WebSocket server, the `ws` library under the
// scripted platform, doing what deepstream 7.0.2 never does on its own:
// PINGs, fragmented messages, a close with its own code, a masked frame.
const { test } = require('node:test');
const assert = require('node:assert/strict');

const { startScripted } = require('./lib/scripted');
const { binaries } = require('./lib/dsd');
const pb = require('./lib/pb');
const { waitUntil } = require('./lib/util');
const { scope } = require('./lib/scope');
const { runTool } = require('./lib/run');

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
