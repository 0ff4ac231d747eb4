'use strict';
/*
 * The real platform for the Python tests, started the way the Node
 * integration tests start it (tests/integration/lib): the deepstream
 * server on a free loopback port, dsd connected to it ($DSD_BUILD_DIR),
 * and a JS client on the server as the app's counterpart.
 *
 * Prints one JSON line {"socket","url"} once dsd is OPEN, then answers
 * one line per command read from stdin ("ok", or JSON):
 *   stop | start | restart       dsd (stop: SIGTERM; start: same config)
 *   subscribe NAME               the JS client subscribes (synced)
 *   received NAME                JSON list of the data it received
 *   emit NAME JSON               the JS client emits
 *   quit                         stop everything and exit (so does EOF)
 */
const path = require('node:path');
const readline = require('node:readline');

const LIB = path.join(__dirname, '..', '..', 'tests', 'integration', 'lib');
const { startServer } = require(path.join(LIB, 'server'));
const { startDsd } = require(path.join(LIB, 'dsd'));
const js = require(path.join(LIB, 'jsclient'));

async function main() {
  const s = await startServer({ auth: 'open' });
  let d = await startDsd({ url: s.url });
  await d.waitState('OPEN');
  const peer = await js.connect(s.url, { auth: { username: 'python-peer' } });
  const subs = new Map();
  let done = false;

  async function quit() {
    if (done) return;
    done = true;
    peer.close();
    await d.stop().catch((e) => process.stderr.write(`${e.message}\n`));
    await s.stop();
    process.exit(0);
  }

  const handlers = {
    async stop() {
      await d.stop();
    },
    async start() {
      d = await startDsd({ dir: d.dir });
      await d.waitState('OPEN');
    },
    async restart() {
      await d.stop();
      d = await startDsd({ dir: d.dir });
      await d.waitState('OPEN');
    },
    async subscribe(name) {
      if (!subs.has(name)) subs.set(name, await peer.subscribe(name));
    },
    async received(name) {
      return subs.has(name) ? subs.get(name).data : [];
    },
    async emit(name, ...rest) {
      peer.emit(name, rest.length ? JSON.parse(rest.join(' ')) : undefined);
      await peer.sync();
    },
    quit,
  };

  process.stdout.write(`${JSON.stringify({ socket: d.socket, url: s.url })}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  // One command at a time, in order.
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      const [cmd, ...args] = line.trim().split(' ');
      try {
        if (!handlers[cmd]) throw new Error(`unknown command ${cmd}`);
        const r = await handlers[cmd](...args);
        process.stdout.write(`${r === undefined ? 'ok' : JSON.stringify(r)}\n`);
      } catch (e) {
        process.stdout.write(`error ${e.message.split('\n')[0]}\n`);
      }
    });
  });
  rl.on('close', () => {
    chain = chain.then(quit);
  });
}

main().catch((e) => {
  process.stderr.write(`platform.js: ${e.stack}\n`);
  process.exit(1);
});
