'use strict';
// Starts the real deepstream 7.0.2 server (tests/peer) on a free loopback
// port with a config written for the test, and stops it by PID.
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { deepstreamBin } = require('./peer');
const { track } = require('./children');
const { sleep, makeTempDir, freePort, waitExit, tail } = require('./util');

// File-auth users. clientData is what AUTH_SUCCESSFUL carries back.
const DEFAULT_USERS = {
  alice: { password: 'alice-pw', clientData: { favouriteColor: 'red' } },
  bob: { password: 'bob-pw' },
  carol: { password: 'carol-pw', clientData: { role: 'tester', level: 3 } },
};

const DEFAULT_DENY_PREFIX = 'secret/';

function yamlString(s) {
  return JSON.stringify(String(s)); // a JSON string is a valid YAML scalar
}

function usersYaml(users) {
  let out = '';
  for (const [name, u] of Object.entries(users)) {
    out += `${yamlString(name)}:\n  password: ${yamlString(u.password)}\n`;
    if (u.clientData !== undefined) out += `  clientData: ${JSON.stringify(u.clientData)}\n`;
    if (u.serverData !== undefined) out += `  serverData: ${JSON.stringify(u.serverData)}\n`;
  }
  return out;
}

// Allow everything; when denyPrefix is set, names starting with it are
// denied for events (subscribe, publish, listen), records and RPCs, so tests
// can provoke MESSAGE_DENIED.
function permissionsYaml(denyPrefix) {
  const deny = (rules) => (denyPrefix ? `  ${yamlString(`${denyPrefix}*`)}:\n${rules}` : '');
  return [
    'presence:\n  "*":\n    allow: true\n',
    'record:\n  "*":\n    create: true\n    write: true\n    read: true\n    delete: true\n    listen: true\n    notify: true\n',
    deny('    create: false\n    write: false\n    read: false\n    delete: false\n    listen: false\n    notify: false\n'),
    'event:\n  "*":\n    publish: true\n    subscribe: true\n    listen: true\n',
    deny('    publish: false\n    subscribe: false\n    listen: false\n'),
    'rpc:\n  "*":\n    provide: true\n    request: true\n',
    deny('    provide: false\n    request: false\n'),
  ].join('');
}

function configYaml(o) {
  const unauth = o.unauthenticatedClientTimeout === false ? 'false' : String(o.unauthenticatedClientTimeout);
  const auth =
    o.auth === 'file'
      ? '  - type: file\n    options:\n      users: fileLoad(users.yml)\n      reportInvalidParameters: true\n'
      : '  - type: none\n';
  return `serverName: ${o.serverName}
showLogo: false
logLevel: ${o.logLevel}
exitOnFatalError: true
dependencyInitializationTimeout: 5000
telemetry:
  type: deepstreamIO
  options:
    enabled: false
rpc:
  ackTimeout: ${o.rpcAckTimeout}
  responseTimeout: ${o.rpcResponseTimeout}
httpServer:
  type: default
  options:
    healthCheckPath: /health-check
    allowAllOrigins: true
    maxMessageSize: 1048576
connectionEndpoints:
  - type: ws-binary
    options:
      urlPath: /deepstream
      heartbeatInterval: ${o.heartbeatInterval}
      outgoingBufferTimeout: 0
      maxBufferByteSize: 100000
      logInvalidAuthData: false
      unauthenticatedClientTimeout: ${unauth}
      maxAuthAttempts: ${o.maxAuthAttempts}
      maxMessageSize: ${o.maxMessageSize}
logger:
  type: default
  options:
    colors: false
auth:
${auth}permission:
  type: config
  options:
    permissions: fileLoad(permissions.yml)
    maxRuleIterations: 3
    cacheEvacuationInterval: 60000
monitoring:
  type: none
${clusterYaml(o.cluster)}`;
}

// A node of a cluster joined through redis (the plugin is looked up as
// @deepstream/clusternode-redis). The registry settings make membership
// converge in about a second instead of about six.
function clusterYaml(c) {
  if (!c) return '';
  return `clusterNode:
  name: redis
  options:
    host: 127.0.0.1
    port: ${c.redisPort}
clusterRegistry:
  type: default
  options:
    keepAliveInterval: 500
    activeCheckInterval: 200
    nodeInactiveTimeout: 1500
`;
}

function healthOk(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health-check', timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/*
 * opts (all optional):
 *   auth: 'open' (default) or 'file'; users: {name: {password, clientData}}
 *   heartbeatInterval (30000), unauthenticatedClientTimeout (180000 or false),
 *   maxAuthAttempts (3), maxMessageSize (1048576)
 *   denyPrefix ('secret/'; null for no deny rules)
 *   rpcAckTimeout (1000), rpcResponseTimeout (10000), logLevel ('INFO')
 *   port (a fixed port; default: a free one), startTimeoutMs (20000)
 *   serverName ('dsd-test'; must differ per node of a cluster)
 *   cluster ({redisPort}: a node of a cluster joined through that redis)
 */
async function startServer(opts = {}) {
  const o = {
    auth: 'open',
    users: DEFAULT_USERS,
    heartbeatInterval: 30000,
    unauthenticatedClientTimeout: 180000,
    maxAuthAttempts: 3,
    maxMessageSize: 1048576,
    denyPrefix: DEFAULT_DENY_PREFIX,
    rpcAckTimeout: 1000,
    rpcResponseTimeout: 10000,
    logLevel: 'INFO',
    startTimeoutMs: 20000,
    serverName: 'dsd-test',
    cluster: null,
    ...opts,
  };
  if (o.auth !== 'open' && o.auth !== 'file') throw new Error(`startServer: bad auth ${o.auth}`);
  const bin = deepstreamBin();
  const dir = makeTempDir('ds-server');
  const configFile = path.join(dir, 'config.yml');
  fs.writeFileSync(path.join(dir, 'users.yml'), usersYaml(o.users));
  fs.writeFileSync(path.join(dir, 'permissions.yml'), permissionsYaml(o.denyPrefix));
  fs.writeFileSync(configFile, configYaml(o));
  const port = o.port || (await freePort());
  const logFile = path.join(dir, 'server.log');

  let child = null;
  let starts = 0;

  const logText = () => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const logTail = (n = 40) => tail(logText(), n);

  async function spawnAndWait() {
    starts += 1;
    const fd = fs.openSync(logFile, 'a');
    fs.writeSync(fd, `--- start #${starts} on port ${port} ---\n`);
    child = track(
      spawn(process.execPath, [bin, 'start', '-c', configFile, '--host', '127.0.0.1', '--port', String(port)], {
        cwd: dir,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, NODE_ENV: 'test' },
      }));
    fs.closeSync(fd);
    const me = child;
    const deadline = Date.now() + o.startTimeoutMs;
    for (;;) {
      if (me.exitCode !== null || me.signalCode !== null) {
        throw new Error(
          `deepstream exited during start-up (code ${me.exitCode}, signal ${me.signalCode}); ` +
            `log ${logFile}:\n${logTail()}`);
      }
      if (await healthOk(port)) return;
      if (Date.now() >= deadline) {
        const t = logTail();
        await kill(me, 'SIGKILL');
        throw new Error(
          `deepstream did not answer GET /health-check on 127.0.0.1:${port} within ` +
            `${o.startTimeoutMs} ms; log ${logFile}:\n${t}`);
      }
      await sleep(50);
    }
  }

  async function kill(c, signal, graceMs = 5000) {
    if (!c || c.exitCode !== null || c.signalCode !== null) return c ? { code: c.exitCode, signal: c.signalCode } : null;
    process.kill(c.pid, signal);
    try {
      return await waitExit(c, graceMs, `deepstream (pid ${c.pid}) to exit after ${signal}`);
    } catch (e) {
      if (signal === 'SIGKILL') throw e;
      process.kill(c.pid, 'SIGKILL');
      return waitExit(c, 5000, `deepstream (pid ${c.pid}) to exit after SIGKILL`);
    }
  }

  await spawnAndWait();

  const handle = {
    port,
    url: `ws://127.0.0.1:${port}/deepstream`,
    httpUrl: `http://127.0.0.1:${port}`,
    dir,
    configFile,
    logFile,
    users: o.users,
    denyPrefix: o.denyPrefix,
    get pid() {
      return child ? child.pid : undefined;
    },
    get running() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    logText,
    logTail,
    // SIGTERM, then SIGKILL if it has not exited within graceMs.
    stop: (graceMs = 3000) => kill(child, 'SIGTERM', graceMs),
    // An abrupt crash: no close frames, sockets reset by the kernel.
    kill9: () => kill(child, 'SIGKILL'),
    async restart() {
      await kill(child, 'SIGTERM', 3000);
      await spawnAndWait();
    },
  };
  return handle;
}

module.exports = { startServer, DEFAULT_USERS, DEFAULT_DENY_PREFIX };
