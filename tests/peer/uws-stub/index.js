'use strict';
// deepstream lists uWebSockets.js as a dependency, but its only source is a git
// repository we cannot reach. The default ws-binary endpoint (built on `ws`)
// never loads it, so this stub exists only to satisfy npm. If some config ever
// selects the uws endpoint, fail loudly instead of misbehaving.
throw new Error(
  'uWebSockets.js is stubbed in tests/peer (uws-stub): configure deepstream ' +
    'with the ws-based endpoints (ws-binary), not the uws service');
