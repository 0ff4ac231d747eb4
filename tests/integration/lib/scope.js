'use strict';
/*
 * What one test file starts, stopped at its end: servers, dsd instances,
 * proxies and anything else registered with later(). A sanitizer report
 * from a dsd fails the file (other cleanup errors are only noise by then).
 */
const { after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./server');
const { startDsd } = require('./dsd');
const { startProxy } = require('./proxy');

function scope() {
  const cleanups = [];
  const later = (fn) => cleanups.push(fn);
  after(async () => {
    const reports = [];
    for (const fn of cleanups.reverse()) {
      await fn().catch((e) => {
        if (/sanitizer/i.test(e.message)) reports.push(e.message);
      });
    }
    assert.deepEqual(reports, []);
  });
  const keep = (stop) => (h) => {
    later(() => stop(h));
    return h;
  };
  return {
    later,
    server: async (opts) => keep((s) => s.stop())(await startServer(opts)),
    dsd: async (opts) => keep((d) => d.stop())(await startDsd(opts)),
    proxy: async (opts) => keep((p) => p.close())(await startProxy(opts)),
  };
}

module.exports = { scope };
