'use strict';
/*
 * A throw-away redis-server on a free loopback port: the message bus of a
 * deepstream cluster (see startServer's cluster option). No persistence.
 * Losing it makes every deepstream node of the cluster exit, so a test
 * starts it first and stops it last (scope() stops in reverse order).
 * Stopped by its PID. available() says whether redis-server is installed.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { track } = require('./children');
const { makeTempDir, freePort, waitExit, waitUntil } = require('./util');

function redisBin() {
  for (const dir of (process.env.PATH || '').split(':').concat(['/usr/bin', '/usr/sbin'])) {
    const p = path.join(dir, 'redis-server');
    if (dir && fs.existsSync(p)) return p;
  }
  return null;
}

function available() {
  const bin = redisBin();
  if (!bin) return false;
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function answersPing(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('PING\r\n'));
    s.setTimeout(500, () => s.destroy());
    s.on('data', (d) => {
      resolve(String(d).startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

async function startRedis() {
  const bin = redisBin();
  if (!bin) throw new Error('redis-server not found');
  const dir = makeTempDir('redis');
  const port = await freePort();
  const logFile = path.join(dir, 'redis.log');
  const fd = fs.openSync(logFile, 'a');
  const child = track(spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--dir', dir], { stdio: ['ignore', fd, fd] }));
  fs.closeSync(fd);
  await waitUntil(async () => {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${fs.readFileSync(logFile, 'utf8')}`);
    return answersPing(port);
  }, { timeoutMs: 10000, intervalMs: 50, what: `redis-server on port ${port}` });
  return {
    port,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid, 'SIGTERM');
      await waitExit(child, 5000, `redis-server (pid ${child.pid}) to exit`);
    },
  };
}

module.exports = { startRedis, available };
