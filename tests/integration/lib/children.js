'use strict';
// Every process a helper spawns is registered here so that, if a test file
// dies without stopping it, it is still killed (by its own PID) when this
// Node process exits: a leaked server would hold its port and confuse the
// next test file.
const live = new Set();

function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

process.on('exit', () => {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

module.exports = { track };
