'use strict';
/*
 * A scripted deepstream platform for what the real 7.0.2 server never does:
 * answer the CONNECTION CHALLENGE with REDIRECT {url} (action 7, url field 5)
 * or REJECT (action 6). It speaks ws-binary on /deepstream and records every
 * frame it receives.
 *
 * answer (per connection; a string, or a function ({index, challenge}) that
 * returns one of these as a string or {action, url}):
 *   'redirect'  REDIRECT to opts.redirectUrl (or the url returned)
 *   'reject'    REJECT
 *   'accept'    ACCEPT, then AUTH_SUCCESSFUL for any AUTH REQUEST and PONG for
 *               PING, so a client can reach OPEN here
 *   'ignore'    say nothing
 * closeAfterAnswer: close the WebSocket right after a REDIRECT/REJECT
 * (default false: a conforming client closes it itself).
 * dropAfterAuth: close the WebSocket right after sending AUTH_SUCCESSFUL (a
 * platform that lets the client reach OPEN and then drops it at once); a
 * number: that many milliseconds after it.
 * junkAfterAuth: after AUTH_SUCCESSFUL send this many frames that are no
 * deepstream message at all (undecodable), one per event-loop turn.
 */
const { requirePeer } = require('./peer');
const pb = require('./pb');
const { freePort, withTimeout } = require('./util');

const WebSocket = requirePeer('ws');

async function startScripted(opts = {}) {
  const o = { answer: 'accept', redirectUrl: undefined, closeAfterAnswer: false, dropAfterAuth: false,
    junkAfterAuth: 0, ...opts };
  if (o.answer === 'redirect' && !o.redirectUrl) throw new Error('startScripted: redirect needs redirectUrl');
  const port = o.port || (await freePort());
  const received = []; // {conn, at, bytes, topic, action, url?, error?}
  const attempts = []; // {at} per accepted WebSocket
  const closes = []; // {conn, at, code}
  const sockets = new Set();

  const wss = new WebSocket.Server({ host: '127.0.0.1', port, path: '/deepstream', maxPayload: 1 << 20 });
  await withTimeout(
    new Promise((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    }),
    5000,
    `scripted server to listen on ${port}`);

  function decide(index, challenge) {
    const a = typeof o.answer === 'function' ? o.answer({ index, challenge }) : o.answer;
    return typeof a === 'string' ? { action: a, url: o.redirectUrl } : { url: o.redirectUrl, ...a };
  }

  wss.on('connection', (ws) => {
    const index = attempts.length;
    attempts.push({ at: Date.now() });
    sockets.add(ws);
    let authed = false;
    ws.on('close', (code) => {
      sockets.delete(ws);
      closes.push({ conn: index, at: Date.now(), code });
    });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const bytes = Buffer.isBuffer(data) ? Buffer.from(data) : Buffer.from(String(data));
      const rec = { conn: index, at: Date.now(), bytes, binary: Buffer.isBuffer(data) };
      let msg = null;
      try {
        msg = pb.decodeFrame(bytes);
        rec.topic = msg.topic;
        rec.action = msg.action;
        if (msg.topic === pb.TOPIC.CONNECTION && msg.inner[5]) rec.url = msg.inner[5][0].toString('utf8');
        if (msg.topic === pb.TOPIC.AUTH && msg.inner[2]) rec.data = msg.inner[2][0].toString('utf8');
      } catch (e) {
        rec.error = e.message;
      }
      received.push(rec);
      if (!msg) return;
      const send = (frame) => ws.send(frame, { binary: true });
      if (msg.topic === pb.TOPIC.CONNECTION && msg.action === pb.CONNECTION.CHALLENGE) {
        const d = decide(index, rec);
        if (d.action === 'redirect') {
          if (!d.url) {
            rec.error = 'scripted: redirect answer without a url';
            ws.close();
            return;
          }
          send(pb.connectionFrame(pb.CONNECTION.REDIRECT, d.url));
          if (o.closeAfterAnswer) ws.close();
        } else if (d.action === 'reject') {
          send(pb.connectionFrame(pb.CONNECTION.REJECT));
          if (o.closeAfterAnswer) ws.close();
        } else if (d.action === 'accept') {
          send(pb.connectionFrame(pb.CONNECTION.ACCEPT));
        } else if (d.action !== 'ignore') {
          rec.error = `scripted: unknown answer ${d.action}`;
          ws.close();
        }
      } else if (msg.topic === pb.TOPIC.AUTH && msg.action === pb.AUTH.REQUEST) {
        authed = true;
        send(pb.encodeFrame(pb.TOPIC.AUTH, [[1, 'varint', pb.AUTH.AUTH_SUCCESSFUL]]));
        if (o.dropAfterAuth === true) ws.close();
        else if (typeof o.dropAfterAuth === 'number') setTimeout(() => ws.close(), o.dropAfterAuth);
        // 0xff: a protobuf key with wire type 7, which does not exist.
        for (let i = 0; i < o.junkAfterAuth; i++) setImmediate(() => send(Buffer.from([0xff, 0xff, 0xff, i & 0xff])));
      } else if (msg.topic === pb.TOPIC.CONNECTION && msg.action === pb.CONNECTION.PING && authed) {
        send(pb.connectionFrame(pb.CONNECTION.PONG));
      }
    });
  });

  return {
    port,
    url: `ws://127.0.0.1:${port}/deepstream`,
    received,
    attempts,
    closes,
    get connections() {
      return attempts.length;
    },
    // The WebSocket of the newest connection still open (the `ws`
    // library's), for a test to act on: ping, send fragments, close.
    live() {
      return [...sockets].pop();
    },
    // CHALLENGE frames received so far.
    challenges() {
      return received.filter((r) => r.topic === pb.TOPIC.CONNECTION && r.action === pb.CONNECTION.CHALLENGE);
    },
    async close() {
      for (const ws of sockets) ws.terminate();
      await withTimeout(new Promise((resolve) => wss.close(() => resolve())), 5000, 'scripted server to close');
    },
  };
}

module.exports = { startScripted };
