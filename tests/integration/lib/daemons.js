'use strict';
/*
 * Real network components from Debian in front of the platform, run as the
 * current user on free loopback ports, each with its own temporary config,
 * pid and log files, stopped by PID:
 *   startNginx    a TLS-terminating reverse proxy (optionally requiring a
 *                 client certificate) in front of a WebSocket server
 *   startTinyproxy  a forward HTTP proxy (CONNECT), optionally with Basic
 *                 authentication
 * missing(name) says why a test must be skipped when a binary (these two,
 * or openssl for the test certificates) is absent.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { track } = require('./children');
const { sleep, makeTempDir, freePort, waitExit, tail } = require('./util');

// nginx is in sbin, which a user's PATH may not have.
const EXTRA_DIRS = ['/usr/sbin', '/sbin'];

function findBinary(name) {
  const dirs = [...(process.env.PATH || '').split(':').filter(Boolean), ...EXTRA_DIRS];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not there
    }
  }
  return null;
}

// A reason to skip, or false when the binary is there.
function missing(name) {
  return findBinary(name) ? false : `${name} is not installed (Debian package ${name})`;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// Spawns argv, waits until port accepts connections; stop() by PID.
async function runDaemon(name, argv, { port, dir, logFile, timeoutMs = 10000 }) {
  const out = fs.openSync(path.join(dir, `${name}.out`), 'a');
  const child = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out] }));
  fs.closeSync(out);
  const log = () => {
    let text = '';
    for (const f of [path.join(dir, `${name}.out`), logFile]) {
      try {
        text += fs.readFileSync(f, 'utf8');
      } catch {
        // not written yet
      }
    }
    return text;
  };
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      throw new Error(`${name} did not listen on 127.0.0.1:${port}:\n${tail(log())}`);
    }
    await sleep(20);
  }
  return {
    pid: child.pid,
    port,
    dir,
    log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM');
      try {
        await waitExit(child, 5000, `${name} (pid ${child.pid}) to exit`);
      } catch (e) {
        process.kill(child.pid, 'SIGKILL');
        await waitExit(child, 5000);
        throw e;
      }
    },
  };
}

/*
 * nginx terminating TLS on a free port and passing WebSocket upgrades on to
 * 127.0.0.1:targetPort. tls: {certFile, keyFile} of the server; clientCa:
 * a CA file whose certificates it requires from clients (ssl_verify_client
 * on), or null. One process (master_process off), so it runs as the
 * current user, root or not, and one PID stops it.
 */
async function startNginx({ targetPort, tls, clientCa = null, port: fixedPort } = {}) {
  const bin = findBinary('nginx');
  if (!bin) throw new Error(missing('nginx'));
  const dir = makeTempDir('dsd-nginx');
  const port = fixedPort || (await freePort());
  const errorLog = path.join(dir, 'error.log');
  const accessLog = path.join(dir, 'access.log');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `master_process off;
error_log ${errorLog} info;
events { worker_connections 64; }
http {
  access_log ${accessLog};
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};
${clientCa ? `    ssl_client_certificate ${clientCa};\n    ssl_verify_client on;\n` : ''}
    location / {
      proxy_pass http://127.0.0.1:${targetPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
    }
  }
}
`);
  const d = await runDaemon('nginx', [bin, '-p', dir, '-c', conf, '-e', errorLog, '-g',
    `daemon off; pid ${path.join(dir, 'nginx.pid')};`], { port, dir, logFile: errorLog });
  return {
    ...d,
    url: `wss://127.0.0.1:${port}/deepstream`,
    accessLog: () => (fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8') : ''),
  };
}

/*
 * tinyproxy on a free port (or port), logging every request; auth:
 * {user, password} makes it require Basic authentication. connects(target)
 * counts the CONNECT requests for "host:port" in its log so far (the log
 * file is kept across a restart on the same dir).
 */
async function startTinyproxy({ auth = null, port: fixedPort, dir: keepDir } = {}) {
  const bin = findBinary('tinyproxy');
  if (!bin) throw new Error(missing('tinyproxy'));
  const dir = keepDir || makeTempDir('dsd-tinyproxy');
  const port = fixedPort || (await freePort());
  const logFile = path.join(dir, 'tinyproxy.log');
  const conf = path.join(dir, 'tinyproxy.conf');
  fs.writeFileSync(conf, [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 600',
    `LogFile "${logFile}"`,
    'LogLevel Info',
    `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
    'MaxClients 20',
    'Allow 127.0.0.1',
    auth ? `BasicAuth ${auth.user} ${auth.password}` : '',
    '',
  ].join('\n'));
  const d = await runDaemon('tinyproxy', [bin, '-d', '-c', conf], { port, dir, logFile });
  const url = auth
    ? `http://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@127.0.0.1:${port}`
    : `http://127.0.0.1:${port}`;
  return {
    ...d,
    url,
    connects(target) {
      const re = new RegExp(`CONNECT ${target.replace(/[.]/g, '\\.')} HTTP`, 'g');
      const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
      return (text.match(re) || []).length;
    },
  };
}

module.exports = { startNginx, startTinyproxy, missing };
