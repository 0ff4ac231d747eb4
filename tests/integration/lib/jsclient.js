'use strict';
// Thin helpers around the official @deepstream/client 7.0.5, used as the
// "other side" in tests: what it receives is the ground truth.
const { requirePeer } = require('./peer');
const { withTimeout, waitUntil } = require('./util');

const { DeepstreamClient } = requirePeer('@deepstream/client');

// Subscribes are sent at once (not batched for 100 ms) so that the barrier
// in subscribe() below orders them before the round trip it waits for.
const DEFAULT_OPTIONS = { subscriptionInterval: 0 };

/*
 * Creates a client and logs in. Resolves once the state is OPEN; rejects on
 * a failed login or after timeoutMs. options go to the DeepstreamClient
 * constructor (heartbeatInterval, reconnectIntervalIncrement, socketOptions...).
 */
async function connect(url, { auth = {}, options = {}, timeoutMs = 10000 } = {}) {
  const client = new DeepstreamClient(url, { ...DEFAULT_OPTIONS, ...options });
  const w = wrap(client);
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        client.login(auth, (ok, data) => {
          if (ok) resolve(data);
          else reject(Object.assign(new Error(`login to ${url} failed: ${JSON.stringify(data)}`), { data }));
        });
      }),
      timeoutMs,
      `JS client login to ${url} (states so far: ${w.states.map((s) => s.state).join(' > ')})`);
  } catch (e) {
    w.close();
    throw e;
  }
  return w;
}

function wrap(client) {
  const states = []; // {state, at}
  const errors = []; // {error, event, topic, at}
  client.on('connectionStateChanged', (state) => states.push({ state, at: Date.now() }));
  client.on('error', (error, event, topic) => errors.push({ error, event, topic, at: Date.now() }));

  const w = {
    client,
    states,
    errors,
    get state() {
      return client.getConnectionState();
    },

    // Waits until the client is in `state` (now or later).
    waitState(state, timeoutMs = 10000) {
      return waitUntil(() => client.getConnectionState() === state, {
        timeoutMs,
        intervalMs: 10,
        what: `JS client state ${state}`,
        detail: () => `states: ${states.map((s) => s.state).join(' > ')}`,
      });
    },

    // Waits until an error with this event name (e.g. HEARTBEAT_TIMEOUT,
    // MESSAGE_DENIED) has been reported; resolves with it.
    waitError(event, timeoutMs = 10000) {
      return waitUntil(() => errors.find((e) => e.event === event), {
        timeoutMs,
        intervalMs: 10,
        what: `JS client error ${event}`,
        detail: () => `errors: ${JSON.stringify(errors.map((e) => e.event))}`,
      });
    },

    // A round trip the server answers only after it has handled everything
    // this client sent before it (one socket is handled in order).
    async sync(timeoutMs = 5000) {
      await withTimeout(client.presence.getAll(), timeoutMs, 'JS client sync (presence QUERY_ALL)');
    },

    /*
     * Subscribes to an event and resolves once the server has processed the
     * subscription, so an emit from another client after this is delivered.
     * The result collects {data, at}; waitFor(n) resolves with the first n.
     */
    async subscribe(name, { sync = true } = {}) {
      const events = [];
      const cb = (data) => events.push({ data, at: Date.now() });
      client.event.subscribe(name, cb);
      if (sync) await w.sync();
      return {
        name,
        events,
        get data() {
          return events.map((e) => e.data);
        },
        waitFor(n, timeoutMs = 5000) {
          return waitUntil(() => events.length >= n && events.slice(0, n), {
            timeoutMs,
            intervalMs: 5,
            what: `${n} event(s) on ${JSON.stringify(name)}`,
            detail: () => `received ${events.length}: ${JSON.stringify(events.map((e) => e.data))}`,
          });
        },
        unsubscribe() {
          client.event.unsubscribe(name, cb);
        },
      };
    },

    emit(name, data) {
      client.event.emit(name, data);
    },

    close() {
      try {
        client.close();
      } catch {
        // closing twice is harmless for a test
      }
    },
  };
  return w;
}

// A client that is created but does not log in (for reconnect experiments).
function create(url, options = {}) {
  return wrap(new DeepstreamClient(url, { ...DEFAULT_OPTIONS, ...options }));
}

module.exports = { connect, create, DeepstreamClient };
