'use strict';
// Where the pinned deepstream server and JS client live (tests/peer), and a
// require() that resolves from there, so every test uses exactly the versions
// in tests/peer/package-lock.json and never something found further up.
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const REPO_DIR = path.resolve(__dirname, '..', '..', '..');
const PEER_DIR = path.join(REPO_DIR, 'tests', 'peer');
const NODE_MODULES = path.join(PEER_DIR, 'node_modules');

function checkPeer() {
  const marker = path.join(NODE_MODULES, '@deepstream', 'server', 'package.json');
  if (!fs.existsSync(marker)) {
    // A missing install must fail the test run, not skip it: a skipped
    // integration suite looks green in CI while testing nothing.
    throw new Error(
      `${NODE_MODULES} is missing or incomplete: run tools/bootstrap ` +
        '(it runs `npm ci` in tests/peer) before the integration tests');
  }
}

const peerRequire = createRequire(path.join(PEER_DIR, 'package.json'));

function requirePeer(name) {
  checkPeer();
  return peerRequire(name);
}

// The deepstream CLI script; run with process.execPath so the PID we hold is
// the server itself, not an npx or shell wrapper.
function deepstreamBin() {
  checkPeer();
  return path.join(NODE_MODULES, '@deepstream', 'server', 'dist', 'bin', 'deepstream');
}

module.exports = { REPO_DIR, PEER_DIR, NODE_MODULES, checkPeer, requirePeer, deepstreamBin };
