'use strict';
/*
 * A TCP fault proxy between a client (dsd) and the real server, steered from
 * the test process. Modes apply to existing and new connections alike:
 *   pass         forward both ways
 *   refuse       the listener is closed, so the kernel refuses new
 *                connections (nothing is recorded); the port is bound again
 *                when the mode changes
 *   reset        every new connection is accepted, recorded, and reset (RST)
 *   blackhole    forward nothing either way, keep every socket open
 *   mute-server  forward client->server only; drop server->client bytes
 * and one-shot actions that leave the mode as it was:
 *   reset-all    reset every existing connection now (also resetAll())
 * With tls: {key, cert} the proxy terminates TLS toward the client and
 * forwards plaintext to the target: that is how wss:// is tested.
 */
const net = require('node:net');
const tls = require('node:tls');
const { freePort, withTimeout } = require('./util');

const MODES = new Set(['pass', 'refuse', 'reset', 'blackhole', 'mute-server']);

function listen(server, port) {
  return new Promise((resolve, reject) => {
    const onError = (e) => reject(e);
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
}

async function startProxy({ target, tls: tlsOpts, port: fixedPort } = {}) {
  if (!target || !target.port) throw new Error('startProxy: target {host, port} required');
  const host = target.host || '127.0.0.1';
  const secureContext = tlsOpts ? tls.createSecureContext({ key: tlsOpts.key, cert: tlsOpts.cert }) : null;
  let mode = 'pass';
  let server = null;
  let closed = false;
  const pairs = new Set(); // {raw, client (raw or TLS socket), upstream}
  const attempts = []; // {at: Date.now(), mono: performance.now()}
  // {at, message}: TLS errors toward the client, for debugging only. A client
  // that rejects our certificate may just close without an alert (Node does
  // under TLS 1.3), so a failed verification need not show up here.
  const tlsErrors = [];
  const port = fixedPort || (await freePort());

  function rstOrDestroy(sock, rst) {
    // Only a fully open socket is reset: resetAndDestroy() on one whose
    // write side has already been shut down (we passed on a FIN) left Node
    // 20 spinning at exit, so those are simply destroyed.
    if (rst && !sock.destroyed && sock.readyState === 'open' && !sock.writableEnded) {
      try {
        sock.resetAndDestroy();
        return;
      } catch {
        // not a plain connected TCP socket (e.g. wrapped by TLS): just close
      }
    }
    sock.destroy();
  }

  function destroyPair(p, rst) {
    pairs.delete(p);
    rstOrDestroy(p.raw, rst);
    p.client.destroy();
    rstOrDestroy(p.upstream, rst);
  }

  function onConnection(raw) {
    attempts.push({ at: Date.now(), mono: performance.now() });
    raw.on('error', () => {});
    if (mode === 'reset') {
      raw.resetAndDestroy();
      return;
    }
    let client = raw;
    if (secureContext) {
      client = new tls.TLSSocket(raw, { isServer: true, secureContext });
      client.on('error', (e) => tlsErrors.push({ at: Date.now(), message: e.message }));
    }
    const upstream = net.connect({ host, port: target.port });
    upstream.setNoDelay(true);
    const p = { raw, client, upstream };
    pairs.add(p);
    client.on('data', (buf) => {
      if (mode !== 'blackhole') upstream.write(buf);
    });
    upstream.on('data', (buf) => {
      if (mode !== 'blackhole' && mode !== 'mute-server' && !client.destroyed) client.write(buf);
    });
    // A close on one side is passed on as a close on the other (FIN for FIN,
    // and a reset becomes a destroy), so the proxy itself is transparent.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => {
      if (pairs.has(p)) destroyPair(p, false);
    });
    upstream.on('error', () => {});
    upstream.on('close', () => {
      if (pairs.has(p)) destroyPair(p, false);
    });
  }

  async function open() {
    server = net.createServer({ noDelay: true }, onConnection);
    await listen(server, port);
  }

  function closeListener() {
    if (!server) return Promise.resolve();
    const s = server;
    server = null;
    // close() only stops accepting; existing connections live on (their
    // fate is the mode's business), so do not wait for them here.
    return new Promise((resolve) => {
      s.close();
      resolve();
    });
  }

  function resetAll() {
    for (const p of [...pairs]) destroyPair(p, true);
  }

  await open();

  return {
    port,
    url: `${tlsOpts ? 'wss' : 'ws'}://127.0.0.1:${port}/deepstream`,
    attempts,
    tlsErrors,
    get connections() {
      return attempts.length;
    },
    get open() {
      return pairs.size;
    },
    get current() {
      return mode;
    },
    resetAll,
    async mode(m) {
      if (closed) throw new Error('proxy is closed');
      if (m === 'reset-all') {
        resetAll();
        return;
      }
      if (!MODES.has(m)) throw new Error(`proxy: unknown mode ${m}`);
      const was = mode;
      mode = m;
      if (m === 'refuse' && was !== 'refuse') await closeListener();
      if (m !== 'refuse' && was === 'refuse') {
        await withTimeout(open(), 5000, `proxy to listen again on port ${port}`);
      }
    },
    async close() {
      closed = true;
      await closeListener();
      resetAll();
    },
  };
}

module.exports = { startProxy };
