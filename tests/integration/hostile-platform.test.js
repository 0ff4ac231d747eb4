'use strict';
// dsd against platforms that misbehave on purpose or by accident: one that
// drops every connection right after authenticating it (a reconnect storm
// unless the backoff goes on).
const { test } = require('node:test');
const assert = require('node:assert/strict');

const { startScripted } = require('./lib/scripted');
const { sleep } = require('./lib/util');
const { scope } = require('./lib/scope');

const { later, dsd } = scope();

async function scripted(opts) {
  const sp = await startScripted(opts);
  later(() => sp.close());
  return sp;
}

test('a platform that drops every connection after AUTH_SUCCESSFUL: the backoff goes on, ERROR after maxReconnectAttempts', async () => {
  const sp = await scripted({ dropAfterAuth: true });
  const inc = 200;
  const d = await dsd({ url: sp.url, reconnectIntervalIncrement: inc, maxReconnectInterval: 10000,
    maxReconnectAttempts: 3, restartAfterError: 0 });
  const st = await d.waitState('ERROR', 10000);
  assert.match(st.reason, /gave up after 3 unsuccessful attempts/);
  await sleep(1000); // nothing more may come
  const tries = sp.attempts.map((a) => a.at);
  assert.equal(tries.length, 3, `connections made: ${tries.length} (expected maxReconnectAttempts = 3)`);
  // Every one of them got as far as OPEN (the platform said AUTH_SUCCESSFUL).
  assert.equal(st.connection.opens, 3);
  // The first connect is attempt 1; then +1x and +2x the increment.
  const expected = [0, inc, 3 * inc];
  tries.forEach((at, i) => {
    const off = at - tries[0];
    assert.ok(Math.abs(off - expected[i]) <= 150, `attempt ${i + 1} at +${off} ms, expected +${expected[i]}`);
  });
  // The loss of a connection that never held is no storm in the log either.
  const losses = d.lines.filter((l) => /OPEN -> RECONNECTING/.test(l));
  assert.ok(losses.length <= 3, `OPEN -> RECONNECTING logged ${losses.length} times`);
});
